"""R-CNN vs Fast R-CNN test-time speed: `python tools/benchmark_rcnn.py fast=CKPT rcnn=CKPT`.

The same as `detkit benchmark-rcnn ...`; `python tools/benchmark_rcnn.py --help` lists its arguments. The code lives in
the package (detkit/commands/), so that it also runs from an installed detkit and can be tested.
"""

import sys

from detkit.cli import main

if __name__ == "__main__":
    sys.exit(main(["benchmark-rcnn", *sys.argv[1:]]))
