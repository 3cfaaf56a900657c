"""The data side of proposal-based detectors (R-CNN, Fast R-CNN): selective search and Edge Boxes
(``methods`` picks one by name), their on-disk cache, computing a dataset's proposals with their
recall, and the dataset wrapper that puts them into the targets. The model side (the RPN, and the
generator that reads the targets' proposals) is ``detkit.proposals``."""
