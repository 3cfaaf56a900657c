"""Validation curves of training runs side by side: `python tools/compare_runs.py runs=A,B output=P.png`.

The same as `detkit compare-runs ...`; `python tools/compare_runs.py --help` lists its arguments. The code lives in
the package (detkit/commands/), so that it also runs from an installed detkit and can be tested.
"""

import sys

from detkit.cli import main

if __name__ == "__main__":
    sys.exit(main(["compare-runs", *sys.argv[1:]]))
