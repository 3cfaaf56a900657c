"""Generate the synthetic "scenes" dataset: a second dataset, unlike the built-in shapes, written
as a user's own data would be (COCO JSON, VOC XML, YOLO txt), to try any experiment on.

    detkit make-dataset                                  # all three layouts, into the cache
    detkit make-dataset layout=coco output=data/scenes   # data/scenes/coco/...
    detkit make-dataset num_train=2000 num_val=400 seed=1

Five object kinds (star, arrow, heart, digit, checker) with COCO category ids 3, 7, 12, 20, 31;
images of 240–352 px per side (mixed aspect), tiny (7–10 px) to large objects, partial
occlusion, objects cut by the border, about 8 % images without objects. Deterministic: the same
arguments give the same files.

Own keys: layout (coco | voc | yolo | all; default all), output (a folder; default the cache
$DETKIT_CACHE/scenes/<hash>/ or ~/.cache/detkit/scenes/<hash>/, reused when already complete),
num_train (400), num_val (100), seed (0), and any other ``ScenesParams`` field (min_side,
max_side, min_size, max_size, tiny_fraction, max_objects, empty_fraction, max_occlusion).
Prints the folders and the training command of each layout.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

from detkit.engine.config import ConfigError

LAYOUT_CHOICES = ("coco", "voc", "yolo", "all")


def _params(given: dict[str, str]):
    from detkit.data.synthetic.scenes_render import ScenesParams

    fields = {f.name: f for f in dataclasses.fields(ScenesParams)}
    values = {}
    for key, text in given.items():
        if key not in fields:
            raise ConfigError(f"make-dataset: unknown key {key!r}; valid keys: layout, output, {', '.join(fields)}")
        default = getattr(ScenesParams(), key)
        try:
            values[key] = (
                tuple(int(v) for v in text.strip("[]()").split(","))
                if isinstance(default, tuple)
                else type(default)(text)
            )
        except ValueError:
            raise ConfigError(f"make-dataset: {key}={text} is not a valid {type(default).__name__}") from None
    return ScenesParams(**values)


def train_commands(root: Path, layouts: tuple[str, ...]) -> dict[str, str]:
    """How to train on each written layout with the README's flow (``config=EXPERIMENT`` and ``data=``)."""
    from detkit.data.synthetic.scenes_render import SCENE_CATEGORIES

    prefix = "python tools/train.py config=EXPERIMENT"
    commands = {}
    if "coco" in layouts:
        coco = root / "coco"
        commands["coco"] = (f"{prefix} data=coco data.train.ann_file={coco}/annotations/instances_train.json "
                            f"data.train.img_dir={coco}/train data.val.ann_file={coco}/annotations/instances_val.json "
                            f"data.val.img_dir={coco}/val")  # fmt: skip
    if "voc" in layouts:
        names = ",".join(SCENE_CATEGORIES.values())
        commands["voc"] = (f"{prefix} data=voc data.root={root / 'voc'} data.train.split=train data.val.split=val "
                           f"'data.class_names=[{names}]'")  # fmt: skip
    if "yolo" in layouts:
        commands["yolo"] = f"{prefix} data=yolo data.yaml={root / 'yolo' / 'data.yaml'}"
    return commands


def run(argv: list[str]) -> int:
    from detkit.data.synthetic.scenes import LAYOUTS, ensure_scenes, write_scenes

    given = {}
    for argument in argv:
        key, equals, value = argument.partition("=")
        if not equals:
            raise ConfigError(f"make-dataset: expected key=value, got {argument!r}")
        given[key] = value
    layout = given.pop("layout", "all")
    if layout not in LAYOUT_CHOICES:
        raise ConfigError(f"make-dataset: layout={layout} is not one of {', '.join(LAYOUT_CHOICES)}")
    layouts = LAYOUTS if layout == "all" else (layout,)
    output = given.pop("output", None)
    params = _params(given)
    started = time.perf_counter()
    if output is None:
        root = ensure_scenes(params, layouts=layouts)
    else:
        root = Path(output)
        taken = [str(root / name) for name in layouts if (root / name).exists() and any((root / name).iterdir())]
        if taken:
            raise ConfigError(
                f"make-dataset: {', '.join(taken)} already exist and are not empty; choose another output"
            )
        write_scenes(root, params, layouts)
    root = root.resolve()
    print(f"scenes data ({params.num_train} train + {params.num_val} val images, seed {params.seed}) in {root} "
          f"({time.perf_counter() - started:.1f} s)", file=sys.stderr)  # fmt: skip
    for name, command in train_commands(root, layouts).items():
        print(f"{name}: {root / name}\n  {command}")
    return 0
