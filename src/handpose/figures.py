"""The report's seaborn/matplotlib figures, each written atomically as a PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display here or in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from handpose.atomic import atomic_path  # noqa: E402
from handpose.drawing import FINGER_COLOURS, draw_skeleton  # noqa: E402
from handpose.metrics import PCK_THRESHOLDS_MM, joint_errors_mm, pck_curve, pose_error_mm  # noqa: E402
from handpose.skeleton import BONE_FINGER, BONES  # noqa: E402


def _save(fig: plt.Figure, path: str | Path) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def convergence_figure(logs: dict[str, pd.DataFrame], path: str | Path) -> None:
    """Test error and the main loss terms per epoch, every variant on each panel."""
    frame = pd.concat([log.assign(variant=name) for name, log in logs.items()], ignore_index=True)
    panels = [
        ("test_pose_error_mm", "test 3D pose error", "mm", False),
        ("loss_pose", "L_pose (unweighted)", "sum of squares, in hand scales", True),
        ("loss_hm", "L_hm (unweighted)", "sum of squares over heatmap cells", True),
        ("loss", "total weighted loss", "weighted sum of the variant's terms", True),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6))
    for ax, (column, title, unit, log_scale) in zip(axes, panels):
        sns.lineplot(frame, x="epoch", y=column, hue="variant", marker="o", ax=ax, legend=ax is axes[0])
        ax.set(title=title, ylabel=unit, xlabel="epoch", yscale="log" if log_scale else "linear")
    _save(fig, path)


def error_figure(per_sample: pd.DataFrame, paper_mm: dict[str, float], path: str | Path) -> None:
    """Pose error per variant (95% CI over test hands) beside the paper's Table 1."""
    paper = pd.DataFrame({"variant": list(paper_mm), "pose_error_mm": list(paper_mm.values())})
    frame = pd.concat(
        [per_sample.assign(source="ours (95% CI over test hands)"), paper.assign(source="paper Table 1")],
        ignore_index=True,
    )
    order = list(dict.fromkeys(per_sample["variant"]))
    fig, ax = plt.subplots(figsize=(9, 3.8))
    sns.barplot(frame, x="variant", y="pose_error_mm", hue="source", order=order, errorbar=("ci", 95), seed=0, ax=ax)
    ax.set(ylabel="3D pose error (mm)", xlabel="", title="Pose error per variant (ground-truth root given)")
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1, 1), title=None, frameon=False)
    _save(fig, path)


def forest_figure(differences: dict[str, list[dict]], reference: str, caption: str, path: str | Path) -> None:
    """Each variant's paired difference to `reference` with its 95% interval, one panel per metric
    (`differences`: metric label -> comparison.paired_differences rows against the reference), and
    `caption` (what the intervals hold) beneath."""
    against = {label: [r for r in rows if r["first"] == reference] for label, rows in differences.items()}
    height = 1.2 + 0.5 * max(len(rows) for rows in against.values())
    fig, axes = plt.subplots(1, len(against), figsize=(5 * len(against), height), squeeze=False, sharey=True)
    for ax, (label, rows) in zip(axes[0], against.items()):
        for y, row in enumerate(rows):  # green: significantly better, red: significantly worse, grey: neither
            colour = ("C2" if row["difference"] < 0 else "C3") if row["significant"] else "0.4"
            low, high = row["difference"] - row["low"], row["high"] - row["difference"]
            ax.errorbar(row["difference"], y, xerr=[[low], [high]], fmt="o", color=colour, capsize=4)
        ax.axvline(0, color="0.2", lw=1, ls="--")
        ax.set_yticks(range(len(rows)), [r["second"] for r in rows])
        ax.set(xlabel=f"{label} minus {reference}'s (mm)", title=f"{label}: paired difference, 95% CI (< 0: better)")
    axes[0][0].invert_yaxis()  # the first comparison on top (the axes share y: invert once)
    fig.supxlabel(caption, fontsize=9, color="0.3")
    _save(fig, path)


