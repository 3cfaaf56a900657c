"""The proposal methods a dataset's proposals can come from, chosen by name.

``method``: ``selective_search`` (the default, and what configs and caches from before the
choice existed mean) or ``edge_boxes``. Each method's settings are a frozen dataclass
(:class:`SelectiveSearchParams`, :class:`EdgeBoxesParams`) whose ``key()`` names its cache
folder; Edge Boxes' key includes the method, so the two never share a folder, and selective
search's key is what it always was, so existing caches stay valid.

A config's ``data.proposals.wrapper`` section carries one flat set of keywords for every method
(e.g. ``strategy`` next to ``alpha``); each method reads its own and ignores the others'.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeAlias

import numpy as np

from detkit.data.proposals.edge_boxes import EdgeBoxesParams, edge_boxes
from detkit.data.proposals.selective_search import SelectiveSearchParams, selective_search

ProposalParams: TypeAlias = SelectiveSearchParams | EdgeBoxesParams
DEFAULT_METHOD = "selective_search"
PARAMS: dict[str, type] = {"selective_search": SelectiveSearchParams, "edge_boxes": EdgeBoxesParams}
METHODS: tuple[str, ...] = tuple(PARAMS)


def setting_names(method: str) -> set[str]:
    """The keywords ``method`` reads."""
    return {field.name for field in fields(PARAMS[check_method(method)])}


def check_method(method: str | None) -> str:
    """``method`` (``None``: the default) if it names a proposal method, else a ``ValueError``."""
    method = DEFAULT_METHOD if method is None else str(method)
    if method not in PARAMS:
        raise ValueError(f"unknown proposal method {method!r}; methods: {', '.join(METHODS)}")
    return method


def method_of(params: ProposalParams) -> str:
    return "edge_boxes" if isinstance(params, EdgeBoxesParams) else "selective_search"


def params_from_options(options: Mapping[str, Any], *, strict: bool = False) -> ProposalParams:
    """The parameters of the method ``options["method"]`` names (missing: selective search) from
    its keys in ``options`` (e.g. a config's ``data.proposals.wrapper`` section); missing keys take
    the defaults, other methods' keys are ignored. ``strict``: a key that no method reads is an
    error (``TypeError``, as for an unknown keyword), for callers whose options are settings only."""
    method = check_method(options.get("method"))
    if strict:
        known = {"method"}.union(*(setting_names(name) for name in METHODS))
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(
                f"unknown proposal setting(s) {', '.join(unknown)}; {method} reads "
                f"{', '.join(sorted(setting_names(method)))}"
            )
    own = setting_names(method)
    values = {key: value for key, value in options.items() if key in own}
    if method == "edge_boxes":
        return EdgeBoxesParams.from_options(values)
    return SelectiveSearchParams.from_options(values)


def search_proposals(image: np.ndarray, params: ProposalParams) -> np.ndarray:
    """``image``: ``[H, W, 3]`` uint8 RGB → ``[P, 4]`` float32 xyxy proposals (image pixels), best
    first, by the method ``params`` belongs to."""
    if isinstance(params, EdgeBoxesParams):
        return edge_boxes(image, params)
    return selective_search(image, params)
