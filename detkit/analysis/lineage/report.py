"""The lineage table and picture of :func:`detkit.analysis.lineage.table.lineage`'s report: markdown,
JSON and a PNG of accuracy against inference speed, one point per run, coloured by family."""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

from detkit.analysis.lineage.table import BASELINE, ONE_STAGE, OTHER, TWO_STAGE
from detkit.utils.figures import new_figure, plain_log_axis, save_figure

FAMILY_COLOURS = {TWO_STAGE: "tab:blue", ONE_STAGE: "tab:orange", BASELINE: "tab:gray", OTHER: "tab:purple"}
CACHED_MARK = "†"


def duration(seconds: float) -> str:
    """``4 min 39 s`` (as docs/BENCHMARKS.md writes wall times)."""
    minutes, rest = divmod(round(float(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def rate_text(rate: dict) -> str:
    """``median [lowest–highest]`` images/s, with about three significant digits."""
    digits = 2 if rate["median"] < 10 else 1 if rate["median"] < 100 else 0
    return f"{rate['median']:.{digits}f} [{rate['min']:.{digits}f}–{rate['max']:.{digits}f}]"


def machine_text(machine: dict) -> str:
    """``AMD EPYC 7B13 (2 cores)``, with the GPU first when the models ran on one."""
    cpu = f"{machine['cpu']} ({machine['cores']} cores)"
    return f"{machine['gpu']}, {cpu}" if machine["gpu"] else cpu


def format_markdown(report: dict) -> str:
    """The table with what it was measured on and how, and the notes its marks refer to."""
    machine, settings, rows = report["machine"], report["settings"], report["rows"]
    batches = [str(batch) for batch in settings["batch_sizes"]]
    header = ["experiment", "detector", "family", "backbone", "mAP50 VOC12", "COCO AP", "training time", "iterations"]
    header += [f"images/s batch {batch}" for batch in batches]
    load = machine["load_average"]
    lines = [
        "# detkit lineage",
        "",
        f"Machine: {machine_text(machine)}; device {machine['device']}, torch {machine['torch']}, "
        f"{machine['threads']} CPU threads"
        + (f"; load average {load:.1f} when measuring began." if load is not None else "."),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for row in rows:
        mark = f" {CACHED_MARK}" if row["cached_proposals"] else ""
        cells = [
            f"`{row['experiment']}`", row["detector"] + mark, row["family"], row["backbone"],
            f"{row['voc12_mAP']:.3f}", f"{row['coco_AP']:.3f}", duration(row["train_seconds"]), str(row["iterations"]),
        ]  # fmt: skip
        cells += [rate_text(row["images_per_s"][batch]) for batch in batches]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Accuracy: each run's validation split, as its `metrics.json` holds it. Training time: its "
        "`train_seconds`, on the machine and under the load of that training run.",
        f"Speed: images/s of the model's forward pass with postprocessing (eval mode, no gradients) "
        f"on the first {settings['images']} validation images of each run, whole batches only, after "
        f"{settings['warmup_batches']} warm-up batch; median [lowest–highest] of {settings['repeats']} "
        "passes. Image decoding, letterboxing and the copy to the device are not timed (as in evaluation).",
    ]
    if any(row["cached_proposals"] for row in rows):
        lines.append(
            f"{CACHED_MARK} scores precomputed selective-search proposals read from the on-disk cache: "
            "their computation is excluded from images/s (evaluation runs them the same way)."
        )
    return "\n".join(lines) + "\n"


LABEL_GAP = 4.0  # points between a marker and the start of its label
MARKER_HALF = 3.5  # points: half the side of the box a scatter marker covers
LABEL_OFFSETS = (4.0, -5.0, -14.0, 13.0, -23.0, 22.0, -32.0, 31.0)  # baselines tried, nearest first


def _label_box(x: float, y: float, label: str, offset: float, fontsize: float) -> tuple[float, float, float, float]:
    """(left, bottom, right, top) in points of ``label`` drawn from (x + gap, y + offset): about
    0.6 em a character, a quarter em of descender below the baseline and three quarters above."""
    left = x + LABEL_GAP
    return left, y + offset - 0.25 * fontsize, left + 0.6 * fontsize * len(label), y + offset + 0.75 * fontsize


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    return width * height if width > 0 and height > 0 else 0.0


def _label_offsets(positions: list[tuple[float, float]], labels: list[str], fontsize: float = 7.0) -> list[float]:
    """Vertical offsets (points) of each label's baseline from its marker at ``positions`` (points
    on the page). Labels are placed from the highest marker down; each takes the first offset of
    ``LABEL_OFFSETS`` whose box covers no label placed before and no other marker, or, where every
    offset collides, the one that covers the least area, so clustered labels stack instead of
    printing over each other."""
    markers = [(x - MARKER_HALF, y - MARKER_HALF, x + MARKER_HALF, y + MARKER_HALF) for x, y in positions]
    offsets = [LABEL_OFFSETS[0]] * len(positions)
    placed: list[tuple[float, float, float, float]] = []
    for i in sorted(range(len(positions)), key=lambda k: -positions[k][1]):
        x, y = positions[i]
        obstacles = placed + [box for j, box in enumerate(markers) if j != i]
        costs = []
        for offset in LABEL_OFFSETS:
            box = _label_box(x, y, labels[i], offset, fontsize)
            costs.append(sum(_overlap(box, other) for other in obstacles))
            if costs[-1] == 0.0:
                break
        offsets[i] = LABEL_OFFSETS[costs.index(min(costs))]
        placed.append(_label_box(x, y, labels[i], offsets[i], fontsize))
    return offsets


def plot_lineage(report: dict, path: str | Path) -> list[dict]:
    """mAP50 (VOC12) against images/s at the smallest batch size (log scale), one labelled point
    per run coloured by family, titled with the machine. Returns the points drawn."""
    batch = str(min(report["settings"]["batch_sizes"]))
    # The detector and its backbone: shorter than the experiment's name (the table names the
    # experiments); two runs of the same pair are told apart by their iterations.
    names = [f"{row['detector']} ({row['backbone']})" for row in report["rows"]]
    points = [
        {"label": name if names.count(name) == 1 else f"{name[:-1]}, {row['iterations']} it)",
         "x": row["images_per_s"][batch]["median"], "y": row["voc12_mAP"], "family": row["family"]}
        for name, row in zip(names, report["rows"], strict=True)
    ]  # fmt: skip
    figure = new_figure(8.0, 5.5)
    ax = figure.add_subplot(1, 1, 1)
    for family, colour in FAMILY_COLOURS.items():
        chosen = [point for point in points if point["family"] == family]
        if chosen:
            ax.scatter([p["x"] for p in chosen], [p["y"] for p in chosen], color=colour, label=family, zorder=3)
    speeds = [point["x"] for point in points]
    plain_log_axis(ax, min(speeds), max(speeds), axis="x")
    # Room on the right for the labels, which start at their points.
    ax.set_xlim(min(speeds) / 1.5, max(speeds) * 3.0)
    ax.set_xlabel(f"inference images/s at batch {batch} (log scale)")
    ax.set_ylabel("validation mAP50 (VOC12)")
    # From the tenth below the weakest run (0 at the lowest): the runs cluster near the top, where a
    # full 0-1 axis would stack their labels; the axis says where it starts.
    lowest = max(0.0, math.floor(min(point["y"] for point in points) * 10 - 1) / 10)
    ax.set_ylim(lowest - 0.02, 1.02)
    ax.grid(alpha=0.3, which="both")
    figure.legend(loc="outside lower center", ncols=len(FAMILY_COLOURS), fontsize=8, frameon=False)
    machine = report["machine"]
    title = f"detkit lineage on {machine_text(machine)}, torch {machine['torch']}, {machine['threads']} CPU threads"
    ax.set_title("\n".join(textwrap.wrap(title, 90)), fontsize=9)
    # Lay the figure out first, so that the markers' places on the page (in points) are final when
    # the labels are fitted around them.
    figure.draw_without_rendering()
    pixels_per_point = figure.dpi / 72.0
    positions = [tuple(ax.transData.transform((p["x"], p["y"])) / pixels_per_point) for p in points]
    offsets = _label_offsets(positions, [p["label"] for p in points])
    for point, offset in zip(points, offsets, strict=True):
        # A label pushed more than a line away from its marker gets a thin leader line back to it.
        leader = None if offset in LABEL_OFFSETS[:2] else {"arrowstyle": "-", "lw": 0.5, "color": "0.55", "shrinkB": 3}
        ax.annotate(point["label"], (point["x"], point["y"]), xytext=(LABEL_GAP, offset), textcoords="offset points",
                    fontsize=7, arrowprops=leader)  # fmt: skip
    save_figure(figure, path)
    return points


def write_report(report: dict, output_dir: str | Path) -> dict[str, Path]:
    """``lineage.md``, ``lineage.json`` and ``lineage.png`` in ``output_dir``; their paths."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: output_dir / f"lineage.{name}" for name in ("md", "json", "png")}
    paths["md"].write_text(format_markdown(report))
    paths["json"].write_text(json.dumps(report, indent=2) + "\n")
    plot_lineage(report, paths["png"])
    return paths
