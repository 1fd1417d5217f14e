"""Training under torchrun on CPU (gloo, 127.0.0.1): two processes train as one with the same global
batch, rank 0 alone writes files, two "nodes" form one job, and a killed job resumes."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from handpose.checkpoints import load_checkpoint
from handpose.config import validate
from handpose.configure import configure
from handpose.heatmap_targets import write_heatmaps
from handpose.training_log import read_curves

from .conftest import folder_bytes
from .dvc_project import ROOT, environment

# Records every file a process puts in place (atomic_path's os.replace) or opens to write (dvclive's
# curves; atomic_path's hidden temporaries left out), by rank, then runs handpose.
WRAPPER = """
import builtins, os, sys
rank, replace, real_open = os.environ.get("RANK", "0"), os.replace, builtins.open
def record(path):
    with real_open(os.path.join(sys.argv[1], "writes-" + rank), "a") as f:
        f.write(str(path) + "\\n")
def replaced(src, dst, *a, **k):
    record(dst)
    return replace(src, dst, *a, **k)
def opened(file, mode="r", *a, **k):
    if isinstance(file, (str, os.PathLike)) and set(mode) & set("wax") and not os.path.basename(file).startswith("."):
        record(file)
    return real_open(file, mode, *a, **k)
os.replace, builtins.open = replaced, opened
from handpose.cli import main
sys.exit(main(sys.argv[2:]))
"""


def descendants(pid: int) -> list[int]:
    """Every process under `pid` (torchrun starts its workers in sessions of their own)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def job(tiny_split, tmp_path_factory) -> dict:
    """A tiny variant's config (m_asm: its batch PCA spans the processes), the split and heatmaps."""
    work = tmp_path_factory.mktemp("ddp")
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["model"].update(input_size=32, mlp_width=32, dropout=[0.0], hourglass={"features": 16, "stacks": 2, "depth": 4})
    raw["train"].update(epochs=3, batch_size=8, threads=2)
    for nproc, epochs, threads in ((1, 3, 2), (2, 3, 2), (2, 12, 2), (1, 3, 1)):
        raw["train"].update(nproc=nproc, epochs=epochs, threads=threads)
        configure(validate(raw), work / f"configs{nproc}x{epochs}x{threads}")
    raw["train"].update(nproc=1, epochs=3, threads=2, seed=1)  # one process, another seed: a real change
    configure(validate(raw), work / "configs1x3x2seed1")
    write_heatmaps(tiny_split["train"], work / "heatmaps", 8, 1.0)
    return {"work": work, "split": tiny_split["dir"], "heatmaps": work / "heatmaps"}


def train_args(job: dict, out: Path, nproc: int = 1, epochs: int = 3, threads: int = 2, seed: int = 0) -> list[str]:
    config = job["work"] / f"configs{nproc}x{epochs}x{threads}{f'seed{seed}' if seed else ''}" / "m_asm.json"
    return ["train", "--config", str(config), "--split", str(job["split"]), "--heatmaps", str(job["heatmaps"])] + [
        "--models", str(out / "models"), "--live", str(out / "live"), "--timings", str(out / "t.json"), "-q",
    ]  # fmt: skip


def torchrun(*flags: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *flags]


