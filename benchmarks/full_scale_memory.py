"""Peak memory of the pipeline at FreiHAND's full size: a synthetic dataset of 32,560 poses x 4
versions (130,240 images, FreiHAND v2's layout), then the `split`, `heatmaps` and one epoch of `train`
stages on every training image, each as its own process. Prints JSON: wall time and peak RSS per stage.

    python benchmarks/full_scale_memory.py --work /tmp/fullscale [--poses 32560] [--versions 4]

Needs about 3 GB of disk per 130k images at 224 px plus 2 GB for the split at 64 px; `--keep` leaves
the files in --work, and a second run reuses a dataset already there.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def run(argv: list[str], log: Path) -> dict:
    """Run one stage in a child process; its peak RSS (with its own children's) comes from wait4."""
    tic = time.perf_counter()
    with log.open("w") as out:
        child = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": "src"})
        _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status):
        sys.exit(f"{' '.join(argv)} failed; see {log}")
    return {"seconds": round(time.perf_counter() - tic, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, help="a folder for the dataset, split and model")
    parser.add_argument("--poses", type=int, default=32560)
    parser.add_argument("--versions", type=int, default=4)
    parser.add_argument("--n-test", type=int, default=200)
    parser.add_argument("--params", default=str(ROOT / "params.yaml"), help="the model and training to use")
    parser.add_argument("--keep", action="store_true", help="keep the files (default: remove them)")
    args = parser.parse_args()
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    raw = yaml.safe_load(Path(args.params).read_text())
    raw["data"].update(n_synthetic=args.poses, synthetic_versions=args.versions, n_train="all", n_test=args.n_test)
    raw["train"].update(epochs=1, seed=0)
    (work / "params.yaml").write_text(yaml.safe_dump(raw))
    cli = [sys.executable, "-m", "handpose"]
    params = ["--params", str(work / "params.yaml"), "-q"]
    os.chdir(ROOT)
    result: dict = {"images": args.poses * args.versions, "input_size": raw["model"]["input_size"]}
    stages = {
        "data": [*cli, "data", *params, "--out", str(work / "freihand")],
        "split": [*cli, "split", *params, "--dataset", str(work / "freihand"), "--out", str(work / "split")],
        "heatmaps": [*cli, "heatmaps", *params, "--split", str(work / "split"), "--out", str(work / "heatmaps")],
        "configure": [*cli, "configure", *params, "--out", str(work / "configs")],
        "train_one_epoch": [*cli, "train", "-q", "--config", str(work / "configs" / "m_cos_2.json")]
        + ["--split", str(work / "split"), "--heatmaps", str(work / "heatmaps"), "--models", str(work / "models")]
        + ["--live", str(work / "live"), "--timings", str(work / "timings.json")],
    }
    for name, argv in stages.items():
        if name == "data" and (work / "freihand" / "training_xyz.json").is_file():
            result[name] = "reused"
            continue
        result[name] = run(argv, work / f"{name}.log")
        print(json.dumps({name: result[name]}), file=sys.stderr, flush=True)
    result["train_samples"] = (args.poses - args.n_test) * args.versions
    result["peak_rss_mb"] = max(r["peak_rss_mb"] for r in result.values() if isinstance(r, dict))
    print(json.dumps(result, indent=2))
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
