"""Fit anchors and default-box ratios to a dataset's boxes: `python tools/fit_anchors.py data=... [k=9]`.

The same as `detkit fit-anchors ...`; `python tools/fit_anchors.py --help` lists its arguments. The code lives in
the package (detkit/commands/), so that it also runs from an installed detkit and can be tested.
"""

import sys

from detkit.cli import main

if __name__ == "__main__":
    sys.exit(main(["fit-anchors", *sys.argv[1:]]))
