import json
from pathlib import Path

import numpy as np
import pytest
import torch

from handpose import train as train_module
from handpose.checkpoints import load_checkpoint
from handpose.evaluate import evaluate
from handpose.heatmap_targets import write_heatmaps
from handpose.training_log import read_curves, seed_runs

from .conftest import folder_bytes, live_folder, tiny_config, train_tiny

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("variant, asm_pca", [("baseline", "batch"), ("m_asm", "batch"), ("m_asm", "dataset")])
def test_train_writes_a_log_and_a_checkpoint_evaluate_scores_it(variant, asm_pca, tiny_split, tiny_dataset, tmp_path):
    config = tiny_config(variant, asm_pca=asm_pca)
    train_tiny(config, tiny_split, tmp_path / "models" / "seed0.pt", progress=False)
    log = read_curves(live_folder(tmp_path / "models" / "seed0.pt"), "seed0")
    assert log["epoch"].tolist() == [1, 2] and log["step"].tolist() == [3, 6]  # 24 samples, batches of 8
    header = set(log.columns)
    assert {"epoch", "lr", "lambda_asm", "loss", "loss_hm", "loss_pose", "loss_cos", "test_pose_error_mm"} <= header
    assert ("loss_asm" in header) == (variant == "m_asm")
    ckpt = load_checkpoint(tmp_path / "models" / "seed0.pt")
    assert {"model", "optimizer", "epoch", "config"} <= set(ckpt) and ckpt["config"] == config
    metrics = evaluate(
        tmp_path / "models",
        tiny_split["dir"],
        tiny_dataset,
        tmp_path / "m.json",
        tmp_path / "p.npz",
        tmp_path / "t.json",
    )
    on_disk = json.loads((tmp_path / "m.json").read_text())
    assert on_disk == metrics and np.isfinite(metrics["pose_error_mm"]) and metrics["pose_error_mm"] > 0
    assert metrics["seeds"] == [0] and "pose_error_mm_sd" not in metrics


def test_several_seeds_train_one_model_each_and_evaluate_to_mean_and_sd(tiny_split, tiny_dataset, tmp_path):
    config = tiny_config("m_cos_2", epochs=1, seed=[3, 1])
    write_heatmaps(tiny_split["train"], tmp_path / "heatmaps", size=8, sigma=1.0)
    train_module.train_variant(
        config,
        tiny_split["dir"],
        tmp_path / "heatmaps",
        tmp_path / "models",
        tmp_path / "live",
        tmp_path / "timings.json",
        progress=False,
    )
    assert set(json.loads((tmp_path / "timings.json").read_text())["per_seed"]) == {"1", "3"}
    assert sorted(p.name for p in (tmp_path / "models").glob("*.pt")) == ["seed1.pt", "seed3.pt"]
    assert seed_runs(tmp_path / "live") == ["seed1", "seed3"]
    seed_logs = [read_curves(tmp_path / "live", f"seed{s}") for s in (1, 3)]
    assert seed_logs[0]["test_pose_error_mm"].iloc[0] != seed_logs[1]["test_pose_error_mm"].iloc[0]
    summary = json.loads((tmp_path / "live" / "metrics.json").read_text())  # what `dvc exp show` reads
    for seed, log in zip((1, 3), seed_logs):
        assert summary[f"seed{seed}"]["epoch"] == 1
        assert summary[f"seed{seed}"]["test_pose_error_mm"] == log["test_pose_error_mm"].iloc[-1]
    # The progress column every run's summary has: the seed trained last, and its epoch.
    assert summary["latest"] == {"seed": config.train.seed[-1], "epoch": 1}
    metrics = evaluate(
        tmp_path / "models",
        tiny_split["dir"],
        tiny_dataset,
        tmp_path / "m.json",
        tmp_path / "p.npz",
        tmp_path / "t.json",
    )
    assert metrics["seeds"] == [1, 3] and metrics["pose_error_mm_sd"] > 0
    with np.load(tmp_path / "p.npz") as f:
        assert f["xyz"].shape == (2, 8, 21, 3)
        per_seed = [np.linalg.norm(f["xyz"][i] - f["true_xyz"], axis=-1).mean() * 1000 for i in range(2)]
    # float32 predictions: the same norms, scaled to mm per joint rather than after the mean, agree to a few
    # eps (1.2e-7); 1e-5 is room. The sd is a difference of those numbers: it inherits their absolute error,
    # and a relative bound would depend on how far apart the two seeds' errors happen to lie.
    tolerance = 1e-5 * float(np.mean(per_seed))
    assert metrics["pose_error_mm"] == pytest.approx(np.mean(per_seed), abs=tolerance)
    assert metrics["pose_error_mm_sd"] == pytest.approx(np.std(per_seed, ddof=1), abs=tolerance)


def test_resume_matches_an_uninterrupted_run(tiny_split, tmp_path, monkeypatch):
    config = tiny_config("m_cos_2", epochs=2)
    monkeypatch.setattr(train_module, "RUNNING_EVERY", 2)  # a running-loss point within each epoch of 3 steps
    whole = train_tiny(config, tiny_split, tmp_path / "a.pt", progress=False)

    calls = {"n": 0}
    real_infer = train_module.infer

    def crash_in_epoch_2(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_infer(*a, **k)

    monkeypatch.setattr(train_module, "infer", crash_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train_tiny(config, tiny_split, tmp_path / "b.pt", progress=False)
    assert load_checkpoint(tmp_path / "b.pt")["epoch"] == 0
    monkeypatch.setattr(train_module, "infer", real_infer)
    resumed = train_tiny(config, tiny_split, tmp_path / "b.pt", resume=True, progress=False)
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    # The resumed run replays its checkpoint's curves, so its dvclive folder is the uninterrupted run's.
    assert folder_bytes(live_folder(tmp_path / "b.pt")) == folder_bytes(live_folder(tmp_path / "a.pt"))
    running = (live_folder(tmp_path / "a.pt") / "plots" / "metrics" / "seed0" / "running_loss.tsv").read_text()
    assert [line.split("\t")[0] for line in running.splitlines()] == ["step", "2", "5"]
