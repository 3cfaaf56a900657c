"""Run a trained detector on images: draw the detections (PNG) and write them as JSON.

    detkit predict checkpoint=outputs/.../best.pt input=IMAGE_OR_DIR output=DIR [score=0.3] [ground_truth=GT.json]
    detkit predict checkpoint=… input=… output=… backend=openvino precision=int8 [calibration=DIR]

Writes into DIR:
- `<image>.png`: the image with its detections drawn;
- `detections.json`: `{file: [{"box": [x1, y1, x2, y2], "score": s, "label": name}, ...]}`, image pixels;
- `coco_results.json`: the same detections as a COCO results file (`bbox` as x, y, w, h), which
  `detkit eval ground_truth=GT.json detections=DIR/coco_results.json` scores. Image and category ids
  come from `ground_truth=GT.json` (images matched by file name, classes by name) when given;
  otherwise an image's id is its file name's number (`000123.jpg` → 123) or its 1-based position
  in the sorted input, and a class's id is its label (1..C, the checkpoint's class order).

`score` (default 0.3) is the display threshold: only detections scoring at least that are drawn
and listed in `detections.json`. `coco_results.json` keeps every detection the model returns (the
model's own score threshold, as in `detkit eval checkpoint=`), so that scoring it gives the model's
numbers rather than those of a thresholded subset. Detectors that score selective-search
proposals (Fast R-CNN, R-CNN) search them here with the checkpoint's settings, through the
on-disk cache that training uses. `backend=onnxruntime|openvino|auto` runs the checkpoint's ONNX
export (cached beside it) through that runtime instead of PyTorch (docs/EXPORT.md); with
`precision=int8`, its INT8 model, calibrated on the first `calibration_images=` (32) images of the
checkpoint's data or of `calibration=DIR`. Other key=value arguments override the checkpoint's config.
"""

from __future__ import annotations

import json
from pathlib import Path

from detkit.commands import RUNTIME_KEYS, runtime_arguments
from detkit.engine.config import ConfigError, split_arguments

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
USAGE = (
    "usage: detkit predict checkpoint=PATH input=IMAGE_OR_DIR output=DIR [score=0.3] [ground_truth=GT.json] "
    "[backend=torch|onnxruntime|openvino|auto] [precision=fp32|int8] [calibration=DIR] [calibration_images=32]"
)


def run(argv: list[str]) -> int:
    own, rest = split_arguments(argv, ("checkpoint", "input", "output", "score", "ground_truth", *RUNTIME_KEYS))
    if not {"checkpoint", "input", "output"} <= set(own):
        raise ConfigError(USAGE)
    images = list_images(Path(own["input"]))
    from detkit.api import load

    predictor = load(own["checkpoint"], overrides=rest, **runtime_arguments(own))
    ids = coco_ids(images, predictor.class_names, own.get("ground_truth"))
    display = float(own.get("score", 0.3))
    predict_files(predictor, images, Path(own["output"]), score_threshold=display, coco_ids=ids)
    own_threshold = model_score_threshold(predictor.cfg)
    print(
        f"Drawn and in detections.json: detections with score >= {display:g} (score=). "
        f"In coco_results.json: every detection the model returned ({own_threshold or 'no score threshold'})."
    )
    return 0


def model_score_threshold(cfg) -> str | None:
    """The model's own score threshold as ``key = value`` (the first ``score_threshold`` in the
    model config), or None when its config has none."""
    from omegaconf import DictConfig, OmegaConf

    def find(node, prefix: str) -> str | None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "score_threshold" and not isinstance(value, dict | list):
                    return f"{prefix}{key} = {value}"
                found = find(value, f"{prefix}{key}.")
                if found:
                    return found
        return None

    model = cfg.get("model") if isinstance(cfg, DictConfig) else None
    if model is None:
        return None
    return find(OmegaConf.to_container(model, resolve=False), "model.")


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
    """Detect on every image file; write the pictures, ``detections.json`` (both with the
    detections scoring at least ``score_threshold``) and ``coco_results.json`` (every detection
    the model returns) into ``out_dir``. Returns the per-file detections as written to
    ``detections.json``."""
    from detkit.data.image_files import read_image
    from detkit.utils.visualization import draw_boxes, save_image

    image_ids, category_ids = coco_ids
    per_file, coco_results = {}, []
    for path, image_id in zip(images, image_ids, strict=True):
        # The predictor reads the file itself: proposal-scoring detectors key their cache by its bytes.
        result = predictor(path)
        boxes, scores, labels = result["boxes"], result["scores"], result["labels"]
        shown = (scores >= score_threshold).nonzero().flatten()
        drawn = draw_boxes(read_image(path), boxes[shown], labels[shown], predictor.class_names, scores=scores[shown])
        save_image(out_dir / f"{path.stem}.png", drawn)
        per_file[path.name] = [
            {
                "box": [round(v, 2) for v in boxes[i].tolist()],
                "score": round(float(scores[i]), 4),
                "label": result["names"][i],
            }
            for i in shown.tolist()
        ]
        coco_results += [
            {"image_id": image_id, "category_id": category_ids[int(label) - 1],
             "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(score)}
            for (x1, y1, x2, y2), score, label in zip(boxes.tolist(), scores.tolist(), labels.tolist(), strict=True)
        ]  # fmt: skip
        drawn_count = len(per_file[path.name])
        print(f"{path.name}: {drawn_count} drawn (score >= {score_threshold:g}), {len(scores)} in the results file")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "detections.json").write_text(json.dumps(per_file, indent=2))
    (out_dir / "coco_results.json").write_text(json.dumps(coco_results))
    print(f"Wrote {len(images)} images, detections.json and coco_results.json to {out_dir}")
    return per_file
