"""Fit R-CNN's per-class SVMs on a trained R-CNN: `python tools/fit_rcnn_svms.py checkpoint=PATH`.

The same as `detkit fit-svms ...`; `python tools/fit_rcnn_svms.py --help` lists its arguments. The code lives in
the package (detkit/commands/), so that it also runs from an installed detkit and can be tested.
"""

import sys

from detkit.cli import main

if __name__ == "__main__":
    sys.exit(main(["fit-svms", *sys.argv[1:]]))
