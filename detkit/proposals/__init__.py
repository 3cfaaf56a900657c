"""Proposal generators, the model side of two-stage detectors: the RPN (Faster R-CNN) and the
generator that reads precomputed proposals from the targets (Fast R-CNN, R-CNN). Searching and
caching those proposals is the data pipeline's job: ``detkit.data.proposals``."""
