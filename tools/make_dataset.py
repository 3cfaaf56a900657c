"""Generate the synthetic "scenes" dataset in COCO / VOC / YOLO layouts: `python tools/make_dataset.py [layout=all]`.

The same as `detkit make-dataset ...`; `python tools/make_dataset.py --help` lists its arguments. The code lives in
the package (detkit/commands/), so that it also runs from an installed detkit and can be tested.
"""

import sys

from detkit.cli import main

if __name__ == "__main__":
    sys.exit(main(["make-dataset", *sys.argv[1:]]))
