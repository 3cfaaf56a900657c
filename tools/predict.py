"""Run a trained detector on images: draw the detections (PNG) and write them as JSON.

    python tools/predict.py checkpoint=outputs/.../best.pt input=IMAGE_OR_DIR output=DIR [score=0.3]

Writes DIR/<image>.png with the boxes drawn and DIR/detections.json:
``{file: [{"box": [x1, y1, x2, y2], "score": s, "label": name}, ...]}`` in the images' pixels.

Detectors that score selective-search proposals (Fast R-CNN, R-CNN) get them searched here with
the checkpoint's search settings (``data.proposals.wrapper``), through the same on-disk cache as
training and tools/proposals.py, so a second prediction on the same images skips the search.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import numpy as np  # noqa: E402
import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from detkit.data.base import read_image  # noqa: E402
from detkit.data.transforms import eval_transforms  # noqa: E402
from detkit.engine.build import ConfigError, build_model, load_config_with_overrides  # noqa: E402
from detkit.engine.checkpoint import load_model_weights, read_checkpoint  # noqa: E402
from detkit.engine.config import split_arguments  # noqa: E402
from detkit.engine.dist import select_device  # noqa: E402
from detkit.proposals.cache import ProposalCache, hash_file  # noqa: E402
from detkit.proposals.precomputed import needs_precomputed_proposals  # noqa: E402
from detkit.proposals.selective_search import params_from_options, selective_search  # noqa: E402
from detkit.structures import boxes_to_original  # noqa: E402
from detkit.utils.visualization import draw_boxes, save_image  # noqa: E402

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
USAGE = "usage: tools/predict.py checkpoint=PATH input=IMAGE_OR_DIR output=DIR [score=0.3] [key=value ...]"


def proposal_cache_for(cfg) -> ProposalCache:
    """The cache (and search settings) of the checkpoint's selective-search proposals."""
    options = OmegaConf.to_container(cfg.data.get("proposals", {}).get("wrapper", {}), resolve=True)
    return ProposalCache(options.get("cache_dir"), params_from_options(options))


def stored_image_proposals(path: Path, original: np.ndarray, cache: ProposalCache) -> np.ndarray:
    """``[P, 4]`` float32 xyxy proposals of the image at ``path`` in its stored pixels (cached)."""
    content_hash = hash_file(path)
    boxes = cache.get(content_hash)
    if boxes is None:
        boxes = selective_search(original, cache.params)
        cache.put(content_hash, boxes)
    return boxes


def list_images(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if files:
            return files
        raise FileNotFoundError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {path}")
    raise FileNotFoundError(f"input not found: {path}")


@torch.no_grad()
def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    own, rest = split_arguments(argv, ("checkpoint", "input", "output", "score"))
    try:
        if not {"checkpoint", "input", "output"} <= set(own):
            raise ConfigError(USAGE)
        state = read_checkpoint(own["checkpoint"])
        cfg = load_config_with_overrides(state["config_yaml"], rest)
        names = list(state["class_names"])
        device = select_device(cfg.engine.device)
        model = build_model(cfg, num_classes=len(names)).to(device).eval()
        load_model_weights(state, model, use_ema=state.get("ema") is not None)
        images = list_images(Path(own["input"]))
    except (ConfigError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    transform = eval_transforms(int(cfg.data.input_size))
    proposal_cache = proposal_cache_for(cfg) if needs_precomputed_proposals(model) else None
    threshold = float(own.get("score", 0.3))
    out_dir = Path(own["output"])
    results = {}
    for path in images:
        original = read_image(path)
        targets = None
        if proposal_cache is None:
            image, _, _, (sx, sy) = transform(original, np.zeros((0, 4), np.float32), np.zeros(0, np.int64))
        else:
            # The proposals go through the transform as boxes, so they land where the image does.
            proposals = stored_image_proposals(path, original, proposal_cache)
            image, moved, _, (sx, sy) = transform(original, proposals, np.arange(len(proposals)))
            targets = [{"proposals": torch.as_tensor(np.asarray(moved, np.float32).reshape(-1, 4)).to(device)}]
        tensor = torch.from_numpy(image).permute(2, 0, 1).float().div(255)
        det = model(tensor[None].to(device), targets)[0]
        keep = det["scores"] >= threshold
        target = {"scale": torch.tensor([sx, sy]), "orig_size": torch.tensor(original.shape[:2])}
        boxes = boxes_to_original(det["boxes"][keep].float().cpu(), target)
        scores, labels = det["scores"][keep].cpu(), det["labels"][keep].cpu()
        save_image(out_dir / f"{path.stem}.png", draw_boxes(original, boxes, labels, names, scores=scores))
        results[path.name] = [
            {"box": [round(v, 2) for v in b], "score": round(float(s), 4), "label": names[int(lab) - 1]}
            for b, s, lab in zip(boxes.tolist(), scores, labels, strict=True)
        ]
        print(f"{path.name}: {len(results[path.name])} detections")
    (out_dir / "detections.json").write_text(json.dumps(results, indent=2))
    print(f"Wrote {len(images)} images and detections.json to {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
