"""Which levers make the backbone find joints better per CPU-minute: one pass of the `pretrain` stage's
recipe (rendered hands, rolled cameras, L_hm) over --hands hands, with one lever changed, then the
held-out 2D error (px at 224) and the wall time. Prints one JSON line.

    python benchmarks/pretrain_levers.py [--hands 20000] [--input-size 96] [--bf16] [--batch 8] [--lr 1e-3]
        [--uv-weight W]   # + W x L1 of the soft-argmax joints, in heatmap cells (integral regression)
        [--ema D]         # also score an exponential moving average of the weights (decay D)
        [--lr-drop-at F]  # lr / 10 from this fraction of the steps on (as train.lr_drop_at)
        [--fine-heatmaps] # + a head that draws the last heatmaps at input/2 (the stacks' are input/4)
        [--roll DEG]      # cameras rolled by up to +-DEG degrees (default: params.yaml's pretrain.roll)
        [--warmup PX:F]   # the first fraction F of the steps at a PX px input (the renders shrunk; progressive
                          # resizing: cheap small images first); scored at the main size

Sigma follows the input size (params.yaml's sigma x input_size / params.yaml's input size), so the
Gaussians keep their width in image pixels. One seed: differences under about 0.5 px are noise.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from handpose.augment import roll
from handpose.camera import FRAME_SIZE, project
from handpose.config import ModelConfig, TrainConfig, load_params
from handpose.data.images import to_input_size
from handpose.data.synthetic.arrays import render_arrays
from handpose.device import setup_torch
from handpose.heatmaps import gaussian_heatmaps, image_to_heatmap, soft_argmax
from handpose.losses import Batch, value
from handpose.model import build_backbone
from handpose.model.hourglass import Residual, StackedHourglass
from handpose.model.pose_net import to_input
from handpose.pretrain import HELD_OUT, held_out_uv_error_px
from handpose.skeleton import NUM_JOINTS
from handpose.step import FlatRMSprop


class FineHeatmaps(nn.Module):
    """The hourglass plus heatmaps at input/2: its last features, upsampled x2, join the stem's input/2
    features (a U-Net-style skip) through one residual block and a 1x1 head. The stacks keep their
    input/4 heatmaps and L_hm; the fine ones are scored and trained on targets drawn at input/2."""

    def __init__(self, backbone: StackedHourglass, joints: int = NUM_JOINTS):
        super().__init__()
        self.backbone, half = backbone, backbone.channels // 2
        self.reduce = nn.Conv2d(backbone.channels, half, 1)
        self.refine = Residual(half, half)
        self.head = nn.Conv2d(half, joints, 1)
        self._stem_half: torch.Tensor | None = None
        backbone.stem[1].register_forward_hook(lambda _m, _i, out: setattr(self, "_stem_half", out))

    def forward(self, image: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        heatmaps, features = self.backbone(image)
        up = F.interpolate(self.reduce(features), scale_factor=2, mode="nearest")
        return [*heatmaps, self.head(self.refine(up + self._stem_half))], features


def warmup_arg(text: str) -> tuple[int, float]:
    """`PX:F` -> (PX, F), e.g. 64:0.5: half the steps at a 64 px input."""
    try:
        px, fraction = text.split(":")
        parsed = int(px), float(fraction)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not PX:F (e.g. 64:0.5)") from None
    if parsed[0] < 8 or not 0 <= parsed[1] <= 1:
        raise argparse.ArgumentTypeError(f"{text!r}: PX must be >= 8 and F within [0, 1]")
    return parsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--hands", type=int, default=20000)
    parser.add_argument("--input-size", type=int, help="default: params.yaml's")
    parser.add_argument("--bf16", action="store_true", help="autocast the backbone to bfloat16")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--uv-weight", type=float, default=0.0)
    parser.add_argument("--ema", type=float, default=0.0)
    parser.add_argument("--fine-heatmaps", action="store_true", help="+ heatmaps at input/2")
    parser.add_argument("--roll", type=float, help="degrees; default: params.yaml's pretrain.roll")
    parser.add_argument("--lr-drop-at", type=float, default=1.0, help="fraction of the steps (1: no drop)")
    parser.add_argument(
        "--warmup", type=warmup_arg, default=(0, 0.0), help="PX:F: the first fraction F of the steps at PX px"
    )
    args = parser.parse_args()
    params = load_params(args.params)
    size = args.input_size or params.model.input_size
    sigma = params.heatmap.sigma * size / params.model.input_size
    model_cfg = ModelConfig.model_validate({**params.model.model_dump(), "input_size": size})
    device = setup_torch(TrainConfig.model_validate({**params.train.model_dump(), "device": "cpu"}))
    seed = params.pretrain.seed
    torch.manual_seed(seed)
    backbone = build_backbone(model_cfg)
    if args.fine_heatmaps:
        backbone = FineHeatmaps(backbone)
    backbone = backbone.to(memory_format=torch.channels_last)
    ema = AveragedModel(backbone, multi_avg_fn=get_ema_multi_avg_fn(args.ema), use_buffers=True) if args.ema else None
    hands = render_arrays(args.hands + HELD_OUT, seed, size, progress=False)
    held_out = {key: v[args.hands :] for key, v in hands.items()}
    images, xyz, K = (hands[key][: args.hands] for key in ("images", "xyz", "K"))
    optimizer = FlatRMSprop(backbone, lr=args.lr)
    order = torch.randperm(args.hands, generator=torch.Generator().manual_seed(seed)).numpy()
    max_roll = params.pretrain.roll if args.roll is None else args.roll
    angles = np.random.default_rng(seed).uniform(-1, 1, args.hands) * np.radians(max_roll)
    steps = args.hands // args.batch
    warmup_size, warmup_fraction = args.warmup
    tic = time.perf_counter()
    for step in range(steps):
        if step == int(args.lr_drop_at * steps):
            for group in optimizer.param_groups:
                group["lr"] = args.lr / 10
        idx = order[step * args.batch : (step + 1) * args.batch]
        image, px = images[idx], size
        if step < int(warmup_fraction * steps):  # sigma and the cells follow the input, as across sizes
            image, px = np.stack([to_input_size(one, warmup_size) for one in image]), warmup_size
        image, pose = roll(image, xyz[idx], K[idx], angles[idx])
        uv = project(pose, K[idx])
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            heatmaps, _ = backbone(to_input(torch.from_numpy(image), True))
        cells, px_sigma = px // 4, sigma * px / size
        target = torch.from_numpy(gaussian_heatmaps(uv, FRAME_SIZE, cells, px_sigma))
        loss = torch.zeros(())
        if args.fine_heatmaps:  # the last heatmaps are the fine ones: twice the cells, the same width in px
            fine = torch.from_numpy(gaussian_heatmaps(uv, FRAME_SIZE, 2 * cells, 2 * px_sigma))
            loss, heatmaps = value("hm", Batch(heatmaps=heatmaps[-1:], true_heatmaps=fine)), heatmaps[:-1]
        loss = loss + value("hm", Batch(heatmaps=heatmaps, true_heatmaps=target))
        if args.uv_weight:  # every stack's soft-argmax joints against the truth, in heatmap cells
            true_uv = torch.from_numpy(image_to_heatmap(uv, FRAME_SIZE, cells).astype(np.float32))
            errors = torch.stack([soft_argmax(h) for h in heatmaps]) - true_uv
            loss = loss + args.uv_weight * errors.abs().sum((-1, -2)).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if ema is not None:
            ema.update_parameters(backbone)
    seconds = time.perf_counter() - tic
    result = {
        "hands": args.hands, "input_size": size, "sigma": sigma, "bf16": args.bf16, "batch": args.batch,
        "lr": args.lr, "roll": max_roll, "lr_drop_at": args.lr_drop_at, "uv_weight": args.uv_weight, "ema": args.ema,
        "fine_heatmaps": args.fine_heatmaps, "warmup": f"{warmup_size}:{warmup_fraction}",
        "train_seconds": round(seconds),
        "held_out_uv_error_px": round(held_out_uv_error_px(backbone, held_out, True), 2),
    }  # fmt: skip
    if ema is not None:
        result["held_out_uv_error_px_ema"] = round(held_out_uv_error_px(ema.module, held_out, True), 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
