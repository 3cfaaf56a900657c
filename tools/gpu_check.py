"""The GPU check (docs/GPU_CHECK.md): `python tools/gpu_check.py output=gpu_check/`.

The same as `detkit gpu-check ...`; the check itself lives in detkit/analysis/device/gpu_check.py.
"""

import sys

from detkit.cli import main

if __name__ == "__main__":
    sys.exit(main(["gpu-check", *sys.argv[1:]]))
