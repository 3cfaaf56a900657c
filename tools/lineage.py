"""Every trained detector side by side in accuracy and speed: `python tools/lineage.py runs=A,B,... [output=DIR]`.

The same as `detkit lineage ...`; `python tools/lineage.py --help` lists its arguments. The code lives in
the package (detkit/commands/), so that it also runs from an installed detkit and can be tested.
"""

import sys

from detkit.cli import main

if __name__ == "__main__":
    sys.exit(main(["lineage", *sys.argv[1:]]))
