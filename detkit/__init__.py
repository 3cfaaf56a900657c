"""detkit: classic object detectors on one backbone registry, one engine and one evaluator.

``detkit.load(checkpoint)`` returns a :class:`detkit.api.Predictor`. It is imported on first use,
so that ``import detkit`` (and the torch-free data tools) stay light.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["Predictor", "load"]


def __getattr__(name: str):
    if name in __all__:
        from detkit import api

        return getattr(api, name)
    raise AttributeError(f"module 'detkit' has no attribute {name!r}")
