"""Write a run's offline HTML report (`run=DIR`), or compare two runs (`run=A,B`).

The same as `detkit report ...`; `python tools/report.py --help` lists its arguments. The code lives
in the package (detkit/commands/), so that it also runs from an installed detkit and can be tested.
"""

import sys

from detkit.cli import main

if __name__ == "__main__":
    sys.exit(main(["report", *sys.argv[1:]]))
