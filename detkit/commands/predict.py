"""Run a trained detector on images: draw the detections (PNG) and write them as JSON.

    detkit predict checkpoint=outputs/.../best.pt input=IMAGE_OR_DIR output=DIR [score=0.3] [ground_truth=GT.json]

Writes into DIR:
- `<image>.png`: the image with its detections drawn;
- `detections.json`: `{file: [{"box": [x1, y1, x2, y2], "score": s, "label": name}, ...]}`, image pixels;
- `coco_results.json`: the same detections as a COCO results file (`bbox` as x, y, w, h), which
  `detkit eval ground_truth=GT.json detections=DIR/coco_results.json` scores. Image and category ids
  come from `ground_truth=GT.json` (images matched by file name, classes by name) when given;
  otherwise an image's id is its file name's number (`000123.jpg` → 123) or its 1-based position
  in the sorted input, and a class's id is its label (1..C, the checkpoint's class order).

`score` (default 0.3) filters what is drawn and written. Detectors that score selective-search
proposals (Fast R-CNN, R-CNN) search them here with the checkpoint's settings, through the
on-disk cache that training uses. Other key=value arguments override the checkpoint's config.
"""

from __future__ import annotations

import json
from pathlib import Path

from detkit.engine.config import ConfigError, split_arguments

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
USAGE = "usage: detkit predict checkpoint=PATH input=IMAGE_OR_DIR output=DIR [score=0.3] [ground_truth=GT.json]"


def run(argv: list[str]) -> int:
    own, rest = split_arguments(argv, ("checkpoint", "input", "output", "score", "ground_truth"))
    if not {"checkpoint", "input", "output"} <= set(own):
        raise ConfigError(USAGE)
    images = list_images(Path(own["input"]))
    from detkit.api import load

    predictor = load(own["checkpoint"], overrides=rest)
    ids = coco_ids(images, predictor.class_names, own.get("ground_truth"))
    predict_files(predictor, images, Path(own["output"]), score_threshold=float(own.get("score", 0.3)), coco_ids=ids)
    return 0


def list_images(path: Path) -> list[Path]:
    """``path`` itself when it is a file, else the image files directly inside the folder, sorted."""
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if files:
            return files
        raise FileNotFoundError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {path}")
    raise FileNotFoundError(f"input not found: {path}")


def coco_ids(images: list[Path], class_names: list[str], ground_truth: str | None) -> tuple[list[int], list[int]]:
    """``(image ids in the order of images, category ids in label order)`` for the COCO results."""
    if ground_truth is None:
        numbered = [int(p.stem) if p.stem.isdigit() else None for p in images]
        if all(n is not None for n in numbered) and len(set(numbered)) == len(numbered):
            return numbered, list(range(1, len(class_names) + 1))
        return list(range(1, len(images) + 1)), list(range(1, len(class_names) + 1))
    data = json.loads(Path(ground_truth).read_text())
    by_file = {Path(image["file_name"]).name: int(image["id"]) for image in data.get("images", [])}
    by_name = {category["name"]: int(category["id"]) for category in data.get("categories", [])}
    unknown_images = [p.name for p in images if p.name not in by_file]
    unknown_classes = [name for name in class_names if name not in by_name]
    if unknown_images or unknown_classes:
        raise ValueError(
            f"{ground_truth} does not describe these inputs: "
            + (f"images not listed (by file name): {', '.join(unknown_images[:10])}; " if unknown_images else "")
            + (f"classes not among its categories: {', '.join(unknown_classes)}" if unknown_classes else "")
        )
    return [by_file[p.name] for p in images], [by_name[name] for name in class_names]


def predict_files(predictor, images: list[Path], out_dir: Path, *, score_threshold: float, coco_ids) -> dict:
    """Detect on every image file; write the pictures, ``detections.json`` and ``coco_results.json``
    into ``out_dir``. Returns the per-file detections as written to ``detections.json``."""
    from detkit.data.image_files import read_image
    from detkit.utils.visualization import draw_boxes, save_image

    image_ids, category_ids = coco_ids
    per_file, coco_results = {}, []
    for path, image_id in zip(images, image_ids, strict=True):
        # The predictor reads the file itself: proposal-scoring detectors key their cache by its bytes.
        result = predictor(path, score_threshold=score_threshold)
        boxes, scores, labels = result["boxes"], result["scores"], result["labels"]
        save_image(out_dir / f"{path.stem}.png", draw_boxes(read_image(path), boxes, labels, predictor.class_names, scores=scores))
        per_file[path.name] = [
            {"box": [round(v, 2) for v in box], "score": round(float(score), 4), "label": name}
            for box, score, name in zip(boxes.tolist(), scores, result["names"], strict=True)
        ]
        coco_results += [
            {"image_id": image_id, "category_id": category_ids[int(label) - 1],
             "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(score)}
            for (x1, y1, x2, y2), score, label in zip(boxes.tolist(), scores, labels, strict=True)
        ]  # fmt: skip
        print(f"{path.name}: {len(per_file[path.name])} detections")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "detections.json").write_text(json.dumps(per_file, indent=2))
    (out_dir / "coco_results.json").write_text(json.dumps(coco_results))
    print(f"Wrote {len(images)} images, detections.json and coco_results.json to {out_dir}")
    return per_file
