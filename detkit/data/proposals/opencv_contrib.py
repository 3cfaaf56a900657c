"""OpenCV's contrib module ``cv2.ximgproc``, which both proposal methods (selective search, Edge
Boxes) call, or an error that says how to get it back: albumentations pulls in
opencv-python(-headless), which installs the same ``cv2`` without the contrib modules."""

from __future__ import annotations

import cv2


def ximgproc(user: str):
    """``cv2.ximgproc``; ``user`` names what needs it in the error (e.g. ``"selective search"``)."""
    module = getattr(cv2, "ximgproc", None)
    if module is None:
        raise RuntimeError(
            f"{user} needs OpenCV's contrib module cv2.ximgproc, which the OpenCV at {cv2.__file__} lacks: "
            "opencv-python(-headless), pulled in by albumentations, has replaced the contrib build. "
            "Fix: pip install --force-reinstall --no-deps opencv-contrib-python-headless"
        )
    return module
