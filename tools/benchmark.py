"""Training and inference throughput beside torchvision: `python tools/benchmark.py [preset=faster_rcnn|ssd300]`.

The same as `detkit benchmark ...`; `python tools/benchmark.py --help` lists its arguments. The code lives in
the package (detkit/commands/), so that it also runs from an installed detkit and can be tested.
"""

import sys

from detkit.cli import main

if __name__ == "__main__":
    sys.exit(main(["benchmark", *sys.argv[1:]]))
