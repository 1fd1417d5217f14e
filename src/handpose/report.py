"""All variants -> a summary table beside the paper's Table 1, and the figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from handpose import figures
from handpose.atomic import atomic_path, write_text
from handpose.camera import project
from handpose.data.freihand import open_freihand, read_visibility
from handpose.data.layout import pose_id
from handpose.data.split import load_split
from handpose.metrics import joint_errors_mm, over_seeds, per_joint_errors_mm, pose_metrics, root_relative, uv_error_px
from handpose.skeleton import ROOT

# "Toward 3D Hand Pose Estimation", Table 1: 3D pose error in mm (3200 FreiHAND train / 200 test, 100 epochs).
PAPER_TABLE1_MM = {"m_cos_1": 26.00, "m_cos_2": 18.31, "m_asm": 15.54, "baseline": 37.53}
MEAN_POSE = "mean pose"  # the reference predictor: training-set mean root-relative pose at the true root


def mean_pose_prediction(train_xyz: np.ndarray, test_xyz: np.ndarray) -> np.ndarray:
    """Predict every test hand as the mean training pose, placed at the ground-truth root."""
    return root_relative(train_xyz).mean(0) + test_xyz[:, ROOT : ROOT + 1]


def load_predictions(variants: list[str], predictions_dir: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """Each variant's predictions.npz written by `evaluate`."""
    predictions = {}
    for variant in variants:
        path = Path(predictions_dir) / f"{variant}.npz"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: predictions not found (run `evaluate@{variant}`)")
        with np.load(path) as f:
            predictions[variant] = {key: f[key] for key in f.files}
    return predictions


def summarize(
    predictions: dict[str, tuple[np.ndarray, np.ndarray]],
) -> tuple[dict, pd.DataFrame]:
    """Metrics per name for (predicted (S, N, 21, 3) over S seeds, true (N, 21, 3)) poses: the
    mean over seeds (and `*_sd` across them), and per-sample errors (mean over seeds)."""
    summary, per_sample = {}, []
    for name, (pred, true) in predictions.items():
        summary[name] = {
            **over_seeds(pd.DataFrame([pose_metrics(p, true) for p in pred])),
            "seeds": len(pred),
            "paper_pose_error_mm": PAPER_TABLE1_MM.get(name),
        }
        errors = joint_errors_mm(pred, true).mean(-1).mean(0)  # (N,)
        per_sample.append(pd.DataFrame({"variant": name, "pose_error_mm": errors}))
    return summary, pd.concat(per_sample, ignore_index=True)


def headline(summary: dict) -> dict:
    """metrics/summary.json: two numbers per variant under short keys, so that `dvc exp show` fits a
    terminal (README: `make compare`): `pose` = 3D pose error (mm), `pa` = PA-MPJPE (mm), mean over seeds.
    Everything else is in metrics/<variant>.json and metrics/summary.md."""
    return {name.replace(" ", "_"): {"pose": m["pose_error_mm"], "pa": m["pa_mpjpe_mm"]} for name, m in summary.items()}


