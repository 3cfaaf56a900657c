"""Installing detkit: the package list in pyproject.toml is complete, and a wheel installed into a
fresh virtual environment trains, loads and predicts from an empty folder without the checkout."""

from __future__ import annotations

import json
import os
import site
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


def _site_dirs_of_running_environment() -> list[str]:
    """The folders this interpreter imports installed packages from, whatever it is: a virtual
    environment, a conda environment, the system Python or a user site."""
    folders = [*site.getsitepackages()]
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages()):
        folders.append(site.getusersitepackages())
    return [folder for folder in folders if os.path.isdir(folder)]


def _reach_running_environment(python: str) -> None:
    """Lets the new environment import the running one's packages (torch is gigabytes) behind its
    own site-packages, where the wheel goes. The folders are listed as plain paths in a .pth file,
    so the running environment's own .pth hooks (an editable install of this checkout among them)
    are not run there: the checkout stays out of reach."""
    query = [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]
    own_site = subprocess.run(query, capture_output=True, text=True, check=True).stdout.strip()
    folders = [folder for folder in _site_dirs_of_running_environment() if Path(folder) != Path(own_site)]
    (Path(own_site) / "running_environment.pth").write_text("".join(f"{folder}\n" for folder in folders))


def test_installed_wheel_trains_loads_and_predicts_from_an_empty_folder(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    # No build isolation: setuptools is here already, and a build must not need the network.
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(REPO)],
         cwd=tmp_path, env=dict(os.environ))  # fmt: skip
    wheel = next(dist.glob("detkit-*.whl"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = str(env_dir / "bin" / "python")
    _reach_running_environment(python)
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