def run(cmd: list[str], cwd: Path = ROOT, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=environment(), capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def weights(out: Path, seed: int = 0) -> dict:
    return load_checkpoint(out / "models" / f"seed{seed}.pt")["model"]


def distance(a: dict, b: dict) -> float:
    """|a - b| / |b| over the trained parameters; BatchNorm's running statistics are left out (under
    torchrun they are rank 0's, from its halves of the batches)."""
    keys = [k for k in b if b[k].is_floating_point() and "running_" not in k]
    return float(
        torch.cat([(a[k] - b[k]).flatten() for k in keys]).norm() / torch.cat([b[k].flatten() for k in keys]).norm()
    )


@pytest.fixture(scope="module")
def single(job) -> Path:
    out = job["work"] / "single"
    run([sys.executable, "-m", "handpose", *train_args(job, out)])
    return out


@pytest.fixture(scope="module")
def two_processes(job) -> tuple[Path, str]:
    """train.nproc: 2 makes `handpose train` relaunch itself under torchrun."""
    out = job["work"] / "two"
    result = run([sys.executable, "-m", "handpose", *train_args(job, out, nproc=2)])
    return out, result.stdout + result.stderr


def test_two_processes_match_one_with_the_same_global_batch(job, single, two_processes, tmp_path) -> None:
    out, _ = two_processes
    one, two = read_curves(single / "live", "seed0"), read_curves(out / "live", "seed0")
    assert list(two["epoch"]) == [1, 2, 3]
    assert not two["test_pose_error_mm"].equals(one["test_pose_error_mm"])  # two processes really ran
    reseeded = tmp_path / "reseeded"
    run([sys.executable, "-m", "handpose", *train_args(job, reseeded, seed=1)])
    # Same starting weights (DDP broadcasts rank 0's) and the same images in every global batch; on CPU
    # each process normalises its own half (no SyncBatchNorm) and rounds differently. On this tiny,
    # unconverged model RMSprop steps by about lr whatever a gradient's size, so any difference at all, a
    # change of thread count included, moves the test error and the loss by several percent, as far as
    # another seed does: they cannot carry a tolerance. The trained parameters can: 9 steps of ~lr move
    # them by a small fraction of their size, another seed (a real change: init and order) by about all
    # of it. So the two-process run must lie within half the reseeded run's distance from the one-process
    # run: a run that did not start from the same weights, or took steps many times too large, lands as far.
    two_vs_one, seed_vs_one = distance(weights(out), weights(single)), distance(weights(reseeded, 1), weights(single))
    assert two_vs_one < seed_vs_one / 2, (two_vs_one, seed_vs_one)


def test_rank_0_alone_logs(two_processes) -> None:
    _, output = two_processes
    assert output.count("m_asm epoch 3:") == 1 and "x 2" in output  # the parameter line names the world size


def test_only_rank_0_writes_files(job, tmp_path) -> None:
    (tmp_path / "wrapper.py").write_text(WRAPPER)
    out = tmp_path / "out"
    wrapped = [str(tmp_path / "wrapper.py"), str(tmp_path)]
    run(torchrun("--standalone", "--nproc-per-node=2", *wrapped) + train_args(job, out))
    assert not (tmp_path / "writes-1").exists()
    written = {Path(line).name for line in (tmp_path / "writes-0").read_text().splitlines()}
    curves = {"metrics.json", "epoch.tsv", "loss.tsv", "test_pose_error_mm.tsv"}  # dvclive's, some of them
    assert {"seed0.pt", "t.json"} | curves <= written


@pytest.mark.slow  # two torchrun launchers and their workers at once
def test_two_nodes_of_one_process_train_as_one_job(job, two_processes, tmp_path) -> None:
    out, port = tmp_path / "nodes", free_port()
    nodes = [
        subprocess.Popen(
            torchrun("--nnodes=2", f"--node-rank={rank}", "--nproc-per-node=1", "--master-addr=127.0.0.1")
            + [f"--master-port={port}", "-m", "handpose", *train_args(job, out, threads=1)],
            cwd=ROOT,
            env=environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for rank in (0, 1)
    ]
    outputs = [node.communicate(timeout=300)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs
    assert "x 2" in outputs[0] and "epoch 3:" not in outputs[1]  # one job of two ranks; node 1 stays quiet
    # The same job as two processes on one node, each with one thread there and here: the same bytes.
    assert folder_bytes(out / "live") == folder_bytes(two_processes[0] / "live")
    for key, value in weights(two_processes[0]).items():
        assert torch.equal(weights(out)[key], value), key


@pytest.mark.slow  # three two-process jobs of 12 epochs
def test_a_killed_job_resumes_to_the_uninterrupted_result(job, tmp_path) -> None:
    whole, out = tmp_path / "whole", tmp_path / "killed"
    run([sys.executable, "-m", "handpose", *train_args(job, whole, nproc=2, epochs=12)])
    cmd = [sys.executable, "-m", "handpose", *train_args(job, out, nproc=2, epochs=12)]
    first = subprocess.Popen(cmd, cwd=ROOT, env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint, deadline = out / "models" / "seed0.pt", time.monotonic() + 120
    while not checkpoint.exists() and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.02)
    for pid in [*descendants(first.pid), first.pid]:  # torchrun and both of its workers, mid-run
        os.kill(pid, signal.SIGKILL)
    first.wait()
    epoch = load_checkpoint(checkpoint)["epoch"]
    assert epoch < 11, "the job finished before it could be killed"
    result = run([*cmd, "--resume"])
    assert f"resuming after epoch {epoch + 1} of 12" in result.stdout + result.stderr
    assert folder_bytes(out / "live") == folder_bytes(whole / "live")
    for key, value in weights(whole).items():
        assert torch.equal(weights(out)[key], value), key
    assert json.loads((out / "t.json").read_text())["per_seed"]
