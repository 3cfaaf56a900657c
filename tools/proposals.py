"""Precompute proposals, selective search or Edge Boxes (parallel, cached): `python tools/proposals.py config=NAME`.

The same as `detkit proposals ...`; `python tools/proposals.py --help` lists its arguments. The code lives in
the package (detkit/commands/), so that it also runs from an installed detkit and can be tested.
"""

import sys

from detkit.cli import main

if __name__ == "__main__":
    sys.exit(main(["proposals", *sys.argv[1:]]))
