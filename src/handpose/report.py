"""All variants -> a summary table beside the paper's Table 1, and seaborn figures."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display here or in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from handpose.atomic import atomic_path, write_text  # noqa: E402
from handpose.metrics import joint_errors_mm, pose_metrics, root_relative  # noqa: E402
from handpose.skeleton import ROOT  # noqa: E402

# "Toward 3D Hand Pose Estimation", Table 1: 3D pose error in mm (3200 FreiHAND train / 200 test, 100 epochs).
PAPER_TABLE1_MM = {"m_cos_1": 26.00, "m_cos_2": 18.31, "m_asm": 15.54, "baseline": 37.53}
MEAN_POSE = "mean pose"  # the reference predictor: training-set mean root-relative pose at the true root


def mean_pose_prediction(train_xyz: np.ndarray, test_xyz: np.ndarray) -> np.ndarray:
    """Predict every test hand as the mean training pose, placed at the ground-truth root."""
    return root_relative(train_xyz).mean(0) + test_xyz[:, ROOT : ROOT + 1]


def summarize(
    variants: list[str], predictions_dir: str | Path, train_xyz: np.ndarray, test_xyz: np.ndarray
) -> tuple[dict, pd.DataFrame]:
    """Per-variant metrics (plus the mean-pose reference) and per-sample errors in long form."""
    summary, per_sample = {}, []
    baseline_pred = mean_pose_prediction(train_xyz, test_xyz)
    predictions = {MEAN_POSE: (baseline_pred, test_xyz)}
    for variant in variants:
        path = Path(predictions_dir) / f"{variant}.npz"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: predictions not found (run `evaluate@{variant}`)")
        with np.load(path) as f:
            predictions[variant] = (f["xyz"], f["true_xyz"])
    for name, (pred, true) in predictions.items():
        summary[name] = {**pose_metrics(pred, true), "paper_pose_error_mm": PAPER_TABLE1_MM.get(name)}
        per_sample.append(pd.DataFrame({"variant": name, "pose_error_mm": joint_errors_mm(pred, true).mean(1)}))
    return summary, pd.concat(per_sample, ignore_index=True)


def markdown_table(summary: dict) -> str:
    def cell(value: float | None) -> str:
        return "–" if value is None else f"{value:.2f}"

    lines = [
        "| variant | pose error (mm), ours | paper Table 1 (mm) | MPJPE (mm) | PA-MPJPE (mm) | AUC 0–50 mm |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, m in summary.items():
        lines.append(
            f"| {name} | {cell(m['pose_error_mm'])} | {cell(m['paper_pose_error_mm'])} | "
            f"{cell(m['mpjpe_mm'])} | {cell(m['pa_mpjpe_mm'])} | {m['auc_pck_0_50']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def convergence_figure(logs: dict[str, pd.DataFrame], path: str | Path) -> None:
    frame = pd.concat([log.assign(variant=name) for name, log in logs.items()], ignore_index=True)
    panels = [
        ("val_pose_error_mm", "test 3D pose error (mm)", False),
        ("loss_pose", "L_pose (unweighted)", True),
        ("loss_hm", "L_hm (unweighted)", True),
        ("loss", "total weighted loss", True),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6))
    for ax, (column, title, log_scale) in zip(axes, panels):
        sns.lineplot(frame, x="epoch", y=column, hue="variant", marker="o", ax=ax, legend=ax is axes[0])
        ax.set(title=title, ylabel="", yscale="log" if log_scale else "linear")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def error_figure(per_sample: pd.DataFrame, path: str | Path) -> None:
    paper = pd.DataFrame({"variant": list(PAPER_TABLE1_MM), "pose_error_mm": list(PAPER_TABLE1_MM.values())})
    frame = pd.concat(
        [per_sample.assign(source="ours (95% CI over test hands)"), paper.assign(source="paper Table 1")],
        ignore_index=True,
    )
    order = list(dict.fromkeys(per_sample["variant"]))
    fig, ax = plt.subplots(figsize=(9, 3.8))
    sns.barplot(frame, x="variant", y="pose_error_mm", hue="source", order=order, errorbar=("ci", 95), ax=ax)
    ax.set(ylabel="3D pose error (mm)", xlabel="", title="Pose error per variant (ground-truth root given)")
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1, 1), title=None, frameon=False)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def report(
    variants: list[str],
    predictions_dir: str | Path,
    logs_dir: str | Path,
    train_xyz: np.ndarray,
    test_xyz: np.ndarray,
    summary_json: str | Path,
    summary_md: str | Path,
    figures_dir: str | Path,
) -> dict:
    summary, per_sample = summarize(variants, predictions_dir, train_xyz, test_xyz)
    logs = {}
    for variant in variants:
        path = Path(logs_dir) / f"{variant}.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: training log not found (run `train@{variant}`)")
        logs[variant] = pd.read_csv(path)
    write_text(summary_json, json.dumps(summary, indent=2) + "\n")
    write_text(
        summary_md,
        "# Results\n\n3D pose error on the test split, ground-truth root given "
        "(the paper's protocol).\n\n" + markdown_table(summary),
    )
    convergence_figure(logs, Path(figures_dir) / "convergence.png")
    error_figure(per_sample, Path(figures_dir) / "pose_error.png")
    return summary