def markdown_table(summary: dict) -> str:
    def cell(value: float | None) -> str:
        return "–" if value is None else f"{value:.2f}"

    lines = [
        "| variant | pose error (mm), ours | paper Table 1 (mm) | MPJPE (mm) | PA-MPJPE (mm) "
        "| AUC 0–50 mm | PA-AUC 0–50 mm | 2D error (px) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, m in summary.items():
        ours = cell(m["pose_error_mm"])
        if "pose_error_mm_sd" in m:
            ours += f" ± {m['pose_error_mm_sd']:.2f} ({m['seeds']} seeds)"
        lines.append(
            f"| {name} | {ours} | {cell(m['paper_pose_error_mm'])} | "
            f"{cell(m['mpjpe_mm'])} | {cell(m['pa_mpjpe_mm'])} | {m['auc_pck_0_50']:.3f} | {m['pa_auc_0_50']:.3f} "
            f"| {cell(m.get('uv_error_px'))} |"
        )
    return "\n".join(lines) + "\n"


def report(
    variants: list[str],
    predictions_dir: str | Path,
    logs_dir: str | Path,
    split_dir: str | Path,
    dataset: str | Path,
    summary_json: str | Path,
    summary_md: str | Path,
    figures_dir: str | Path,
) -> dict:
    """Write the summary (JSON and Markdown), every figure, and the long tables (one row per variant
    and epoch / joint) that dvc.yaml's charts colour by variant; returns the summary."""
    predictions = load_predictions(variants, predictions_dir)
    train_xyz, test = load_split(split_dir, "train")["xyz"], load_split(split_dir, "test")
    test_xyz = test["xyz"]
    poses = {MEAN_POSE: (mean_pose_prediction(train_xyz, test_xyz)[None], test_xyz)}
    poses |= {name: (p["xyz"], p["true_xyz"]) for name, p in predictions.items()}
    summary, per_sample = summarize(poses)
    for name, (pred, true) in poses.items():  # in the 224-px image, mean over seeds
        summary[name]["uv_error_px"] = uv_error_px(project(pred, test["K"]), project(true, test["K"]))
    logs = {}
    for variant in variants:
        path = Path(logs_dir) / f"{variant}.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: training log not found (run `train@{variant}`)")
        logs[variant] = pd.read_csv(path)
    write_text(summary_json, json.dumps(headline(summary), indent=2) + "\n")
    write_text(
        summary_md,
        "# Results\n\n3D pose error on the test split, ground-truth root given "
        "(the paper's protocol).\n\n" + markdown_table(summary),
    )
    figures_dir = Path(figures_dir)
    per_epoch = pd.concat([log.assign(variant=v) for v, log in logs.items()])
    _write_table(per_epoch, figures_dir / "convergence.csv")
    # The same, one row per (variant, epoch, series), so that dvc.yaml charts every loss term and every
    # scheduled weight without naming them: a new term or schedule shows up by itself.
    means = [c for c in per_epoch.columns if not c.endswith("_sd")]
    for name, columns in (
        ("loss_terms", [c for c in means if c == "loss" or c.startswith("loss_")]),
        ("schedule", [c for c in means if c == "lr" or c.startswith("lambda_")]),
    ):
        long = per_epoch.melt(id_vars=["variant", "epoch"], value_vars=columns, var_name="series").dropna()
        _write_table(long, figures_dir / f"{name}.csv")
    per_joint = {v: per_joint_errors_mm(p["xyz"], p["true_xyz"]) for v, p in predictions.items()}
    _write_table(
        pd.concat(
            pd.DataFrame({"joint": list(e), "error_mm": list(e.values()), "variant": v}) for v, e in per_joint.items()
        ),
        figures_dir / "per_joint.csv",
    )
    figures.convergence_figure(logs, figures_dir / "convergence.png")
    figures.error_figure(per_sample, PAPER_TABLE1_MM, figures_dir / "pose_error.png")
    figures.pck_figure(poses, figures_dir / "pck.png")
    best = min(variants, key=lambda v: summary[v]["pose_error_mm"])
    first_seed = {key: (value[0] if key in ("xyz", "uv") else value) for key, value in predictions[best].items()}
    _qualitative(best, first_seed, dataset, str(test["part"]), figures_dir / "predictions.png")
    print(markdown_table(summary))
    return summary


def _write_table(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame[["variant", *frame.columns.drop("variant")]].to_csv(tmp, index=False)


def _qualitative(
    variant: str, pred: dict[str, np.ndarray], dataset: str | Path, part: str, path: Path, n: int = 4
) -> None:
    """The best variant on a few test hands: the most occluded ones where the data says so."""
    data = open_freihand(dataset, part)
    ids = pred["image_ids"]
    visibility = read_visibility(dataset, part)  # a row per image (or per pose)
    if visibility is not None:
        order = np.argsort(-(visibility[pose_id(ids, len(visibility))] > 0).sum(1), kind="stable")
    else:
        order = np.argsort(joint_errors_mm(pred["xyz"], pred["true_xyz"]).mean(1))[:: max(1, len(ids) // n)]
    pick = np.sort(order[:n])
    figures.qualitative_figure(
        [data.read_rgb(int(i)) for i in pred["image_ids"][pick]],
        pred["uv"][pick],
        pred["true_uv"][pick],
        pred["xyz"][pick],
        pred["true_xyz"][pick],
        f"{variant}: predicted (colour) and true (white / dashed)",
        path,
    )
