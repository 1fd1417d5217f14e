"""The training step on a GPU, or on this machine's CPU when there is none: samples/s at the default
and the paper's size in fp32 and bf16 (and under torch.compile with --compile), peak memory, the
projected training time of `make repro` and `make paper` on that device, and whether two runs from
one seed give identical weights (the first size, fp32). Prints JSON.

    python benchmarks/device_speed.py [--device auto] [--steps 20] [--sizes default paper] [--compile]

Projections count training alone (the data stages run on the CPU either way): every variant is
taken to train at m_cos_2's speed (the variants differ only in their losses), and pretraining at the
whole network's speed (it trains the backbone alone, so this is an upper bound).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))  # model_speed, beside this script

from model_speed import PAPER_MODEL, sized_model, step_seconds  # noqa: E402

from handpose.config import Params, TrainConfig, load_params  # noqa: E402
from handpose.configure import variant_config  # noqa: E402
from handpose.device import setup_torch  # noqa: E402

PAPER = {"epochs": 100, "n_train": 3200}  # the Makefile's PAPER_PARAMS (no pretraining)


def measured(params: Params, size: str, bf16: bool, device: torch.device, steps: int, compiled: bool) -> dict:
    sized = params.model_copy(deep=True)
    sized.model = sized_model(sized.model, size)
    config = variant_config(sized, "m_cos_2")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    result = step_seconds(config, config.train.batch_size, steps, bf16, str(device), compiled)
    if device.type == "cuda":
        result["peak_memory_gb"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    return result


def projected_seconds(params: Params, speed: dict[str, float], paper_speed: float | None) -> dict:
    """Training time of `make repro` (the default params) and of `make paper` at the measured speeds."""
    train, data = params.train, params.data
    per_variant = train.epochs * (data.n_train // train.batch_size) * train.batch_size * len(train.seed)
    repro = (params.pretrain.n_hands * params.pretrain.passes + per_variant * len(params.variants)) / speed["default"]
    out = {"make_repro_training_s": round(repro)}
    if paper_speed:
        out["make_paper_training_s"] = round(PAPER["epochs"] * PAPER["n_train"] * len(params.variants) / paper_speed)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per case (default: %(default)s)")
    parser.add_argument("--sizes", nargs="+", default=["default", "paper"], help="default, paper or PX:FEATURES")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (about a minute cold)")
    args = parser.parse_args()
    params = load_params(args.params)
    train = TrainConfig.model_validate({**params.train.model_dump(), "device": args.device})
    device = setup_torch(train)
    cases = {}
    for size in args.sizes:
        for bf16 in (False, True):
            for compiled in (False, True) if args.compile else (False,):
                name = f"{size} {'bf16' if bf16 else 'fp32'}{' compiled' if compiled else ''}"
                cases[name] = measured(params, size, bf16, device, args.steps, compiled)
                print(json.dumps({name: cases[name]}), file=sys.stderr, flush=True)
    best = {size: max(cases[f"{size} {p}"]["samples_per_s"] for p in ("fp32", "bf16")) for size in args.sizes}
    first = next(iter(args.sizes))
    again = measured(params, first, False, device, args.steps, False)  # the same run once more
    cpu = f"cpu ({torch.get_num_threads()} threads)"
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu,
        "torch": torch.__version__,
        "paper_model": PAPER_MODEL,
        "cases": cases,
        "two_runs_identical_weights": again["weights_sha256"] == cases[f"{first} fp32"]["weights_sha256"],
        "peak_host_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }
    if "default" in best:
        result["projected"] = projected_seconds(params, best, best.get("paper"))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
