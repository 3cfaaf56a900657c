"""Valid random boxes for the ops tests."""

import torch


def random_boxes(n: int, seed: int = 0) -> torch.Tensor:
    """``Tensor[n, 4] xyxy``: corners in [0, 100), sides in [1, 51) pixels."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 100
    wh = torch.rand(n, 2, generator=g) * 50 + 1
    return torch.cat((xy, xy + wh), 1)
