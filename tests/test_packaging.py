"""Installing detkit: the package list in pyproject.toml is complete, and a wheel installed into a
fresh virtual environment trains, loads and predicts from an empty folder without the checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

from setuptools import find_packages

REPO = Path(__file__).resolve().parents[1]


def test_every_package_is_listed_for_the_wheel() -> None:
    listed = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert sorted(listed) == sorted([*find_packages(str(REPO), include=["detkit*"]), "detkit.configs"])


def _run(command: list[str], *, cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def test_installed_wheel_trains_loads_and_predicts_from_an_empty_folder(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    # No build isolation: setuptools is here already, and a build must not need the network.
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(REPO)],
         cwd=tmp_path, env=dict(os.environ))  # fmt: skip
    wheel = next(dist.glob("detkit-*.whl"))
    # The environment sees this interpreter's packages (torch is gigabytes) but not the checkout:
    # its own site-packages, where the wheel goes, comes first on its path.
    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=True)
    python = str(env_dir / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DETKIT_CONFIG_DIR")}
    env.update(DETKIT_CACHE=str(tmp_path / "cache"), PATH=f"{env_dir / 'bin'}{os.pathsep}{env['PATH']}")
    _run([python, "-m", "pip", "install", "-q", "--no-deps", str(wheel)], cwd=tmp_path, env=env)

    work = tmp_path / "empty"
    work.mkdir()
    _run(["detkit", "train", "engine.max_iters=10", "output_dir=run", "data.num_train=16", "data.num_val=4",
          "data.num_workers=0", "engine.vis_images=0"], cwd=work, env=env)  # fmt: skip
    script = (
        "import detkit, json, sys\n"
        "from detkit.engine.config import config_dir\n"
        "predictor = detkit.load('run/last.pt', device='cpu')\n"
        "image = next(p for p in __import__('pathlib').Path(sys.argv[1]).rglob('*.jpg'))\n"
        "result = predictor(str(image))\n"
        "print(json.dumps({'module': detkit.__file__, 'configs': str(config_dir()), 'boxes': len(result['boxes']),"
        " 'names': predictor.class_names}))\n"
    )
    report = _run([python, "-c", script, str(tmp_path / "cache")], cwd=work, env=env).strip().splitlines()[-1]
    found = json.loads(report)
    assert found["module"].startswith(str(env_dir)), found  # the installed copy, not the checkout
    assert found["configs"].startswith(str(env_dir)) and found["configs"].endswith(os.path.join("detkit", "configs"))
    assert found["names"] == ["circle", "square", "triangle", "plus", "ring"]
    assert (work / "run" / "metrics.json").is_file()
