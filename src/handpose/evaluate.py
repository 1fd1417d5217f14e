"""A trained model + the test split -> metrics/<variant>.json, per-joint plot data, predictions."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from handpose.atomic import atomic_path, write_text
from handpose.camera import project
from handpose.metrics import errors_by_visibility_mm, per_finger_errors_mm, per_joint_errors_mm, pose_metrics
from handpose.model.pose_net import predict
from handpose.train import load_model, pick_device


def evaluate(
    model_path: str | Path,
    test_split: dict[str, np.ndarray],
    metrics_path: str | Path,
    per_joint_path: str | Path,
    predictions_path: str | Path,
    visibility: np.ndarray | None = None,
) -> dict:
    """Score one variant on the test split (the paper's protocol: ground-truth root depth given).
    `visibility` (N, 21), where the data has it, splits the error by occlusion."""
    model, checkpoint = load_model(model_path)
    model.to(pick_device(checkpoint["config"]["train"]["device"]))
    tic = time.perf_counter()
    pred = predict(model, test_split)
    seconds = time.perf_counter() - tic
    true_uv = project(test_split["xyz"], test_split["K"])
    metrics = {
        **pose_metrics(pred["xyz"], test_split["xyz"]),
        "uv_error_px": float(np.linalg.norm(pred["uv"] - true_uv, axis=-1).mean()),
        "per_finger_mm": per_finger_errors_mm(pred["xyz"], test_split["xyz"]),
        **(
            {"by_visibility_mm": errors_by_visibility_mm(pred["xyz"], test_split["xyz"], visibility)}
            if visibility is not None
            else {}
        ),
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_seconds": float(sum(row["seconds"] for row in checkpoint["log"])),
        "inference_ms_per_image": 1000 * seconds / len(test_split["xyz"]),
        "epochs": len(checkpoint["log"]),
        "test_samples": len(test_split["xyz"]),
    }
    write_text(metrics_path, json.dumps(metrics, indent=2) + "\n")
    per_joint = per_joint_errors_mm(pred["xyz"], test_split["xyz"])
    with atomic_path(per_joint_path) as tmp:
        pd.DataFrame({"joint": list(per_joint), "error_mm": list(per_joint.values())}).to_csv(tmp, index=False)
    with atomic_path(predictions_path) as tmp, tmp.open("wb") as f:
        np.savez(
            f,
            xyz=pred["xyz"],
            uv=pred["uv"],
            true_xyz=test_split["xyz"],
            true_uv=true_uv,
            image_ids=test_split["image_ids"],
            variant=checkpoint["config"]["variant"],
        )
    return metrics
