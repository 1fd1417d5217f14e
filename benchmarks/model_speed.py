"""Parameter count and training-step time (forward + the variant's losses + backward) per variant,
at the default (params.yaml) and the paper's model size. Prints JSON.

    python benchmarks/model_speed.py [--params params.yaml] [--steps 5] [--sizes default paper]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from handpose.config import ModelConfig, VariantConfig, load_params
from handpose.configure import variant_config
from handpose.losses import Batch, term_settings
from handpose.model.pose_net import build_model, root_relative_in_scale, to_input
from handpose.skeleton import ROOT
from handpose.step import train_step

PAPER_MODEL = {
    "input_size": 256,
    "backbone": "hourglass",
    "hourglass": {"features": 256, "stacks": 2, "depth": 4},
    "mlp_depth": 2,
    "mlp_width": 1024,
    "uv": "argmax",
}


def step_seconds(config: VariantConfig, batch: int, steps: int) -> dict:
    torch.manual_seed(0)
    model = build_model(config.model, image_size=224)
    channels_last = config.train.channels_last
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-4)
    size, hm = config.model.input_size, config.model.heatmap_size
    images = torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8)
    K = torch.tensor([[480.0, 0, 112], [0, 480, 112], [0, 0, 1]]).expand(batch, 3, 3)
    xyz = torch.randn(batch, 21, 3) * 0.04 + torch.tensor([0, 0, 0.7])
    scale = torch.full((batch,), 0.03)
    targets = torch.rand(batch, 21, hm, hm)
    settings = {t: term_settings(t, values) for t, values in config.term_settings.items()}
    times = []
    for i in range(steps + 1):  # the first step warms up allocators and is not counted
        tic = time.perf_counter()
        out = model(to_input(images, channels_last), K, xyz[:, ROOT, 2], scale)
        pred = root_relative_in_scale(out["xyz"], xyz[:, ROOT], scale)
        true = root_relative_in_scale(xyz, xyz[:, ROOT], scale)
        batch_of = Batch(pred, true, out["heatmaps"], targets)
        train_step(optimizer, batch_of, config.losses, [], settings, where="model_speed", hint="")
        if i:
            times.append(time.perf_counter() - tic)
    mean = sum(times) / len(times)
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "batch": batch,
        "step_s": round(mean, 4),
        "samples_per_s": round(batch / mean, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per case (default: %(default)s)")
    parser.add_argument("--sizes", nargs="+", default=["default", "paper"], choices=["default", "paper"])
    args = parser.parse_args()
    params = load_params(args.params)
    results = {"torch": torch.__version__, "threads": torch.get_num_threads(), "sizes": {}}
    for size in args.sizes:
        sized = params.model_copy(deep=True)
        if size == "paper":
            sized.model = ModelConfig.model_validate({**sized.model.model_dump(), **PAPER_MODEL})
        results["sizes"][size] = {
            variant: step_seconds(cfg := variant_config(sized, variant), cfg.train.batch_size, args.steps)
            for variant in sized.variants
        }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
