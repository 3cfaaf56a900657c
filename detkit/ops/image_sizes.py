"""The batch's image sizes, on the device and on the host at once.

Detectors pass ``image_sizes: Tensor[N, 2]`` (height, width per image) to their heads, on the
model's device, where box clipping reads them. A few places need the sizes as Python numbers
(SSD's default-box extent, the precomputed proposals' clipping); reading them back with
``.tolist()`` would make the host wait for the device on every step. The sizes are known on the
host when the batch is built, so they travel with the tensor and :func:`host_image_sizes` reads
them from there (``None`` for a tensor built elsewhere, e.g. inside an exported graph, where the
caller reads the tensor as before).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

_HOST_ATTRIBUTE = "_detkit_host_sizes"


def image_sizes_tensor(sizes: Sequence[tuple[int, int]], device: torch.device | str) -> Tensor:
    """``Tensor[N, 2]`` int64 (height, width) on ``device``, carrying ``sizes`` for the host.

    The copy to a GPU starts from pinned memory without blocking, so the host does not wait."""
    host = [(int(height), int(width)) for height, width in sizes]
    tensor = torch.tensor(host, dtype=torch.long).view(-1, 2)
    device = torch.device(device)
    if device.type == "cuda":
        # Pinned memory (from torch's caching host allocator, so cheap after the first batch)
        # lets the copy run asynchronously and safely: the block is not reused before it lands.
        tensor = tensor.pin_memory().to(device, non_blocking=True)
    elif device.type != "cpu":
        tensor = tensor.to(device)
    setattr(tensor, _HOST_ATTRIBUTE, host)
    return tensor


def host_image_sizes(image_sizes: Tensor) -> list[tuple[int, int]] | None:
    """``image_sizes: Tensor[N, 2]`` (height, width) as Python pairs without a device sync, when
    the tensor came from :func:`image_sizes_tensor`; else ``None``."""
    host = getattr(image_sizes, _HOST_ATTRIBUTE, None)
    return list(host) if host is not None and len(host) == image_sizes.shape[0] else None
