"""The `hourglass` backbone: a stacked hourglass network (Newell et al. 2016): residual blocks,
recursive hourglass, stacks. Its settings are `model.hourglass:` in params.yaml."""

from __future__ import annotations

import math
from typing import Annotated

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.nn import functional as F

from handpose.config import Int, PositiveInt, heatmap_side
from handpose.skeleton import NUM_JOINTS


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    features: Annotated[Int, Field(ge=4)]  # channels (paper: 256); the stem starts with features / 4
    stacks: PositiveInt  # paper: 2
    depth: PositiveInt  # recursions of each hourglass (paper: 4), capped so the bottleneck stays >= 2x2


def capped_depth(requested: int, heatmap_size: int) -> int:
    """Cap the recursion so the bottleneck stays >= 2x2 (BatchNorm over a 1x1 map is degenerate)."""
    return max(1, min(requested, int(math.log2(heatmap_size)) - 1))


def build(settings: Settings, input_size: int) -> StackedHourglass:
    return StackedHourglass(
        settings.stacks, settings.features, NUM_JOINTS, capped_depth(settings.depth, heatmap_side(input_size))
    )


def _bn_relu_conv(cin: int, cout: int, k: int) -> list[nn.Module]:
    return [nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.Conv2d(cin, cout, k, padding=k // 2, bias=False)]


class Residual(nn.Module):
    """Pre-activation bottleneck: BN-ReLU-1x1, BN-ReLU-3x3, BN-ReLU-1x1, plus a (projected) skip."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        mid = cout // 2
        self.body = nn.Sequential(
            *_bn_relu_conv(cin, mid, 1), *_bn_relu_conv(mid, mid, 3), *_bn_relu_conv(mid, cout, 1)
        )
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip(x)


class Hourglass(nn.Module):
    """One hourglass: a skip branch at this scale plus a pooled branch that recurses `depth` times."""

    def __init__(self, depth: int, channels: int):
        super().__init__()
        self.skip = Residual(channels, channels)
        self.down = Residual(channels, channels)
        self.inner = Hourglass(depth - 1, channels) if depth > 1 else Residual(channels, channels)
        self.up = Residual(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.up(self.inner(self.down(F.max_pool2d(x, 2))))
        return self.skip(x) + F.interpolate(low, size=x.shape[-2:], mode="nearest")


class StackedHourglass(nn.Module):
    """Image (B,3,S,S) -> per-stack heatmaps [(B,J,S/4,S/4)] and the last stack's features.

    Every stack's heatmaps are returned for intermediate supervision; later stacks see the
    earlier stack's features and heatmaps re-projected into the feature stream.
    """

    def __init__(self, stacks: int, features: int, joints: int, depth: int):
        super().__init__()
        f = self.channels = features
        self.stem = nn.Sequential(
            nn.Conv2d(3, f // 4, 7, stride=2, padding=3, bias=False),
            Residual(f // 4, f // 2),
            nn.MaxPool2d(2),
            Residual(f // 2, f // 2),
            Residual(f // 2, f),
        )
        self.hourglasses = nn.ModuleList(
            nn.Sequential(Hourglass(depth, f), Residual(f, f), *_bn_relu_conv(f, f, 1)) for _ in range(stacks)
        )
        self.heads = nn.ModuleList(nn.Conv2d(f, joints, 1) for _ in range(stacks))
        self.merge_features = nn.ModuleList(nn.Conv2d(f, f, 1) for _ in range(stacks - 1))
        self.merge_heatmaps = nn.ModuleList(nn.Conv2d(joints, f, 1) for _ in range(stacks - 1))

    def forward(self, image: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        x = self.stem(image)
        heatmaps = []
        for i, (hourglass, head) in enumerate(zip(self.hourglasses, self.heads)):
            features = hourglass(x)
            heatmaps.append(head(features))
            if i < len(self.merge_features):
                x = x + self.merge_features[i](features) + self.merge_heatmaps[i](heatmaps[-1])
        return heatmaps, features
