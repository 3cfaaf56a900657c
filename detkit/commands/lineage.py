"""Every trained detector side by side: accuracy, training cost and inference speed, as a table and a picture.

    detkit lineage runs=RUN_A,RUN_B,... [output=outputs/lineage] [images=50] [batch_sizes=1,8] [threads=null]
    detkit lineage runs=RUN_A,RUN_B device=cpu threads=1 repeats=7 output=lineage_cpu

`runs`: run folders written by `tools/train.py` (each with metrics.json and last.pt), comma-separated.
Accuracy (VOC12 mAP50, COCO AP), training time and iterations are each run's metrics.json; the
model timed is its last.pt (the weights metrics.json was measured on; checked by iteration), on the
first `images` images of its validation split at each of `batch_sizes`, median and spread of
`repeats` passes (default 5) after a warm-up batch. `threads`: torch CPU threads for every run
(default null: torch's default); `device`: auto (default), cpu or cuda. Writes lineage.md,
lineage.json and lineage.png (mAP50 against images/s at the smallest batch) into `output`, and
prints the table. See docs/LINEAGE.md.
"""

from __future__ import annotations

from detkit.engine.config import ConfigError, split_arguments

OWN_KEYS = ("runs", "output", "images", "batch_sizes", "threads", "device", "repeats")


def run(argv: list[str]) -> int:
    from detkit.analysis.lineage.report import format_markdown, write_report
    from detkit.analysis.lineage.table import lineage

    args, unknown = split_arguments(argv, OWN_KEYS)
    if unknown or not args.get("runs"):
        raise ConfigError(f"need runs=DIR,DIR…; unknown arguments {unknown}; keys: {', '.join(OWN_KEYS)}")
    threads = args.get("threads", "null")
    report = lineage(
        [part for part in args["runs"].split(",") if part],
        images=_whole(args.get("images", "50"), "images"),
        batch_sizes=[_whole(part, "batch_sizes") for part in args.get("batch_sizes", "1,8").split(",") if part],
        threads=None if threads.lower() in ("null", "none", "") else _whole(threads, "threads"),
        device=args.get("device", "auto"),
        repeats=_whole(args.get("repeats", "5"), "repeats"),
    )
    paths = write_report(report, args.get("output", "outputs/lineage"))
    print(format_markdown(report))
    print("Wrote " + ", ".join(str(path) for path in paths.values()))
    return 0


def _whole(text: str, key: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{key} takes whole numbers, got {text!r}") from None
