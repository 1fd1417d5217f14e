"""End to end through DVC on a tiny configuration: repro, no-op repro, a targeted experiment, a typo,
a fifth variant added in params.yaml alone, and the plots page drawn offline in a browser."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from handpose.data.convert import convert
from handpose.training_log import read_curves

from .conftest import IMAGES, copy_project, write_labelled_photos
from .dvc_project import ROOT, run

pytestmark = pytest.mark.slow  # DVC runs on the session's tiny project and copies of it

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def project(tiny_project) -> Path:
    """A fresh repo holding this project's pipeline, with tiny params, after one `dvc repro`: the session's
    shared tiny_project (conftest.py), which the tests that take it only read."""
    return tiny_project


@pytest.fixture
def workspace(tiny_project, tmp_path) -> Path:
    """A copy of tiny_project for one test to change."""
    return copy_project(tiny_project, tmp_path / "repo")


VARIANTS = ("baseline", "m_cos_1", "m_cos_2", "m_asm")


def test_repro_writes_every_variants_metrics_and_the_report(project):
    for variant in VARIANTS:
        metrics = json.loads((project / "metrics" / f"{variant}.json").read_text())
        assert metrics["pose_error_mm"] > 0 and metrics["pa_mpjpe_mm"] > 0
        assert set(metrics["by_visibility_mm"]) == {"visible", "self_occluded", "object_occluded"}
        assert read_curves(project / "plots" / "train" / variant, "seed0")["epoch"].tolist() == [1, 2]
    convergence = pd.read_csv(project / "plots" / "report" / "convergence.csv")
    assert sorted(convergence.groupby("variant").size().items()) == sorted((v, 2) for v in VARIANTS)
    running = pd.read_csv(project / "plots" / "report" / "running_loss.csv")  # 3 steps an epoch: one point each
    assert sorted(running.groupby("variant")["step"].apply(list).items()) == sorted((v, [3, 6]) for v in VARIANTS)
    per_joint = pd.read_csv(project / "plots" / "report" / "per_joint.csv")
    assert sorted(per_joint.groupby("variant").size().items()) == sorted((v, 21) for v in VARIANTS)
    summary = json.loads((project / "metrics" / "summary.json").read_text())
    assert set(summary) == {"mean_pose", *VARIANTS}
    m_asm = json.loads((project / "metrics" / "m_asm.json").read_text())
    assert summary["m_asm"] == {"pose": m_asm["pose_error_mm"], "pa": m_asm["pa_mpjpe_mm"]}
    table = (project / "metrics" / "summary.md").read_text()
    assert "| m_cos_2 |" in table and "| 15.54 |" in table  # beside the paper's Table 1
    comparison = json.loads((project / "metrics" / "comparison.json").read_text())["paired"]
    assert comparison["reference"] == "baseline" and set(comparison["pose"]) >= {"m_asm-baseline", "m_asm-m_cos_2"}
    assert len(comparison["pa"]) == 6 and set(comparison["converged_epoch"]) == set(VARIANTS)  # every pair
    assert "## Paired differences" in table and "## The paper's claims, tested" in table
    assert "one seed: the intervals and tests hold the test-sample noise only" in table
    for png in ("forest.png", "convergence.png", "pose_error.png", "pck.png", "predictions.png"):
        assert (project / "plots" / "report" / png).read_bytes()[:4] == b"\x89PNG"


def test_second_repro_is_a_no_op(project):
    result = run(["dvc", "repro"], project)
    assert "up to date" in result.stdout.lower()
    assert "Running stage" not in result.stdout


def test_metrics_and_plots_are_visible_to_dvc(project):
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], project).stdout)
    files = shown[""]["data"]
    assert {f"metrics/{v}.json" for v in VARIANTS} | {"metrics/summary.json", "metrics/comparison.json"} <= set(files)
    assert files["plots/train/m_asm/metrics.json"]["data"]["seed0"]["epoch"] == 2  # dvclive's: what `exp show` follows
    assert files["plots/pretrain/metrics.json"]["data"]["step"] == 2
    assert files["metrics/m_asm.json"]["data"]["pose_error_mm"] > 0
    for chart in convergence_charts(project):
        assert {row["variant"] for row in chart} == set(VARIANTS)


def table_charts(project: Path, *args: str) -> dict[str, list[dict]]:
    """Title -> data rows of every chart `dvc plots show` (or `dvc plots <args>`) draws from a CSV table."""
    shown = json.loads(run(["dvc", "plots", *(args or ("show",)), "--json"], project).stdout)["data"]
    return {name: chart[0]["content"]["data"]["values"] for name, chart in shown.items() if not name.endswith(".png")}


def convergence_charts(project: Path, *args: str) -> list[list[dict]]:
    """The data rows of the charts that compare variants (one row per variant and epoch or joint)."""
    return [rows for rows in table_charts(project, *args).values() if "variant" in rows[0]]


def test_the_pretraining_chart_shows_the_held_out_2d_error(project):
    (rows,) = [rows for name, rows in table_charts(project).items() if name.startswith("Pretraining")]
    assert [row["step"] for row in rows] == ["1", "2"]  # 8 hands, 2 passes at batch 8, measured every step
    assert all(float(row["held_out_uv_error_px"]) > 0 for row in rows)


def test_experiment_on_loss_cos_retrains_only_the_cos_variants(cos_experiment):
    project, out = cos_experiment  # `dvc exp run -S loss.cos=5` in a copy of tiny_project (conftest.py)
    for variant in ("m_cos_1", "m_cos_2"):
        assert f"Running stage 'train@{variant}'" in out
    for variant in ("baseline", "m_asm"):
        assert f"Running stage 'train@{variant}'" not in out
        assert f"Stage 'train@{variant}' didn't change, skipping" in out
    diff = json.loads(run(["dvc", "metrics", "diff", "--json"], project).stdout)
    changed = {path for path, values in diff.items() if values}
    assert "metrics/m_cos_1.json" in changed and "metrics/baseline.json" not in changed


@pytest.mark.parametrize("override, key", [("loss.coss=5", "loss.coss"), ("loss.cos=abc", "loss.cos")])
def test_a_typo_fails_at_once_naming_the_key(workspace, override, key):
    result = run(["dvc", "exp", "run", "-S", override], workspace, check=False)
    assert result.returncode != 0
    assert key in result.stdout + result.stderr


def test_stages_run_the_checkouts_own_code_not_the_installed_copy(workspace):
    # `dvc exp run --temp` and queued experiments run in another folder; an editable install points
    # back at the workspace, so dvc.yaml runs `python -m handpose` with the checkout's src/ first.
    # Every stage runs ${handpose} (dvc.yaml's vars); configure is the quickest of them to rerun.
    repo = workspace
    configure = repo / "src" / "handpose" / "configure.py"
    marker = "ran-this-checkouts-configure"
    configure.write_text(configure.read_text() + f'\nfrom pathlib import Path\nPath("{marker}").write_text("")\n')
    run(["dvc", "repro", "configure"], repo)
    assert (repo / marker).exists()
    assert not (ROOT / marker).exists()


@pytest.fixture(scope="module")
def five_variants(tiny_project, tmp_path_factory) -> Path:
    """A copy of the project where params.yaml gained one line, `m_new: [hm, pose, cos, len]`, and nothing
    else changed; after `dvc repro`."""
    repo = copy_project(tiny_project, tmp_path_factory.mktemp("five") / "repo")
    text = (repo / "params.yaml").read_text()
    assert "variants:\n" in text
    (repo / "params.yaml").write_text(text.replace("variants:\n", "variants:\n  m_new: [hm, pose, cos, len]\n", 1))
    out = run(["dvc", "repro"], repo).stdout
    for variant in VARIANTS:  # the others are untouched
        assert f"Stage 'train@{variant}' didn't change, skipping" in out
    return repo


def test_a_new_variant_is_one_line_in_params(five_variants):
    repo = five_variants
    assert json.loads((repo / "configs" / "m_new.json").read_text())["losses"] == {
        "hm": 0.1,
        "pose": 1.0,
        "cos": 10.0,
        "len": 0.01,
    }
    assert (repo / "models" / "m_new" / "seed0.pt").is_file()
    assert json.loads((repo / "metrics" / "m_new.json").read_text())["pose_error_mm"] > 0
    assert "m_new" in json.loads((repo / "metrics" / "summary.json").read_text())
    assert "| m_new |" in (repo / "metrics" / "summary.md").read_text()
    charts = convergence_charts(repo)
    assert len(charts) == 5
    for chart in charts:
        assert {row["variant"] for row in chart} == {*VARIANTS, "m_new"}
    # `dvc plots diff` against the commit without it: m_new in the workspace only, the rest in both.
    for chart in convergence_charts(repo, "diff", "HEAD"):
        revs = {(row["variant"], row["rev"]) for row in chart}
        assert ("m_new", "workspace") in revs and ("m_new", "HEAD") not in revs
        assert ("baseline", "HEAD") in revs and ("baseline", "workspace") in revs


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (CI installs it: apt-get install chromium)")
@pytest.mark.parametrize("command", [["show"], ["diff", "HEAD"]])
def test_plots_page_draws_every_chart_offline(five_variants, command, tmp_path):
    run(["dvc", "plots", *command, "-o", str(tmp_path / "page")], five_variants)
    page = tmp_path / "page" / "index.html"
    html = page.read_text()
    assert "<script src=" not in html and "cdn.jsdelivr" not in html  # nothing to fetch
    charts = html.count("vegaEmbed(")
    assert charts == 6  # the 5 variant charts and pretraining's (the PNG figures are <img> tags)
    assert html.count('"variant": "m_new"') >= 5 * 2
    chromium = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=20000",
        "--dump-dom",
        page.as_uri(),
    ]
    dom = subprocess.run(chromium, capture_output=True, text=True, timeout=180).stdout
    # vega-embed draws each chart into a canvas (or svg) of class "marks".
    assert dom.count('class="marks"') == charts, dom[-2000:]


def test_make_compare_fits_a_200_column_terminal(cos_experiment):
    # After `dvc exp run -S loss.cos=5` (test_experiment_on_loss_cos...): HEAD and the experiment differ in
    # loss.cos. Only read: test_compare reads the same table.
    project, _ = cos_experiment
    env_bin = Path(sys.executable).parent
    result = subprocess.run(
        ["make", "-s", "-f", str(ROOT / "Makefile"), "compare", f"BIN={env_bin}"],
        cwd=project,
        env={**os.environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    table = result.stdout
    assert "loss.cos" in table and "m_cos_1.pose" in table and "m_cos_1.pa" in table
    assert "…" not in table, table  # rich marks a column it had to cut with an ellipsis
    assert max(len(line) for line in table.splitlines()) <= 200


def test_make_study_writes_mean_and_sd_over_seeds(workspace):
    project = workspace
    venv = Path(sys.executable).parent.parent  # this environment, taken as set up (-o: don't remake it)
    env_bin = venv / "bin"
    make = ["make", "-s", "-f", str(ROOT / "Makefile"), "-o", f"{venv}/.installed", "-o", ".dvc/plots/offline.html"]
    result = subprocess.run(
        [*make, "study", f"VENV={venv}", "STUDY_SEEDS=[0,1]"],
        cwd=project,
        env={**os.environ, "PATH": f"{env_bin}{os.pathsep}{os.environ['PATH']}"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = (project / "docs" / "study.md").read_text()
    assert table.startswith("# Study: every variant over seeds [0,1]\n")  # not "# Results", results.md's title
    for variant in VARIANTS:
        row = next(line for line in table.splitlines() if line.startswith(f"| {variant} |"))
        assert "±" in row and "(2 seeds)" in row
    assert "seed: 0\n" in (project / "params.yaml").read_text()  # the workspace keeps its own params


@pytest.fixture(scope="module")
def with_photos(tiny_project, tiny_dataset, tmp_path_factory) -> Path:
    """A copy of the project given an extra test set of left-hand photos in params.yaml; after `dvc repro`."""
    repo = copy_project(tiny_project, tmp_path_factory.mktemp("photos") / "repo")
    photos = write_labelled_photos(tiny_dataset, tmp_path_factory.mktemp("photos_in") / "photos", "left")
    convert(photos, photos / "labels.json", repo / "data" / "raw" / "photos", progress=False)
    text = (repo / "params.yaml").read_text()
    (repo / "params.yaml").write_text(text.replace("eval_sets: {}", "eval_sets: {photos: {path: data/raw/photos}}"))
    out = run(["dvc", "repro"], repo).stdout
    assert "Running stage 'eval_set@photos'" in out
    for variant in VARIANTS:  # only the new set's stages and the report run
        assert f"Stage 'train@{variant}' didn't change, skipping" in out
        assert f"Running stage 'evaluate_set@{variant}-photos'" in out
    return repo


def test_an_extra_test_set_is_scored_for_every_variant(with_photos):
    repo = with_photos
    summary = json.loads((repo / "metrics" / "summary.json").read_text())
    for variant in VARIANTS:
        metrics = json.loads((repo / "metrics" / "sets" / "photos" / f"{variant}.json").read_text())
        assert metrics["test_samples"] == IMAGES and metrics["pa_mpjpe_mm"] > 0
        assert summary[f"{variant}@photos"] == {"pose": metrics["pose_error_mm"], "pa": metrics["pa_mpjpe_mm"]}
    table = (repo / "metrics" / "summary.md").read_text()
    assert (
        "## Extra test sets" in table and f"`photos` ({IMAGES} images" in table and "| mean pose of the set |" in table
    )
    assert (repo / "plots" / "report" / "eval_sets.png").read_bytes()[:4] == b"\x89PNG"
    diff = json.loads(run(["dvc", "metrics", "diff", "--json"], repo).stdout)
    assert "metrics/sets/photos/m_cos_1.json" in diff and "metrics/summary.json" in diff
    assert "up to date" in run(["dvc", "repro"], repo).stdout.lower()
