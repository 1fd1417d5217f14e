"""All variants -> a summary table beside the paper's Table 1, the paired comparisons that say which
differences are significant, and the figures."""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from handpose import figures
from handpose.atomic import atomic_path, write_json, write_text
from handpose.camera import project
from handpose.comparison import ALPHA, CONFIDENCE, interval, paired_differences, seed_interval
from handpose.data.freihand import open_freihand, read_visibility
from handpose.data.layout import pose_id
from handpose.data.split import load_split
from handpose.metrics import (
    converged_epoch,
    joint_errors_mm,
    over_seeds,
    per_joint_errors_mm,
    pose_metrics,
    procrustes_align,
    root_relative,
    uv_error_px,
)
from handpose.skeleton import ROOT
from handpose.training_log import RUNNING, read_curves, read_running, seed_runs

# "Toward 3D Hand Pose Estimation", Table 1: 3D pose error in mm (3200 FreiHAND train / 200 test, 100 epochs).
PAPER_TABLE1_MM = {"m_cos_1": 26.00, "m_cos_2": 18.31, "m_asm": 15.54, "baseline": 37.53}
MEAN_POSE = "mean pose"  # the reference predictor: training-set mean root-relative pose at the true root
REFERENCE = "baseline"  # what every variant is compared with first (else the first variant)
METRICS = {"pose": "pose error", "pa": "PA-MPJPE"}  # the compared per-sample errors: key -> label


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


def per_sample_errors(pred: np.ndarray, true: np.ndarray) -> dict[str, np.ndarray]:
    """(S seeds, N samples) errors in mm for predicted (S, N, 21, 3) and true (N, 21, 3) poses, by
    METRICS key: the pose error and the PA-MPJPE of each test hand."""
    return {
        "pose": joint_errors_mm(pred, true).mean(-1),
        "pa": np.stack([joint_errors_mm(procrustes_align(p, true), true).mean(-1) for p in pred]),
    }


def summarize(metrics: dict[str, dict], errors: dict[str, dict[str, np.ndarray]]) -> tuple[dict, pd.DataFrame]:
    """The summary row per name: its `metrics` (a variant's as `evaluate` wrote them), the pose error's
    bootstrap interval over its per-sample `errors` (over test samples and seeds), and the paper's
    figure; and the per-sample pose errors (mean over seeds), for the figures."""
    summary, per_sample = {}, []
    for name, m in metrics.items():
        pose = errors[name]["pose"]  # (S, N): each hand's pose error per seed
        _, low, high = interval(pose)
        summary[name] = {
            **m,
            "pose_error_mm_ci": [low, high],
            "seeds": len(pose),
            "paper_pose_error_mm": PAPER_TABLE1_MM.get(name),
        }
        per_sample.append(pd.DataFrame({"variant": name, "pose_error_mm": pose.mean(0)}))
    return summary, pd.concat(per_sample, ignore_index=True)


def read_metrics(variants: list[str], metrics_dir: Path, how: str = "evaluate@{variant}") -> dict[str, dict]:
    """Each variant's metrics as `evaluate` wrote them (metrics_dir/<variant>.json), beside its predictions."""
    metrics = {}
    for variant in variants:
        path = metrics_dir / f"{variant}.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: metrics not found (run `{how.format(variant=variant)}`)")
        metrics[variant] = json.loads(path.read_text())
    return metrics


def compare(
    predictions: dict[str, dict[str, np.ndarray]], errors: dict[str, dict[str, np.ndarray]] | None = None
) -> tuple[str, dict[str, list[dict]]]:
    """The reference variant and, per METRICS key, comparison.paired_differences over the variants'
    per-sample `errors` (per_sample_errors of their predictions unless given; each variant must have
    trained the same seeds, which then pair by position)."""
    names = list(predictions)
    reference = REFERENCE if REFERENCE in names else names[0]
    seeds = {name: tuple(p["seeds"].tolist()) for name, p in predictions.items()}
    if len(set(seeds.values())) > 1:
        raise ValueError(f"variants trained different seeds ({seeds}); a paired comparison needs the same ones")
    if errors is None:
        errors = {name: per_sample_errors(p["xyz"], p["true_xyz"]) for name, p in predictions.items()}
    errors = {name: errors[name] for name in names}
    return reference, {key: paired_differences({n: e[key] for n, e in errors.items()}, reference) for key in METRICS}


