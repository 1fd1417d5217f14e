"""Trained models (one per seed) + the test split -> metrics/<variant>.json and the predictions."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from handpose.atomic import atomic_path, json_text, write_json
from handpose.camera import mirror, mirror_uv, project
from handpose.checkpoints import load_model, seed_checkpoints
from handpose.data.freihand import read_visibility
from handpose.data.layout import pose_id
from handpose.data.split import load_split
from handpose.device import setup_torch
from handpose.inference import ONE_VIEW, infer
from handpose.metrics import (
    converged_epoch,
    errors_by_visibility_mm,
    late_change_pct,
    over_seeds,
    per_finger_errors_mm,
    pose_metrics,
    uv_error_px,
)


def _model_for(path: Path, test_split: dict, split_dir: str | Path) -> tuple[torch.nn.Module, dict]:
    """The model of checkpoint `path` on its device, refused unless it takes the split's image size."""
    model, checkpoint = load_model(path)
    trained_on, given = checkpoint["config"].model.input_size, test_split["images"].shape[1]
    if trained_on != given:
        raise ValueError(
            f"{path}: trained on {trained_on} px inputs, but {split_dir} holds {given} px images "
            "(rerun the `split` stage with the model's model.input_size)"
        )
    return model.to(setup_torch(checkpoint["config"].train)), checkpoint


def _write_results(
    metrics: dict, metrics_path: str | Path, predictions_path: str | Path, arrays: dict, split: dict, variant: str
) -> None:
    """Both results or neither: the metrics take their name only once the predictions are written too
    (a full disk halfway leaves no complete-looking metrics file)."""
    with atomic_path(metrics_path) as metrics_tmp:
        metrics_tmp.write_text(json_text(metrics, metrics_path))
        with atomic_path(predictions_path) as tmp, tmp.open("wb") as f:
            np.savez(f, **arrays, image_ids=split["image_ids"], variant=variant)


def evaluate(
    model_dir: str | Path,
    split_dir: str | Path,
    dataset: str | Path | None,
    metrics_path: str | Path,
    predictions_path: str | Path,
    timings_path: str | Path,
    views: Sequence[tuple[float, float]] = ONE_VIEW,
) -> dict:
    """The `evaluate` stage: score one variant on the test split (the paper's protocol: ground-truth
    root depth given). With several seeds, each metric is the mean over seeds and `*_sd` its spread.
    Where the dataset has per-joint visibility (the synthetic one does), the error is split by occlusion.
    With no `dataset`, `split_dir` is an extra test set (`eval_set` stage): its mirrored images are
    scored in their photo's frame, and the training curve's figures (convergence) are left out.
    `views`: the cameras each image is seen through (inference.infer; params.yaml `evaluate:`)."""
    test_split = load_split(split_dir, "test")
    mirrored = test_split.get("mirrored", np.zeros(len(test_split["xyz"]), bool))
    # The labels in each photo's own frame (mirror is its own inverse).
    true_xyz, true_K = np.array(test_split["xyz"]), np.array(test_split["K"])
    true_xyz[mirrored], true_K[mirrored] = mirror(true_xyz[mirrored], true_K[mirrored])
    visibility = None if dataset is None else read_visibility(dataset, str(test_split["part"]))  # a row per image
    if visibility is not None:
        visibility = visibility[pose_id(test_split["image_ids"], len(visibility))]
    xyz, uv, per_seed, late_changes, seconds = [], [], {}, [], 0.0
    for seed, path in seed_checkpoints(model_dir).items():
        model, checkpoint = _model_for(path, test_split, split_dir)
        tic = time.perf_counter()
        try:
            pred = infer(model, test_split, views=views)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
        seconds += time.perf_counter() - tic
        pred_xyz, pred_uv = pred["xyz"], pred["uv"]  # then into the photo's frame, as the labels
        pred_xyz[mirrored] = mirror(pred_xyz[mirrored], true_K[mirrored])[0]
        pred_uv[mirrored] = mirror_uv(pred_uv[mirrored])
        xyz.append(pred_xyz)
        uv.append(pred_uv)
        per_seed[seed] = pose_metrics(pred_xyz, true_xyz)
        if dataset is not None:
            test_errors = [row["test_pose_error_mm"] for row in checkpoint["log"]]
            per_seed[seed]["converged_epoch"] = converged_epoch(test_errors)
            late_changes.append(late_change_pct(test_errors))
    xyz, uv = np.stack(xyz), np.stack(uv)  # (S, N, 21, 3|2)
    true_uv = project(true_xyz, true_K)
    # Every seed's predictions side by side, for the metrics that pool joints.
    pooled_pred, pooled_true = xyz.reshape(-1, *true_xyz.shape[1:]), np.concatenate([true_xyz] * len(xyz))
    metrics = {
        **over_seeds(pd.DataFrame(per_seed.values())),
        "seeds": list(per_seed),
        "uv_error_px": uv_error_px(uv, true_uv),
        **({"late_change_pct": max(late_changes)} if late_changes else {}),  # the worst seed
        "per_finger_mm": per_finger_errors_mm(pooled_pred, pooled_true),
        **(
            {
                "by_visibility_mm": errors_by_visibility_mm(
                    pooled_pred, pooled_true, np.concatenate([visibility] * len(xyz))
                )
            }
            if visibility is not None
            else {}
        ),
        "parameters": sum(p.numel() for p in model.parameters()),
        "epochs": len(checkpoint["log"]),
        "test_samples": len(true_xyz),
    }
    predictions = {"xyz": xyz, "uv": uv, "seeds": np.array(list(per_seed)), "true_xyz": true_xyz, "true_uv": true_uv}
    _write_results(metrics, metrics_path, predictions_path, predictions, test_split, checkpoint["config"].variant)
    # Outside DVC's outputs: a timing is not a result (it changes on every run).
    write_json(timings_path, {"inference_ms_per_image": 1000 * seconds / xyz.shape[0] / xyz.shape[1]})
    print(f"{model_dir}: pose error {metrics['pose_error_mm']:.2f} mm, PA-MPJPE {metrics['pa_mpjpe_mm']:.2f} mm")
    return metrics
