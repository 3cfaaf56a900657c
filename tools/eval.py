"""Evaluate a checkpoint (`checkpoint=PATH`) or a COCO results file (`ground_truth=GT.json detections=DT.json`).

The same as `detkit eval ...`; `python tools/eval.py --help` lists its arguments. The code lives in
the package (detkit/commands/), so that it also runs from an installed detkit and can be tested.
"""

import sys

from detkit.cli import main

if __name__ == "__main__":
    sys.exit(main(["eval", *sys.argv[1:]]))
