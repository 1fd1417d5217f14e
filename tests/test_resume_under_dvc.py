"""A killed `dvc repro` loses no finished epoch: models/<variant> persists, the train stage passes
--resume, and the rerun continues each seed where it stopped, ending with the weights, log and metrics
bytes of an uninterrupted run. A rerun for another reason (new params) starts over."""

import os
import signal
import subprocess
import time

import pytest
import torch
import yaml

from .conftest import copy_project, folder_bytes
from .dvc_project import environment, run

pytestmark = pytest.mark.slow  # DVC runs killed and resumed

# A tiny epoch takes about 0.1 s, so seed 1 runs for some 2 s after its first checkpoint appears: two
# hundred times the 10 ms the watcher below takes to see it and kill the job.
EPOCHS = 20


def assert_same(a, b, where: str) -> None:
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def wait_for(path, process, timeout=1200.0):
    # A guard against a hang, not a measurement: unloaded the file appears within a minute, but a
    # machine shared with other work can take many times that (the suite must pass under load).
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, "dvc repro ended before it could be killed"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def test_a_killed_repro_resumes_every_seed_and_matches_an_uninterrupted_run(tiny_project, tmp_path):
    # The session's tiny project (its data, split and pretrained backbone kept), with params edited to one
    # variant trained for EPOCHS over two seeds; its earlier 2-epoch model of seed 0 came from other inputs,
    # so training starts over. TINY trains on one thread: a CPU shared with other work slows a 2-thread
    # torch job many times over; resuming is the same with any thread count.
    repo = copy_project(tiny_project, tmp_path / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["train"]["threads"] == 1
    params["train"].update(epochs=EPOCHS, seed=[0, 1])
    params["variants"] = {"m_cos_2": ["hm", "pose", "cos"]}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    models = repo / "models" / "m_cos_2"
    dvc = subprocess.Popen(
        ["dvc", "repro"], cwd=repo, env=environment(), start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(models / "seed1.pt", dvc)  # seed 0 has finished, seed 1 has one epoch or more
    finally:
        os.killpg(dvc.pid, signal.SIGKILL)  # the whole job, as a scheduler or a power cut would
        dvc.wait()
    killed_at = torch.load(models / "seed1.pt", weights_only=True)["epoch"] + 1
    assert 1 <= killed_at < EPOCHS

    out = run(["dvc", "repro"], repo).stdout
    assert f"m_cos_2 seed 0: resuming after epoch {EPOCHS} of {EPOCHS}" in out  # finished: kept
    assert f"m_cos_2 seed 1: resuming after epoch {killed_at} of {EPOCHS}" in out
    assert "up to date" in run(["dvc", "status"], repo).stdout.lower()

    # As the stage runs it (`python -m handpose` with this checkout's src/ first), but by hand and whole.
    cmd = [
        "python",
        "-m",
        "handpose",
        "train",
        "--config",
        "configs/m_cos_2.json",
        "--pretrained",
        "models/pretrain.pt",
    ]
    whole = tmp_path / "whole"
    run([*cmd, "--models", str(whole), "--live", str(whole / "live"), "--timings", str(whole / "t.json")], repo)
    for seed in (0, 1):  # every tensor and value; the files differ only in pickle's memo and save ids
        assert_same(torch.load(models / f"seed{seed}.pt"), torch.load(whole / f"seed{seed}.pt"), f"seed{seed}")
    assert folder_bytes(repo / "plots" / "train" / "m_cos_2") == folder_bytes(whole / "live")
    evaluate = [
        "python",
        "-m",
        "handpose",
        "evaluate",
        "--models",
        str(whole),
        "--metrics",
        str(whole / "metrics.json"),
    ]
    run([*evaluate, "--predictions", str(whole / "p.npz"), "--timings", str(whole / "t.json")], repo)
    assert (repo / "metrics" / "m_cos_2.json").read_bytes() == (whole / "metrics.json").read_bytes()

    # New params: the persisted checkpoints came from other inputs, so training starts over (the experiment
    # runs the train stage and what it needs; evaluating and reporting its models would check nothing here).
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "resumed run"], repo)
    out = run(["dvc", "exp", "run", "-S", "loss.cos=5", "train@m_cos_2"], repo).stdout
    assert "trained from other inputs (config, seed, data or code); starting over" in out
    assert "resuming" not in out
