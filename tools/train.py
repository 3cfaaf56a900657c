"""Train a detector, then evaluate it on the validation split: `python tools/train.py [config=NAME] [key=value ...]`.

The same as `detkit train ...`; `python tools/train.py --help` lists its arguments. The code lives in
the package (detkit/commands/), so that it also runs from an installed detkit and can be tested.
"""

import sys

from detkit.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
