"""Write the offline HTML report of an evaluation, or compare two evaluations.

    detkit report run=DIR
    detkit report run=A,B [output=compare.html]

`run=DIR`: a training run's folder, or a folder `detkit eval` wrote its report into; writes
DIR/report.html from the files there (metrics.json, per_class.json, the pictures). Training and
`detkit eval` write this page themselves; this rebuilds it, e.g. for a run folder of an older detkit.
Open it in any browser, offline: it needs nothing but the folder.

`run=A,B`: the two evaluations of the same validation data side by side (metrics, per-class AP
and error breakdown, with B - A); written to output= (default: A/compare_<B's folder name>.html).
"""

from __future__ import annotations

from pathlib import Path

from detkit.engine.config import ConfigError, split_arguments

USAGE = "usage: detkit report run=DIR | run=A,B [output=compare.html]"


def run(argv: list[str]) -> int:
    args, rest = split_arguments(argv, ("run", "output"))
    if rest or "run" not in args:
        raise ConfigError(f"unexpected arguments {rest}; {USAGE}" if rest else USAGE)
    runs = [Path(part) for part in args["run"].split(",") if part]
    for folder in runs:
        if not folder.is_dir():
            raise FileNotFoundError(f"run folder not found: {folder}")
    if len(runs) == 1:
        if "output" in args:
            raise ConfigError(
                f"output= is for comparing two runs; one run's page is DIR/report.html. {USAGE}"
            )
        from detkit.reporting.html_report import write_html_report

        print(f"Report written to {write_html_report(runs[0])}")
    elif len(runs) == 2:
        from detkit.reporting.html_compare import write_comparison_html

        output = Path(args.get("output") or runs[0] / f"compare_{runs[1].resolve().name}.html")
        print(f"Comparison written to {write_comparison_html(runs[0], runs[1], output)}")
    else:
        raise ConfigError(f"run= takes one folder or two, got {len(runs)}; {USAGE}")
    return 0
