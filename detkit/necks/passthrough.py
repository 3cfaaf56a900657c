"""YOLOv2's passthrough neck: the stride-16 map, reorganised to stride 32, joins the stride-32 map.

Darknet's yolo-voc.cfg after its backbone: two 3×3 convolutions (1024) on the deepest map; a 1×1
convolution (64) of the stride-16 map, then space-to-depth (``detkit.layers.space_to_depth``,
26×26×64 → 13×13×256 at 416 px); both concatenated. The head's 3×3 convolution follows. The
fine-grained channels help small objects, which the 13×13 grid alone localises poorly.

Works on any backbone whose ``feature_info`` has a map at half the deepest map's stride.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from detkit.layers.conv_bn_act import ConvBNLeaky
from detkit.layers.space_to_depth import space_to_depth
from detkit.necks.levels import pyramid_level
from detkit.structures import FeatureInfo


class PassthroughNeck(nn.Module):
    """``forward(features) -> {"p5": Tensor[N, channels + 4·fine_channels, H/32, W/32]}`` (named
    ``p<k>`` for the deep map's stride 2^k).

    ``in_features``: (fine, deep) names, the fine one at half the deep one's stride (default
    c4, c5); ``channels``: width of the deep path's ``num_convs`` 3×3 convolutions (darknet: 1024,
    2); ``fine_channels``: the 1×1 reduction before the reorg (darknet: 64).
    """

    def __init__(
        self,
        *,
        feature_info: Sequence[FeatureInfo],
        in_features: Sequence[str] = ("c4", "c5"),
        channels: int = 1024,
        fine_channels: int = 64,
        num_convs: int = 2,
    ) -> None:
        super().__init__()
        by_name = {info.name: info for info in feature_info}
        missing = [n for n in in_features if n not in by_name]
        if len(in_features) != 2 or missing:
            raise ValueError(
                f"PassthroughNeck: in_features must name two backbone outputs (fine, deep), got {list(in_features)}; "
                f"the backbone has {sorted(by_name)} (set backbone.out_features)"
            )
        fine, deep = (by_name[n] for n in in_features)
        if deep.stride != 2 * fine.stride:
            raise ValueError(
                f"PassthroughNeck: {deep.name} (stride {deep.stride}) must have twice the stride of "
                f"{fine.name} (stride {fine.stride})"
            )
        self.fine_name, self.deep_name = fine.name, deep.name
        widths = [deep.channels] + [channels] * num_convs
        self.deep = nn.Sequential(*(ConvBNLeaky(a, b, 3) for a, b in zip(widths[:-1], widths[1:], strict=True)))
        self.reduce = ConvBNLeaky(fine.channels, fine_channels, 1)
        out_channels = widths[-1] + 4 * fine_channels
        self.feature_info = [FeatureInfo(f"p{pyramid_level(deep.stride)}", out_channels, deep.stride)]

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        deep = self.deep(features[self.deep_name])
        fine = space_to_depth(self.reduce(features[self.fine_name]), 2)
        if fine.shape[-2:] != deep.shape[-2:]:
            raise ValueError(
                f"PassthroughNeck: reorganised {self.fine_name} is {tuple(fine.shape[-2:])} but {self.deep_name} is "
                f"{tuple(deep.shape[-2:])}; pad the input to a multiple of the deep stride"
            )
        # darknet's route order: the reorganised fine map first, then the deep map.
        return {self.feature_info[0].name: torch.cat((fine, deep), dim=1)}