def convergence(curves: dict[str, list[list[float]]]) -> dict[str, tuple[float, float | None, float | None]]:
    """Per variant, the epoch from which the test error stays within 5% of its final value
    (metrics.converged_epoch): the mean over seeds and its bootstrap interval over seeds."""
    return {name: seed_interval([converged_epoch(c) for c in runs]) for name, runs in curves.items()}


def _pair(rows: list[dict], first: str, second: str) -> dict | None:
    """The comparison of `second` minus `first`, from whichever order `rows` holds it in."""
    for row in rows:
        if (row["first"], row["second"]) == (first, second):
            return row
        if (row["first"], row["second"]) == (second, first):
            d, low, high = -row["difference"], -row["high"], -row["low"]
            return {**row, "first": first, "second": second, "difference": d, "low": low, "high": high}
    return None


def _verdict(row: dict, seeds: int) -> str:
    if not row["significant"]:
        return "no difference shown"
    word = "lower" if row["difference"] < 0 else "higher"
    return f"{word}, significant" if seeds > 1 else f"{word} for this seed's models"


def comparison_json(reference: str, differences: dict[str, list[dict]], converged: dict, seeds: int) -> dict:
    """metrics/comparison.json: what `dvc metrics diff` compares (`make compare` leaves it out)."""

    def pairs(rows: list[dict]) -> dict:
        keys = ("difference", "low", "high", "p_holm")
        return {f"{r['second']}-{r['first']}": {**{k: round(r[k], 4) for k in keys}, "significant": r["significant"]}
                for r in rows}  # fmt: skip

    return {  # one top-level key, so that `make compare` drops these columns by one name
        "paired": {
            "seeds": seeds,
            "reference": reference,
            **{key: pairs(rows) for key, rows in differences.items()},
            "converged_epoch": {
                name: {"mean": mean, **({"low": low, "high": high} if low is not None else {})}
                for name, (mean, low, high) in converged.items()
            },
        }
    }


