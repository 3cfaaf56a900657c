"""Making and saving matplotlib figures without pyplot.

Figures are ``matplotlib.figure.Figure`` objects saved through the Agg canvas, never through
``pyplot``: no global backend is switched and no window is opened, so pictures can be drawn on a
server, in a notebook and in threads alike. matplotlib is imported on use: code that only computes
numbers never needs it.
"""

from __future__ import annotations

import math
from pathlib import Path


def new_figure(width: float, height: float, *, layout: str | None = "constrained", dpi: float = 100):
    """A ``width`` x ``height`` inch figure, not attached to any pyplot state."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout=layout, dpi=dpi)


def save_figure(figure, path: str | Path, *, dpi: float | None = 100) -> Path:
    """Write ``figure`` as a PNG at ``path`` (folders made as needed); the path written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi if dpi is not None else figure.dpi)
    return path


def plain_log_axis(ax, low: float, high: float, *, axis: str = "y") -> None:
    """Log-scale ``axis`` (``"x"`` or ``"y"``) with plain tick labels (0.3, 2 rather than 3 x 10^-1);
    the 2, 3 and 5 between powers of ten are labelled too while the data span at most two decades."""
    from matplotlib.ticker import FuncFormatter

    if axis == "x":
        ax.set_xscale("log")
    else:
        ax.set_yscale("log")
    scale_axis = ax.xaxis if axis == "x" else ax.yaxis
    few_decades = math.log10(high / low) <= 2

    def minor(value: float, _position) -> str:
        leading = round(value / 10 ** math.floor(math.log10(value)))
        return f"{value:g}" if few_decades and leading in (2, 3, 5) else ""

    scale_axis.set_major_formatter(FuncFormatter(lambda value, _position: f"{value:g}"))
    scale_axis.set_minor_formatter(FuncFormatter(minor))
