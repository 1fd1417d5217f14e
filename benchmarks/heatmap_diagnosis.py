"""Does the hourglass alone, trained on L_hm only, learn to localise joints? Prints one JSON line per
evaluation: the training L_hm relative to an all-zero prediction's, and the test 2D joint error (px at
224, soft-argmax of the last stack) — the number `uv_error_px` reports for the full model.

    python benchmarks/heatmap_diagnosis.py --split data/split --epochs 24 [--opt adam] [--sigma 1.5]
    python benchmarks/heatmap_diagnosis.py --split data/split --subset 64 --epochs 60   # can it overfit?
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from handpose.camera import project
from handpose.data.split import load_split
from handpose.heatmaps import gaussian_heatmaps, heatmap_to_image, soft_argmax
from handpose.metrics import uv_error_px
from handpose.model.hourglass import StackedHourglass, capped_depth
from handpose.model.pose_net import to_input
from handpose.skeleton import NUM_JOINTS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="data/split", help="a split folder (default: %(default)s)")
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--opt", choices=["rmsprop", "adam"], default="rmsprop")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--sigma", type=float, default=1.0, help="target sd in heatmap cells")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--subset", type=int, default=0, help="train and test on the first N training images")
    parser.add_argument("--eval-every", type=int, default=0, help="also evaluate every N steps")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    train, test = load_split(args.split, "train"), load_split(args.split, "test")
    if args.subset:
        train = test = {k: v[: args.subset] if np.ndim(v) else v for k, v in train.items()}
    side, image_size = train["images"].shape[1] // 4, int(train["image_size"])
    targets = torch.from_numpy(gaussian_heatmaps(project(train["xyz"], train["K"]), image_size, side, args.sigma))
    zero_loss = 2 * float((targets**2).sum((1, 2, 3)).mean())  # both stacks predicting all zeros
    net = StackedHourglass(2, args.features, NUM_JOINTS, capped_depth(4, side)).to(memory_format=torch.channels_last)
    optimizer = (torch.optim.Adam if args.opt == "adam" else torch.optim.RMSprop)(net.parameters(), lr=args.lr)
    images, test_images = torch.from_numpy(train["images"]), torch.from_numpy(test["images"])
    true_uv = project(test["xyz"], test["K"])

    @torch.no_grad()
    def held_out_error() -> float:
        net.eval()
        uv = heatmap_to_image(soft_argmax(net(to_input(test_images, True))[0][-1]), image_size, side).numpy()
        net.train()
        return round(uv_error_px(uv, true_uv), 2)

    generator, tic, step = torch.Generator().manual_seed(0), time.perf_counter(), 0
    for epoch in range(args.epochs):
        order, total = torch.randperm(len(images), generator=generator), 0.0
        steps = len(images) // args.batch
        for s in range(steps):
            idx = order[s * args.batch : (s + 1) * args.batch]
            heatmaps, _ = net(to_input(images[idx], True))
            loss = sum(((h - targets[idx]) ** 2).sum((1, 2, 3)).mean() for h in heatmaps)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, step = total + float(loss.detach()), step + 1
            if args.eval_every and step % args.eval_every == 0:
                print(json.dumps({"step": step, "uv_px": held_out_error(), "s": round(time.perf_counter() - tic)}))
        report = {"epoch": epoch + 1, "hm_loss_rel_zero": round(total / steps / zero_loss, 3)}
        print(json.dumps({**report, "uv_px": held_out_error(), "s": round(time.perf_counter() - tic)}), flush=True)


if __name__ == "__main__":
    main()
