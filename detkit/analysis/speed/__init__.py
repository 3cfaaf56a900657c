"""Speed measurements: training and inference throughput beside torchvision, NMS strategies, R-CNN
against single-pass detectors, the COCO evaluators.
"""
