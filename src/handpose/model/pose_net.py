"""The full network: backbone heatmaps -> residual latent net -> MLP depths -> lift to camera space."""

from __future__ import annotations

import math

import torch
from torch import nn

from handpose import camera
from handpose.config import ModelConfig, heatmap_side
from handpose.heatmaps import hard_argmax, heatmap_to_image, soft_argmax
from handpose.model import build_backbone
from handpose.model.hourglass import Residual
from handpose.skeleton import NUM_JOINTS, ROOT

LATENT_SIDE = 4  # the latent net pools the heatmap grid down to 4x4 before flattening


class LatentNet(nn.Module):
    """Last-stack features + heatmaps -> 1x1 conv -> strided residual stages -> flat latent vector."""

    def __init__(self, features: int, joints: int, heatmap_size: int):
        super().__init__()
        stages = max(0, int(math.log2(heatmap_size // LATENT_SIDE)))
        self.inp = nn.Conv2d(features + joints, features, 1)
        self.stages = nn.Sequential(
            *(nn.Sequential(Residual(features, features), nn.MaxPool2d(2)) for _ in range(stages))
        )
        self.pool = nn.AdaptiveAvgPool2d(LATENT_SIDE)  # a no-op for power-of-two sizes
        self.dim = features * LATENT_SIDE**2

    def forward(self, features: torch.Tensor, heatmaps: torch.Tensor) -> torch.Tensor:
        return self.pool(self.stages(self.inp(torch.cat([features, heatmaps], 1)))).flatten(1)


def mlp(inp: int, width: int, depth: int, dropout: list[float], out: int) -> nn.Sequential:
    """`depth` hidden layers (width, width/4, ...), each Linear-BN-ReLU-Dropout; then a bare Linear."""
    layers: list[nn.Module] = []
    for i in range(depth):
        hidden = max(out, width // 4**i)
        p = dropout[min(i, len(dropout) - 1)] if dropout else 0.0
        layers += [nn.Linear(inp, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Dropout(p)]
        inp = hidden
    return nn.Sequential(*layers, nn.Linear(inp, out))


class HandPoseNet(nn.Module):
    """RGB image + K + ground-truth root depth and hand scale -> 21 camera-space joints.

    As in the paper's code, (u, v) come from the backbone's last stack's heatmaps and the MLP predicts the
    20 non-root depths relative to the root, divided by the hand's scale.
    """

    def __init__(
        self,
        backbone: nn.Module,
        *,
        input_size: int,
        mlp_depth: int,
        mlp_width: int,
        dropout: list[float],
        uv: str,
        image_size: int,
    ):
        super().__init__()
        self.heatmap_size = heatmap_side(input_size)
        self.image_size = image_size
        self.uv_mode = uv
        self.backbone = backbone
        self.latent = LatentNet(backbone.channels, NUM_JOINTS, self.heatmap_size)
        self.mlp = mlp(self.latent.dim, mlp_width, mlp_depth, dropout, NUM_JOINTS - 1)

    def forward(
        self, image: torch.Tensor, K: torch.Tensor, root_depth: torch.Tensor, scale: torch.Tensor
    ) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        heatmaps, features = self.backbone(image)
        last = heatmaps[-1]
        uv_hm = soft_argmax(last) if self.uv_mode == "soft_argmax" else hard_argmax(last)
        uv = heatmap_to_image(uv_hm, self.image_size, self.heatmap_size)
        rel_depth = self.mlp(self.latent(features, last)).float()  # (B, 20), in units of scale
        rel_depth = torch.cat([rel_depth[:, :ROOT], torch.zeros_like(rel_depth[:, :1]), rel_depth[:, ROOT:]], 1)
        depth = root_depth[:, None] + rel_depth * scale[:, None]
        # Lifting in float32 whatever autocast says: a bf16 matmul keeps 8 bits, which rounds a pixel
        # coordinate near 224 to a whole pixel and K^-1's rays alike (docs/benchmarks.md, bf16).
        with torch.autocast(image.device.type, enabled=False):
            xyz = camera.lift(uv.float(), depth.float(), K.float())
        return {"heatmaps": heatmaps, "uv": uv, "xyz": xyz}


def build_model(model: ModelConfig, image_size: int) -> HandPoseNet:
    """The network `model` describes (its backbone by name), for images of `image_size` px."""
    head = model.model_dump(include={"input_size", "mlp_depth", "mlp_width", "dropout", "uv"})
    return HandPoseNet(build_backbone(model), **head, image_size=image_size)


def to_input(images: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """(B, S, S, 3) uint8 RGB -> (B, 3, S, S) float in [-0.5, 0.5]."""
    x = images.permute(0, 3, 1, 2).float().div_(255).sub_(0.5)
    return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


@torch.no_grad()
def backbone_joints(
    backbone: nn.Module, images: torch.Tensor, image_size: int, channels_last: bool = False
) -> torch.Tensor:
    """The joints (B, 21, 2) that the backbone's last stack finds by soft-argmax in uint8 RGB `images`
    (B, S, S, 3), in the pixels of an `image_size` frame. Any S that is a multiple of the input size
    works: the backbone is convolutional. Leaves the backbone in eval mode."""
    backbone.eval()
    last = backbone(to_input(images, channels_last))[0][-1]
    return heatmap_to_image(soft_argmax(last), image_size, last.shape[-1])


def root_relative_in_scale(xyz: torch.Tensor, root: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Poses for the losses: root-relative (ground-truth root) and in units of the hand's scale,
    so every loss term is independent of distance to the camera and hand size."""
    return (xyz - root[:, None]) / scale[:, None, None]
