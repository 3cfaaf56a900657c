"""Readers of the annotation formats users have: COCO JSON, PASCAL VOC XML, Ultralytics YOLO text
files.
"""
