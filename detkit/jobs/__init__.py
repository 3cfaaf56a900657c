"""The jobs behind the command line: train an experiment then evaluate it, evaluate a checkpoint, fit
R-CNN's SVMs.
"""
