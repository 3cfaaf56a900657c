"""detkit: classic object detectors on one backbone registry, one engine and one evaluator."""

__version__ = "0.1.0"
