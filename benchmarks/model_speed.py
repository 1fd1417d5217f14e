"""Parameter count and training-step time (forward + the variant's losses + backward) per variant,
at the default (params.yaml) and the paper's model size, or at any input size and width, in fp32 and
under bf16 autocast. Prints JSON.

    python benchmarks/model_speed.py [--params params.yaml] [--steps 5] [--sizes default paper 128:64]
        [--precisions fp32 bf16] [--variants m_cos_2] [--optimizers flat foreach] [--rounds 1]
        [--batches 8 16]

--optimizers: flat (the training loop's: RMSprop over one buffer that holds every parameter) and/or
foreach (torch's multi-tensor RMSprop), each timed on its own model, in turn, in one run.
--rounds R: time every case R times, round-robin, and report the median speed with each round's. A
machine's load drifts by more than many A/B differences; interleaved rounds expose that spread.
--batches: samples per step (default: the variant's train.batch_size). On a CPU a small step is bound
by the overhead of its kernels, so a larger batch does more samples a second.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import time

import torch

from handpose.config import ModelConfig, VariantConfig, load_params
from handpose.configure import variant_config
from handpose.losses import Batch, term_settings
from handpose.model.pose_net import build_model, root_relative_in_scale, to_input
from handpose.skeleton import ROOT
from handpose.step import DivergenceCheck, FlatRMSprop, train_step

PAPER_MODEL = {
    "input_size": 256,
    "backbone": "hourglass",
    "hourglass": {"features": 256, "stacks": 2, "depth": 4},
    "mlp_depth": 2,
    "mlp_width": 1024,
    "uv": "argmax",
}


def step_seconds(
    config: VariantConfig,
    batch: int,
    steps: int,
    bf16: bool = False,
    device: str = "cpu",
    compile_model: bool = False,
    optimizer_kind: str = "flat",
) -> dict:
    """Mean wall time of one training step on random inputs (the first `warm-up` steps not counted;
    with torch.compile they include the compilation, reported as `first_step_s`)."""
    dev = torch.device(device)
    torch.manual_seed(0)
    model = build_model(config.model, image_size=224).to(dev)
    channels_last = config.train.channels_last
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if optimizer_kind == "flat":  # before compiling: the compiled graph sees the parameters it will train
        optimizer = FlatRMSprop(model, lr=1e-4)
    else:
        optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-4, foreach=True)
    forward = torch.compile(model) if compile_model else model
    size, hm = config.model.input_size, config.model.heatmap_size
    images = torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8, device=dev)
    K = torch.tensor([[480.0, 0, 112], [0, 480, 112], [0, 0, 1]], device=dev).expand(batch, 3, 3)
    xyz = torch.randn(batch, 21, 3, device=dev) * 0.04 + torch.tensor([0, 0, 0.7], device=dev)
    scale = torch.full((batch,), 0.03, device=dev)
    targets = torch.rand(batch, 21, hm, hm, device=dev)
    settings = {t: term_settings(t, values) for t, values in config.term_settings.items()}
    check = DivergenceCheck(lambda step: f"model_speed: step {step} diverged", "", dev)
    warm_up = 3 if compile_model or dev.type == "cuda" else 1  # allocators, cuDNN's plans, compiled graphs
    times = []
    for i in range(steps + warm_up):
        tic = time.perf_counter()
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            out = forward(to_input(images, channels_last), K, xyz[:, ROOT, 2], scale)
        pred = root_relative_in_scale(out["xyz"], xyz[:, ROOT], scale)
        true = root_relative_in_scale(xyz, xyz[:, ROOT], scale)
        batch_of = Batch(pred, true, out["heatmaps"], targets)
        train_step(optimizer, batch_of, config.losses, [], settings, check, i)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        times.append(time.perf_counter() - tic)
    check.confirm()
    mean = sum(times[warm_up:]) / steps
    digest = hashlib.sha256()  # of the trained weights: equal digests, equal runs
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return {
        "weights_sha256": digest.hexdigest()[:16],
        "parameters": sum(p.numel() for p in model.parameters()),
        "batch": batch,
        "first_step_s": round(times[0], 3),
        "step_s": round(mean, 4),
        "samples_per_s": round(batch / mean, 1),
    }


def sized_model(model: ModelConfig, size: str) -> ModelConfig:
    """`default`, `paper`, or `PX:FEATURES` (e.g. 128:64) for the hourglass at that input and width."""
    if size == "default":
        return model
    if size == "paper":
        return ModelConfig.model_validate({**model.model_dump(), **PAPER_MODEL})
    px, features = (int(part) for part in size.split(":"))
    hourglass = {**model.model_dump()["hourglass"], "features": features}
    return ModelConfig.model_validate({**model.model_dump(), "input_size": px, "hourglass": hourglass})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per case (default: %(default)s)")
    parser.add_argument("--sizes", nargs="+", default=["default", "paper"], help="default, paper or PX:FEATURES")
    parser.add_argument("--precisions", nargs="+", default=["fp32"], choices=["fp32", "bf16"])
    parser.add_argument("--variants", nargs="+", help="default: every variant of params.yaml")
    parser.add_argument("--optimizers", nargs="+", default=["flat"], choices=["flat", "foreach"])
    parser.add_argument("--rounds", type=int, default=1, help="round-robin repeats of every case (median)")
    parser.add_argument("--batches", type=int, nargs="+", help="samples per step (default: train.batch_size)")
    args = parser.parse_args()
    if args.rounds < 1 or args.steps < 1 or min(args.batches or [1]) < 1:
        parser.error("--rounds, --steps and --batches must be at least 1")
    params = load_params(args.params)
    torch.set_num_threads(params.train.threads or torch.get_num_threads())
    cases = {}  # key -> (variant -> its config, bf16, optimizer, batch): every case, timed once per round
    for size in args.sizes:
        sized = params.model_copy(deep=True)
        sized.model = sized_model(sized.model, size)
        for precision in args.precisions:
            for kind in args.optimizers:
                for batch in args.batches or [None]:
                    shown = [precision] * (args.precisions != ["fp32"]) + [kind] * (args.optimizers != ["flat"])
                    shown += [f"batch {batch}"] * (batch is not None)
                    variants = {v: variant_config(sized, v) for v in args.variants or sized.variants}
                    cases[" ".join([size, *shown])] = (variants, precision == "bf16", kind, batch)
    rounds = [
        {
            key: {
                variant: step_seconds(cfg, batch or cfg.train.batch_size, args.steps, bf16, optimizer_kind=kind)
                for variant, cfg in variants.items()
            }
            for key, (variants, bf16, kind, batch) in cases.items()
        }
        for _ in range(args.rounds)
    ]
    results = {"torch": torch.__version__, "threads": torch.get_num_threads(), "rounds": args.rounds, "sizes": {}}
    for key, (variants, *_) in cases.items():
        results["sizes"][key] = {}
        for variant in variants:
            runs = [one[key][variant] for one in rounds]
            speeds = [run["samples_per_s"] for run in runs]
            median = statistics.median(speeds)
            results["sizes"][key][variant] = {
                **runs[0],
                "step_s": round(runs[0]["batch"] / median, 4),
                "samples_per_s": round(median, 1),
                **({"samples_per_s_rounds": speeds} if args.rounds > 1 else {}),
                "same_weights_every_round": len({run["weights_sha256"] for run in runs}) == 1,
            }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
