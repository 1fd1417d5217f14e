"""The race in Intel MKL's first multi-threaded call. Fresh processes each take, as their first torch op and
with 2 threads, the square root of the same 2,352 numbers (the size of the first conv's weights, whose
RMSprop step takes one), and compare it with the correctly rounded square root. Counted per MKL mode
(`MKL_CBWR`; off: MKL's own default branch, handpose's: COMPATIBLE). Prints JSON.

    python benchmarks/mkl_first_call.py [--processes 150] [--modes off COMPATIBLE]

Each outcome is "<elements off by more than 1e-6 relative> off, max <relative error>"; a process whose
threads raced has about half of the elements off (one thread's share), at about 3e-4.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections import Counter

from isa_parting import environment
from tqdm import tqdm

CHILD = """
import numpy as np, torch
torch.set_num_threads(2)
x = torch.rand(16, 3, 7, 7, generator=torch.Generator().manual_seed(0)) * 1e-4
got = torch.sqrt(x).numpy().ravel()
exact = np.sqrt(x.numpy().ravel().astype(np.float64))
relative = np.abs(got - exact) / exact
print(int((relative > 1e-6).sum()), float(relative.max()))
"""


def first_sqrt(mode: str) -> tuple[int, float]:
    """One fresh process under `MKL_CBWR`=`mode` (isa_parting's `mkl:` pin): its elements off by more than
    1e-6 relative, and its largest relative error."""
    done = subprocess.run([sys.executable, "-c", CHILD], env=environment(f"mkl:{mode}"), capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"mkl_first_call: a process under MKL_CBWR={mode} failed: {done.stderr.strip()[-300:]}")
    off, worst = done.stdout.split()
    return int(off), float(worst)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=150, help="fresh processes per mode (default: %(default)s)")
    parser.add_argument("--modes", nargs="+", default=["off", "COMPATIBLE"], help="MKL_CBWR values; off: MKL's default")
    args = parser.parse_args()
    results: dict = {"processes": args.processes, "cores": len(os.sched_getaffinity(0))}
    for mode in args.modes:
        runs = [first_sqrt(mode) for _ in tqdm(range(args.processes), desc=f"MKL_CBWR={mode}")]
        outcomes = Counter(f"{off} off, max {worst:.1e}" for off, worst in runs)
        raced = sum(off > 0 for off, _ in runs)
        results[mode] = {"outcomes": dict(outcomes.most_common()), "processes_off_by_more_than_1e-6": raced}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