def pck_figure(predictions: dict[str, tuple[np.ndarray, np.ndarray]], path: str | Path) -> None:
    """3D PCK curves (0-50 mm) of every variant and the mean-pose reference, pooling seeds."""
    frame = pd.concat(
        [
            pd.DataFrame(
                {"threshold_mm": PCK_THRESHOLDS_MM, "pck": pck_curve(joint_errors_mm(pred, true)), "variant": name}
            )
            for name, (pred, true) in predictions.items()
        ],
        ignore_index=True,
    )
    fig, ax = plt.subplots(figsize=(6, 4))
    sns.lineplot(frame, x="threshold_mm", y="pck", hue="variant", ax=ax)
    ax.set(xlabel="error threshold (mm)", ylabel="fraction of joints within", title="3D PCK", ylim=(0, 1))
    _save(fig, path)


def _skeleton_3d(ax: plt.Axes, xyz: np.ndarray, style: str, label: str) -> None:
    for (parent, child), finger in zip(BONES, BONE_FINGER):
        colour = "0.2" if style == "--" else np.array(FINGER_COLOURS[finger]) / 255
        ax.plot(*xyz[[parent, child]].T * 1000, style, color=colour, lw=1.5, label=label if child == 1 else None)


def qualitative_figure(
    images: list[np.ndarray],
    pred_uv: np.ndarray,
    true_uv: np.ndarray,
    pred_xyz: np.ndarray,
    true_xyz: np.ndarray,
    title: str,
    path: str | Path,
) -> None:
    """Like the paper's Figures 4-5: each test image with the predicted (coloured) and true
    (white) 2D skeletons, and the 3D skeletons side by side (true dashed), root-relative, in mm."""
    fig = plt.figure(figsize=(3.2 * len(images), 6.4))
    for i, image in enumerate(images):
        ax = fig.add_subplot(2, len(images), i + 1)
        ax.imshow(draw_skeleton(draw_skeleton(image, true_uv[i], colour=(255, 255, 255)), pred_uv[i]))
        error = pose_error_mm(pred_xyz[i : i + 1], true_xyz[i : i + 1])
        ax.set(title=f"{error:.1f} mm", xticks=[], yticks=[])
        ax3 = fig.add_subplot(2, len(images), len(images) + i + 1, projection="3d")
        root = true_xyz[i, 0]
        _skeleton_3d(ax3, true_xyz[i] - root, "--", "true")
        _skeleton_3d(ax3, pred_xyz[i] - root, "-", "predicted")
        ax3.view_init(elev=-70, azim=-90)  # roughly the camera's view: x right, y down
        ax3.tick_params(labelsize=6)
        if i == 0:
            ax3.legend(fontsize=7, loc="upper left")
    fig.suptitle(title)
    _save(fig, path)


def eval_sets_figure(table: pd.DataFrame, references: dict[str, str], path: str | Path) -> None:
    """PA-MPJPE and 2D error of every variant on each extra test set, beside the reference predictors'
    (`references`: name -> its line style, "dashed" or "dotted"). `table` has a row per (set, name) with
    columns set, name, pa_mpjpe_mm, uv_error_px."""
    if table.empty:
        fig, ax = plt.subplots(figsize=(6, 1.2))
        ax.axis("off")
        ax.text(0.5, 0.5, "no extra test sets (params.yaml eval_sets:)", ha="center", va="center")
        return _save(fig, path)
    is_reference = table["name"].isin(list(references))
    models, sets = table[~is_reference], list(table["set"].unique())
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
    for ax, column, label in zip(axes, ("pa_mpjpe_mm", "uv_error_px"), ("PA-MPJPE (mm)", "2D error (px at 224)")):
        sns.barplot(models, x="set", y=column, hue="name", ax=ax, legend=ax is axes[1])
        for _, row in table[is_reference & table[column].notna()].iterrows():
            x = sets.index(row["set"])
            ax.hlines(row[column], x - 0.4, x + 0.4, colors="k", linestyles=references[row["name"]])
        ax.set(ylabel=label, xlabel="")
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    axes[0].set_title(", ".join(f"{style}: {name}" for name, style in references.items()), fontsize=8)
    _save(fig, path)
