"""Where two CPUs part: the same training steps under CPU-kernel pins, each in a fresh process, as a CPU
of another generation would run them. oneDNN (convolutions) and ATen's vectorised kernels pick their code
by the CPU's instruction set (and oneDNN its blocking by cache sizes), and a different summation order
changes the last bits of a result. For each pin: the digest of the first forward pass (the backbone's
heatmaps), of the weights after 1 and after --steps training steps, and the speed, against no pin. Prints
JSON.

    python benchmarks/isa_parting.py [--steps 20] [--precisions fp32 bf16] [--pins default AVX2 ...]
        [--repeats 1] [--one-core]

The first pin also runs in --repeats more fresh processes: on one machine they should agree, and
`<precision>_<pin>_runs` counts the processes that gave each set of digests (--one-core: every process
on one core, with the same number of threads).

A pin is `default` (none), an `ONEDNN_MAX_CPU_ISA` value (AVX2, AVX512_CORE, ...), `aten:<level>` for
`ATEN_CPU_CAPABILITY` (default, avx2, avx512), `both:<ISA>` (oneDNN capped at ISA and ATen at avx2),
`native` (torch's own convolutions, oneDNN off), or `mkl:<MODE>` for `MKL_CBWR` (handpose sets COMPATIBLE;
`mkl:off` is MKL's own fastest branch, which races on its first multi-threaded call: compare
`--pins mkl:off --repeats 19` with `--pins default --repeats 19`). bf16 on a CPU capped below AVX512-BF16
is emulated.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from collections import Counter

PINS = ["default", "AVX512_CORE_BF16", "AVX512_CORE", "AVX2", "aten:avx2", "both:AVX2", "native", "mkl:off"]
KNOBS = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_CBWR")


def environment(pin: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in KNOBS}
    if pin.startswith("mkl:"):
        mode = pin.split(":", 1)[1]
        env["MKL_CBWR"] = "" if mode == "off" else mode  # empty: MKL's default; handpose keeps what is set
    elif pin.startswith("aten:"):
        env["ATEN_CPU_CAPABILITY"] = pin.split(":", 1)[1]
    elif pin.startswith("both:"):
        env |= {"ONEDNN_MAX_CPU_ISA": pin.split(":", 1)[1], "ATEN_CPU_CAPABILITY": "avx2"}
    elif pin not in ("default", "native"):
        env["ONEDNN_MAX_CPU_ISA"] = pin
    return env


def measure(params_path: str, steps: int, precision: str, native: bool) -> dict:
    """In this process: the digests and the speed (model_speed's training step at the default size)."""
    import torch

    from handpose.config import load_params
    from handpose.configure import variant_config
    from handpose.model.pose_net import build_model, to_input

    sys.path.insert(0, os.path.dirname(__file__))
    from model_speed import step_seconds

    if native:
        torch.backends.mkldnn.enabled = False
    params = load_params(params_path)
    torch.set_num_threads(params.train.threads or torch.get_num_threads())
    config = variant_config(params, "m_cos_2")
    bf16 = precision == "bf16"
    torch.manual_seed(0)
    model = build_model(config.model, image_size=224).to(memory_format=torch.channels_last).eval()
    size = config.model.input_size
    images = torch.randint(0, 256, (8, size, size, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        heatmaps = model.backbone(to_input(images, True))[0][-1].float()
    one = step_seconds(config, config.train.batch_size, 1, bf16=bf16)  # 1 warm-up step + 1: 2 steps
    many = step_seconds(config, config.train.batch_size, steps, bf16=bf16)
    return {
        "forward_sha256": hashlib.sha256(heatmaps.numpy().tobytes()).hexdigest()[:16],
        "weights_after_2_steps_sha256": one["weights_sha256"],
        f"weights_after_{steps + 1}_steps_sha256": many["weights_sha256"],
        "samples_per_s": many["samples_per_s"],
        "onednn_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "default"),
        "aten_capability": torch.backends.cpu.get_cpu_capability(),
        "mkl_cbwr": os.environ.get("MKL_CBWR") or "off",
        "mkldnn": torch.backends.mkldnn.enabled,
        "cores": len(os.sched_getaffinity(0)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--pins", nargs="+", default=PINS)
    parser.add_argument("--repeats", type=int, default=1, help="fresh processes repeating the first pin")
    parser.add_argument("--one-core", action="store_true", help="run every process on one CPU core")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # precision:pin, run in a fresh process
    args = parser.parse_args()
    if args.child:
        precision, pin = args.child.split(":", 1)
        if args.one_core:
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        print(json.dumps(measure(args.params, args.steps, precision, pin == "native")))
        return

    def child(precision: str, pin: str) -> dict:
        cmd = [sys.executable, __file__, "--params", args.params, "--steps", str(args.steps)]
        cmd += ["--one-core"] if args.one_core else []
        done = subprocess.run(
            [*cmd, "--child", f"{precision}:{pin}"], env=environment(pin), capture_output=True, text=True
        )
        if done.returncode:
            raise SystemExit(f"isa_parting: pin {pin} ({precision}) failed: {done.stderr.strip()[-300:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    results: dict = {"steps": args.steps, "one_core": args.one_core}
    first = args.pins[0]
    for precision in args.precisions:
        rows = {pin: child(precision, pin) for pin in dict.fromkeys(args.pins)}
        base = rows[first]  # the ground truth, if fresh processes repeat it
        again = [child(precision, first) for _ in range(args.repeats)]
        digests = [key for key in base if key.endswith("sha256")]
        runs = Counter(" ".join(run[k] for k in digests) for run in [base, *again])
        results[f"{precision}_{first}_repeats_itself"] = len(runs) == 1
        results[f"{precision}_{first}_runs"] = dict(runs.most_common())
        for row in rows.values():
            row["same_as_" + first] = {key: row[key] == base[key] for key in digests}
            row["speed_vs_" + first] = round(row["samples_per_s"] / base["samples_per_s"], 3)
        results[precision] = rows
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
