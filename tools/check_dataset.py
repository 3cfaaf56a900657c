"""Validate a dataset and list every problem by file: `python tools/check_dataset.py data=... [output=R.json]`.

The same as `detkit check ...`; `python tools/check_dataset.py --help` lists its arguments. The code lives in
the package (detkit/commands/), so that it also runs from an installed detkit and can be tested.
"""

import sys

from detkit.cli import main

if __name__ == "__main__":
    sys.exit(main(["check", *sys.argv[1:]]))
