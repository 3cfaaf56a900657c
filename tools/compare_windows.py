"""Sliding windows vs selective search and Edge Boxes + R-CNN: `python tools/compare_windows.py windows=CKPT rcnn=CKPT`.

The same as `detkit compare-windows ...`; `python tools/compare_windows.py --help` lists its
arguments. The code lives in the package (detkit/commands/), so that it also runs from an installed
detkit and can be tested.
"""

import sys

from detkit.cli import main

if __name__ == "__main__":
    sys.exit(main(["compare-windows", *sys.argv[1:]]))
