"""Precompute a dataset's proposals (parallel, cached) and report their recall.

    detkit proposals config=fast_rcnn_resnet18_shapes       # the experiment's search settings
    detkit proposals config=fast_rcnn_resnet18_shapes data.proposals.wrapper.method=edge_boxes
    detkit proposals data=voc data.root=VOCdevkit/VOC2007 split=train workers=8
    detkit proposals config=rcnn_vgg16_voc07 data.proposals.wrapper.strategy=quality output=recall.json

Search settings come from the experiment's `data.proposals.wrapper` section: `method`
(selective_search, the default, or edge_boxes) and that method's keys (defaults:
detkit.data.proposals.selective_search.SelectiveSearchParams, .edge_boxes.EdgeBoxesParams; a key
the section lacks takes a `+`, e.g. `+data.proposals.wrapper.max_boxes=500`). Proposals go to the on-disk cache
(`cache_dir`, default $DETKIT_PROPOSAL_CACHE or ~/.cache/detkit/proposals) keyed by image content
and search settings, so training finds them there and a second run only reads the cache.
Own arguments: split=train|val (default both), workers=N (default all cores), output=FILE.json.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from omegaconf import OmegaConf

# Only torch-free modules: a second run, which reads the cache, is over in about a second.
from detkit.data.proposals.compute import compute_dataset_proposals, format_recall
from detkit.data.proposals.methods import params_from_options
from detkit.engine.config import instantiate_dataset, load_config, split_arguments

# The wrapper's own keywords, beside the proposal method's settings.
WRAPPER_KEYS = ("_target_", "cache_dir", "num_workers", "progress", "split")


def run(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    own, rest = split_arguments(argv, ("split", "workers", "output"))
    splits = [own["split"]] if "split" in own else ["train", "val"]
    cfg = load_config(rest)
    options = OmegaConf.to_container(cfg.data.get("proposals", {}).get("wrapper", {}), resolve=True)
    try:
        settings = {key: value for key, value in options.items() if key not in WRAPPER_KEYS}
        params = params_from_options(settings, strict=True)
    except TypeError as error:  # an unknown or ill-typed search option: a user mistake, reported as one
        raise ValueError(str(error)) from None
    report = {}
    for split in splits:
        # The raw records (no transform, no proposal wrapper): the search runs on stored images.
        result = compute_dataset_proposals(
            instantiate_dataset(cfg, split),
            params,
            cache_dir=options.get("cache_dir"),
            num_workers=int(own["workers"]) if "workers" in own else None,
            description=f"{split} proposals",
        )
        print(f"{split}: {format_recall(result.recall)}")
        report[split] = dict(result.recall, params=params.describe())
    if "output" in own:
        Path(own["output"]).write_text(json.dumps(report, indent=2))
        print(f"Report written to {own['output']}", file=sys.stderr)
    return 0
