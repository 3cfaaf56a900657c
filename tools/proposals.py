"""Precompute selective-search proposals for a dataset (parallel, cached) and report their recall.

    python tools/proposals.py config=fast_rcnn_resnet18_shapes       # the experiment's search settings
    python tools/proposals.py data=voc data.root=VOCdevkit/VOC2007 split=train workers=8
    python tools/proposals.py config=rcnn_vgg16_voc07 data.proposals.wrapper.strategy=quality output=recall.json

Search settings come from the experiment's `data.proposals.wrapper` section (defaults:
detkit.proposals.selective_search.SelectiveSearchParams). Proposals go to the on-disk cache
(`cache_dir`, default $DETKIT_PROPOSAL_CACHE or ~/.cache/detkit/proposals) keyed by image content
and search settings, so training finds them there and a second run only reads the cache.
Own arguments: split=train|val (default both), workers=N (default all cores), output=FILE.json.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from omegaconf import OmegaConf  # noqa: E402

# Only torch-free modules: a second run, which reads the cache, is over in about a second.
from detkit.engine.config import ConfigError, instantiate_dataset, load_config, split_arguments  # noqa: E402
from detkit.proposals.compute import compute_dataset_proposals, format_recall  # noqa: E402
from detkit.proposals.selective_search import params_from_options  # noqa: E402

OWN_KEYS = ("split", "workers", "output")


def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    own, rest = split_arguments(argv, OWN_KEYS)
    splits = [own["split"]] if "split" in own else ["train", "val"]
    report = {}
    try:
        cfg = load_config(rest)
        options = OmegaConf.to_container(cfg.data.get("proposals", {}).get("wrapper", {}), resolve=True)
        params = params_from_options(options)
        for split in splits:
            # The raw records (no transform, no proposal wrapper): the search runs on stored images.
            dataset = instantiate_dataset(cfg, split)
            result = compute_dataset_proposals(
                dataset,
                params,
                cache_dir=options.get("cache_dir"),
                num_workers=int(own["workers"]) if "workers" in own else None,
                description=f"{split} proposals",
            )
            print(f"{split}: {format_recall(result.recall)}")
            report[split] = dict(result.recall, params=params.describe())
    except (ConfigError, FileNotFoundError, ValueError, TypeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if "output" in own:
        Path(own["output"]).write_text(json.dumps(report, indent=2))
        print(f"Report written to {own['output']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
