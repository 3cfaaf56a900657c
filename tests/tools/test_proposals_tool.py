"""tools/proposals.py and tools/check_dataset.py as a user runs them: the proposal report, the
cache on a second run, and the property that keeps both quick to start, no torch import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.tools.tool_runner import REPO, tool_env

TINY = ["config=fast_rcnn_resnet18_shapes", "data.num_train=6", "data.num_val=2", "data.image_size=96"]

# Runs a tool in a fresh interpreter and reports its exit code and whether torch got imported.
PROBE = """
import json, runpy, sys
tool, args = sys.argv[1], sys.argv[2:]
sys.argv = [tool, *args]
try:
    runpy.run_path(tool, run_name="__main__")
    code = 0
except SystemExit as stop:
    code = stop.code
heavy = sorted(m for m in ("torch", "torchvision", "albumentations") if m in sys.modules)
print("PROBE " + json.dumps({"code": code, "heavy": heavy}))
"""


def probe(tool: str, *args: str, tmp_path: Path) -> tuple[dict, str]:
    env = tool_env(tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(REPO / "tools" / tool), *args],
        capture_output=True, text=True, env=env, timeout=600,
    )
    line = next((x for x in result.stdout.splitlines() if x.startswith("PROBE ")), None)
    assert line is not None, result.stderr[-3000:]
    return json.loads(line[len("PROBE "):]), result.stdout + result.stderr


def test_second_run_reads_the_cache_and_neither_tool_imports_torch(tmp_path: Path) -> None:
    report = tmp_path / "recall.json"
    first, text = probe("proposals.py", *TINY, "workers=1", f"output={report}", tmp_path=tmp_path)
    assert first == {"code": 0, "heavy": []}, text
    recall = json.loads(report.read_text())
    assert recall["train"]["images"] == 6 and recall["train"]["searched_images"] == 6
    assert 0.0 <= recall["train"]["recall@0.5"] <= 1.0 and recall["train"]["boxes_per_image"] > 0

    second, text = probe("proposals.py", *TINY, f"output={report}", tmp_path=tmp_path)
    assert second == {"code": 0, "heavy": []}, text
    again = json.loads(report.read_text())
    for split in ("train", "val"):
        assert again[split]["searched_images"] == 0
        assert again[split]["cached_images"] == recall[split]["images"]
        assert again[split]["recall@0.5"] == recall[split]["recall@0.5"]

    # Another search parameter is another cache entry: everything is searched again.
    third, text = probe("proposals.py", *TINY, "split=val", "data.proposals.wrapper.min_size=6", f"output={report}",
                        tmp_path=tmp_path)
    assert third["code"] == 0, text
    assert json.loads(report.read_text())["val"]["searched_images"] == 2

    # Exit code 1 only says the check found problems (6 tiny images may miss a class entirely).
    # Without config=: naming an experiment adds its prior-coverage check, which needs torch.
    checked, text = probe("check_dataset.py", *TINY[1:], tmp_path=tmp_path)
    assert checked["code"] in (0, 1) and checked["heavy"] == [], text
    assert '"num_images": 6' in text and '"num_images": 2' in text
