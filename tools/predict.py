"""Detect objects in images: `python tools/predict.py checkpoint=PATH input=IMAGE_OR_DIR output=DIR`.

The same as `detkit predict ...`; `python tools/predict.py --help` lists its arguments. The code lives in
the package (detkit/commands/), so that it also runs from an installed detkit and can be tested.
"""

import sys

from detkit.cli import main

if __name__ == "__main__":
    sys.exit(main(["predict", *sys.argv[1:]]))