def comparison_markdown(reference: str, differences: dict[str, list[dict]], converged: dict, seeds: int) -> str:
    """The paired comparisons, the convergence epochs, and the paper's claims worded by what is significant."""
    ci = f"{CONFIDENCE:.0%} CI"
    noise = (
        f"the intervals resample the {seeds} seeds and the test hands, so they hold the training noise too"
        if seeds > 1
        else "**one seed: the intervals and tests hold the test-sample noise only**, not the training noise "
        "(another seed, or another machine, moves a variant by about as much as these differences; "
        "`make study` trains three seeds)"
    )
    lines = [
        "## Paired differences",
        "",
        f"Second minus first, per test hand, in mm (< 0: the second is better), mean and {ci}; {noise}. "
        f"p: Wilcoxon signed-rank on the per-hand differences averaged over seeds, Holm-corrected over the "
        f"{len(differences['pose'])} comparisons of each metric. Significant: Holm p < {ALPHA} and the "
        "interval excludes 0.",
        "",
        f"| comparison | {METRICS['pose']} (mm) [{ci}] | Holm p | {METRICS['pa']} (mm) [{ci}] | Holm p | verdict |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for row in differences["pose"]:
        pa = _pair(differences["pa"], row["first"], row["second"])
        cells = [f"{r['difference']:+.2f} [{r['low']:+.2f}, {r['high']:+.2f}] | {r['p_holm']:.3g}" for r in (row, pa)]
        verdicts = f"pose: {_verdict(row, seeds)}; PA: {_verdict(pa, seeds)}"
        lines.append(f"| {row['second']} − {row['first']} | {cells[0]} | {cells[1]} | {verdicts} |")
    lines += [
        "",
        "## Convergence",
        "",
        "The epoch from which the test error stays within 5% of its final value: mean over seeds"
        + (f" [{ci} over seeds]." if seeds > 1 else " (one seed: no interval)."),
        "",
        "| variant | epoch |",
        "|---|---:|",
    ]
    for name, (mean, low, high) in converged.items():
        lines.append(f"| {name} | {mean:.2f}" + (f" [{low:.2f}, {high:.2f}]" if low is not None else "") + " |")
    lines += ["", "## The paper's claims, tested", "", *paper_claims(reference, differences["pose"], converged, seeds)]
    return "\n".join(lines) + "\n"


def paper_claims(reference: str, rows: list[dict], converged: dict, seeds: int) -> list[str]:
    """One line per ordering that the paper's Table 1 states between two variants here, and its
    convergence claim, each with what the paired statistics say of it."""
    names = [n for n in PAPER_TABLE1_MM if any(n in (r["first"], r["second"]) for r in rows)]
    lines = []
    for worse, better in combinations(sorted(names, key=PAPER_TABLE1_MM.get, reverse=True), 2):
        row = _pair(rows, worse, better)
        if row is None:
            continue
        here = f"{better} − {worse} = {row['difference']:+.2f} mm [{row['low']:+.2f}, {row['high']:+.2f}]"
        if not row["significant"]:
            outcome = "not shown: no significant difference"
        elif row["difference"] < 0:
            outcome = "holds" if seeds > 1 else "holds for this seed's models (test-sample noise only)"
        else:
            outcome = "contradicted: significantly worse" if seeds > 1 else "reversed for this seed's models"
        paper = f"{PAPER_TABLE1_MM[better]:.2f} against {PAPER_TABLE1_MM[worse]:.2f} mm"
        lines.append(f"- {better} beats {worse} (paper: {paper}). Here {here}: **{outcome}**.")
    if "m_asm" in converged and reference in converged and reference != "m_asm":
        (asm, _, asm_high), (ref, ref_low, _) = converged["m_asm"], converged[reference]
        if asm_high is None or ref_low is None:
            outcome = "not testable with one seed (no interval over seeds)"
        elif asm_high < ref_low:
            outcome = "holds: m_asm's interval lies below " + reference + "'s"
        else:
            outcome = f"not shown: m_asm's interval does not lie below {reference}'s"
        lines.append(
            f"- m_asm converges in about half the epochs. Here m_asm is within 5% of its final error from epoch "
            f"{asm:.2f}, {reference} from {ref:.2f}: **{outcome}**."
        )
    return lines


SET_MEAN_POSE = "mean pose of the set"  # an oracle: the set's own mean, fitted to the labels it is scored on


def eval_set_summary(
    name: str, variants: list[str], predictions_dir: Path, metrics_dir: Path, train_xyz: np.ndarray
) -> dict[str, dict]:
    """One extra test set: each variant's metrics as `evaluate` wrote them, beside two mean poses at
    the true root, the training split's (what ignoring the image gives) and the set's own (a bound)."""
    rows = read_metrics(variants, metrics_dir / name, f"evaluate_set@{{variant}}-{name}")
    with np.load(predictions_dir / "sets" / name / f"{variants[0]}.npz") as f:
        true_xyz = f["true_xyz"]
    references = {MEAN_POSE: train_xyz, SET_MEAN_POSE: true_xyz}
    references = {label: mean_pose_prediction(poses, true_xyz) for label, poses in references.items()}
    for label, pred in references.items():
        rows[label] = {**pose_metrics(pred, true_xyz), "uv_error_px": None, "test_samples": len(true_xyz)}
    return dict(sorted(rows.items(), key=lambda item: item[0] not in references))


def eval_sets_markdown(sets: dict[str, dict[str, dict]]) -> str:
    lines = ["## Extra test sets", ""]
    for name, rows in sets.items():
        n = next(iter(rows.values()))["test_samples"]
        lines += [
            f"`{name}` ({n} images; left hands mirrored in and out; the set's own mean pose is fitted to its "
            "labels, a bound rather than a predictor):",
            "",
            "| variant | pose error (mm) | PA-MPJPE (mm) | PA-AUC 0–50 mm | 2D error (px) |",
            "|---|---:|---:|---:|---:|",
        ]
        for variant, m in rows.items():
            uv = "–" if m["uv_error_px"] is None else f"{m['uv_error_px']:.2f}"
            lines.append(
                f"| {variant} | {m['pose_error_mm']:.2f} | {m['pa_mpjpe_mm']:.2f} | {m['pa_auc_0_50']:.3f} | {uv} |"
            )
        lines.append("")
    return "\n".join(lines)


def headline(summary: dict) -> dict:
    """metrics/summary.json: two numbers per variant under short keys, so that `dvc exp show` fits a
    terminal (README: `make compare`): `pose` = 3D pose error (mm), `pa` = PA-MPJPE (mm), mean over seeds.
    Everything else is in metrics/<variant>.json and metrics/summary.md."""
    return {name.replace(" ", "_"): {"pose": m["pose_error_mm"], "pa": m["pa_mpjpe_mm"]} for name, m in summary.items()}


def markdown_table(summary: dict) -> str:
    def cell(value: float | None) -> str:
        return "–" if value is None else f"{value:.2f}"

    lines = [
        f"| variant | pose error (mm), ours (± sd) [{CONFIDENCE:.0%} CI] | paper Table 1 (mm) | MPJPE (mm) "
        "| PA-MPJPE (mm) | AUC 0–50 mm | PA-AUC 0–50 mm | 2D error (px) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, m in summary.items():
        ours = cell(m["pose_error_mm"])
        if "pose_error_mm_sd" in m:
            ours += f" ± {m['pose_error_mm_sd']:.2f} ({m['seeds']} seeds)"
        ours += " [{:.2f}, {:.2f}]".format(*m["pose_error_mm_ci"])
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
    comparison_path: str | Path = "metrics/comparison.json",
    eval_sets: tuple[str, ...] = (),
    sets_metrics_dir: str | Path = "metrics/sets",
    metrics_dir: str | Path = "metrics",
) -> dict:
    """Write the summary (JSON and Markdown, with the paired comparisons), the comparisons' numbers
    (`comparison_path`), every figure, and the long tables (one row per variant and epoch / joint) that
    dvc.yaml's charts colour by variant. Each variant's metrics are those `evaluate` wrote to
    `metrics_dir`, with its predictions; `logs_dir` holds each variant's dvclive folder. Returns the summary."""
    predictions = load_predictions(variants, predictions_dir)
    train_xyz, test = load_split(split_dir, "train")["xyz"], load_split(split_dir, "test")
    # The mean pose, scored here (no stage evaluates it), beside the variants' own metrics.
    mean_pose = mean_pose_prediction(train_xyz, test["xyz"])[None]
    poses = {MEAN_POSE: (mean_pose, test["xyz"])} | {n: (p["xyz"], p["true_xyz"]) for n, p in predictions.items()}
    metrics = {
        MEAN_POSE: over_seeds(pd.DataFrame([pose_metrics(mean_pose[0], test["xyz"])]))
        | {"uv_error_px": uv_error_px(project(mean_pose, test["K"]), project(test["xyz"], test["K"]))}
    } | read_metrics(variants, Path(metrics_dir))
    errors = {name: per_sample_errors(pred, true) for name, (pred, true) in poses.items()}  # (S, N) per metric
    summary, per_sample = summarize(metrics, errors)
    runs = {variant: _seed_curves(Path(logs_dir) / variant, variant) for variant in variants}
    reference, differences = compare(predictions, errors)
    converged = convergence({v: [c["test_pose_error_mm"].tolist() for c in curves] for v, curves in runs.items()})
    seeds = len(next(iter(predictions.values()))["seeds"])
    sets = {
        name: eval_set_summary(name, variants, Path(predictions_dir), Path(sets_metrics_dir), train_xyz)
        for name in eval_sets
    }
    set_headlines = {
        f"{variant}@{name}": {"pose": m["pose_error_mm"], "pa": m["pa_mpjpe_mm"]}
        for name, rows in sets.items()
        for variant, m in rows.items()
        if variant in variants
    }
    write_json(summary_json, headline(summary) | set_headlines)
    write_json(comparison_path, comparison_json(reference, differences, converged, seeds))
    write_text(
        summary_md,
        "# Results\n\n3D pose error on the test split, ground-truth root given "
        "(the paper's protocol).\n\n" + markdown_table(summary) + "\n"
        + comparison_markdown(reference, differences, converged, seeds)
        + ("\n" + eval_sets_markdown(sets) if sets else ""),
    )  # fmt: skip
    figures_dir = Path(figures_dir)
    logs = {variant: _mean_over_seeds(curves) for variant, curves in runs.items()}
    _write_tables(logs, Path(logs_dir), predictions, figures_dir)
    caption = (
        f"intervals over the test hands and {seeds} seeds"
        if seeds > 1
        else "one seed: intervals over the test hands only, not the training noise"
    )
    by_label = {METRICS[k]: rows for k, rows in differences.items()}
    figures.forest_figure(
        by_label, reference, caption + "; green / red: significantly better / worse", figures_dir / "forest.png"
    )
    figures.convergence_figure(logs, figures_dir / "convergence.png")
    figures.error_figure(per_sample, PAPER_TABLE1_MM, figures_dir / "pose_error.png")
    figures.pck_figure(poses, figures_dir / "pck.png")
    columns = ["pa_mpjpe_mm", "uv_error_px"]
    set_rows = [{"set": s, "name": v, **{k: m[k] for k in columns}} for s, r in sets.items() for v, m in r.items()]
    figures.eval_sets_figure(
        pd.DataFrame(set_rows, columns=["set", "name", *columns]),
        {MEAN_POSE: "dashed", SET_MEAN_POSE: "dotted"},
        figures_dir / "eval_sets.png",
    )
    best = min(variants, key=lambda v: summary[v]["pose_error_mm"])
    first_seed = {key: (value[0] if key in ("xyz", "uv") else value) for key, value in predictions[best].items()}
    _qualitative(best, first_seed, dataset, str(test["part"]), figures_dir / "predictions.png")
    print(markdown_table(summary))
    return summary


def _write_tables(logs: dict[str, pd.DataFrame], logs_dir: Path, predictions: dict, figures_dir: Path) -> None:
    """The long tables dvc.yaml charts, one row per variant and epoch (or step, or joint)."""
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
    running = pd.concat(  # per step, the mean over seeds
        [pd.concat(read_running(logs_dir / v, run) for run in seed_runs(logs_dir / v))
         .groupby("step", as_index=False)[RUNNING].mean().assign(variant=v) for v in logs]
    )  # fmt: skip
    _write_table(running, figures_dir / "running_loss.csv")
    per_joint = {v: per_joint_errors_mm(p["xyz"], p["true_xyz"]) for v, p in predictions.items()}
    _write_table(
        pd.concat(
            pd.DataFrame({"joint": list(e), "error_mm": list(e.values()), "variant": v}) for v, e in per_joint.items()
        ),
        figures_dir / "per_joint.csv",
    )


def _seed_curves(folder: Path, variant: str) -> list[pd.DataFrame]:
    """Each seed's per-epoch curves from the variant's dvclive folder (the `train` stage's)."""
    runs = seed_runs(folder)
    if not runs:
        raise FileNotFoundError(f"{folder}: no training curves (run `train@{variant}`)")
    return [read_curves(folder, run).drop(columns="step") for run in runs]


def _mean_over_seeds(curves: list[pd.DataFrame]) -> pd.DataFrame:
    """One row per epoch: each curve's mean over seeds, with `*_sd` columns when there are several."""
    by_epoch = pd.concat(curves).groupby("epoch")
    return pd.DataFrame([{"epoch": epoch, **over_seeds(runs.drop(columns="epoch"))} for epoch, runs in by_epoch])


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
