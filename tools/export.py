"""Export a detector with its postprocessing: `python tools/export.py checkpoint=PATH format=onnx|torchscript|pt2`.

The same as `detkit export ...`; `python tools/export.py --help` lists its arguments. The code lives in
the package (detkit/commands/), so that it also runs from an installed detkit and can be tested.
"""

import sys

from detkit.cli import main

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))
