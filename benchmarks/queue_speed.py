"""Wall time of a queued grid under DVC's experiment queue, one at a time against two at a time: a
throwaway copy of this project (m_cos_2 and baseline, smaller data), a 2-experiment grid on loss.cos,
run with `dvc queue start -j 1` (2 threads each), `-j 2` (1 thread each) and `-j 2` (2 threads each,
oversubscribing a 2-core machine). Prints JSON: seconds per setting.

    python benchmarks/queue_speed.py [--work /tmp/queue-speed]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.dvc_project import new_project, run  # noqa: E402  (the tests' throwaway-project helper)

PROJECT = {
    "variants": {"baseline": ["hm", "pose", "len", "dir"], "m_cos_2": ["hm", "pose", "cos"]},
    "data": {"n_synthetic": 1100, "n_train": 1000, "n_test": 100},
    "model": {"input_size": 64, "hourglass": {"features": 64, "stacks": 2, "depth": 4}, "mlp_width": 256},
    "train": {"epochs": 2},
    "pretrain": {"n_hands": 200, "passes": 1},
}


def queued_grid_seconds(repo: Path, jobs: int, threads: int, values: tuple[int, int]) -> float:
    for value in values:
        overrides = ["-S", f"loss.cos={value}", "-S", f"train.threads={threads}"]
        run(["dvc", "exp", "run", "--queue", "--name", f"cos{value}", *overrides], repo)
    tic = time.perf_counter()
    run(["dvc", "queue", "start", "-j", str(jobs)], repo)
    while True:
        status = run(["dvc", "queue", "status"], repo).stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(0.5)
    seconds = time.perf_counter() - tic
    if "Failed" in status:
        sys.exit(f"a queued experiment failed:\n{status}")
    run(["dvc", "queue", "stop"], repo, check=False)
    time.sleep(3)  # the workers wind down before the next setting starts its own
    return round(seconds, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", help="a folder for the throwaway project (default: a temporary one)")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp()) / "project"
    repo = new_project(work, PROJECT)
    run(["dvc", "repro"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "base"], repo)  # queued runs see only committed files
    results = {
        "jobs_1_threads_2": queued_grid_seconds(repo, 1, 2, (3, 4)),
        "jobs_2_threads_1": queued_grid_seconds(repo, 2, 1, (6, 7)),
        "jobs_2_threads_2": queued_grid_seconds(repo, 2, 2, (8, 9)),
    }
    print(json.dumps({"grid": 2, "seconds": results}, indent=2))
    if not args.work:
        shutil.rmtree(work.parent)


if __name__ == "__main__":
    main()
