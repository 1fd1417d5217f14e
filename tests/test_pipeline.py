"""End to end through DVC on a tiny configuration: repro, no-op repro, a targeted experiment, a typo."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TINY = {
    "data": {"n_synthetic": 40, "n_train": 24, "n_test": 8},
    "heatmap": {"size": 8},
    "model": {"input_size": 32, "features": 16, "mlp_width": 32},
    "train": {"epochs": 2},
}


def run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
    }
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A fresh repo holding this project's pipeline, with tiny params, after one `dvc repro`."""
    repo = tmp_path_factory.mktemp("repo")
    shutil.copy(ROOT / "dvc.yaml", repo)
    shutil.copytree(ROOT / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, values in TINY.items():
        params[section].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], repo)
    run(["git", "config", "user.name", "handpose tests"], repo)
    run(["git", "config", "user.email", "tests@handpose.invalid"], repo)
    run(["dvc", "init", "-q"], repo)
    shutil.copy(ROOT / ".dvc" / "config", repo / ".dvc" / "config")  # analytics off, the offline plots page
    run(["handpose", "plots-template", "--out", ".dvc/plots/offline.html"], repo)
    run(["dvc", "repro"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "tiny run"], repo)
    return repo


def test_repro_writes_every_variants_metrics_and_the_report(project):
    for variant in ("baseline", "m_cos_1", "m_cos_2", "m_asm"):
        metrics = json.loads((project / "metrics" / f"{variant}.json").read_text())
        assert metrics["pose_error_mm"] > 0 and metrics["pa_mpjpe_mm"] > 0
        assert set(metrics["by_visibility_mm"]) == {"visible", "self_occluded", "object_occluded"}
        assert len((project / "plots" / "train" / f"{variant}.csv").read_text().splitlines()) == 3
    summary = json.loads((project / "metrics" / "summary.json").read_text())
    assert set(summary) == {"mean pose", "baseline", "m_cos_1", "m_cos_2", "m_asm"}
    assert summary["m_asm"]["paper_pose_error_mm"] == 15.54
    assert "| m_cos_2 |" in (project / "metrics" / "summary.md").read_text()
    for png in ("convergence.png", "pose_error.png", "pck.png", "predictions.png"):
        assert (project / "plots" / "report" / png).read_bytes()[:4] == b"\x89PNG"


def test_second_repro_is_a_no_op(project):
    result = run(["dvc", "repro"], project)
    assert "up to date" in result.stdout.lower()
    assert "Running stage" not in result.stdout


def test_metrics_and_plots_are_visible_to_dvc(project):
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], project).stdout)
    text = json.dumps(shown)
    assert "pose_error_mm" in text and "summary.json" in text
    run(["dvc", "plots", "show", "-o", str(project / "html")], project)
    assert (project / "html" / "index.html").is_file()


def test_experiment_on_loss_cos_retrains_only_the_cos_variants(project):
    result = run(["dvc", "exp", "run", "-S", "loss.cos=5"], project)
    out = result.stdout
    for variant in ("m_cos_1", "m_cos_2"):
        assert f"Running stage 'train@{variant}'" in out
    for variant in ("baseline", "m_asm"):
        assert f"Running stage 'train@{variant}'" not in out
        assert f"Stage 'train@{variant}' didn't change, skipping" in out
    diff = json.loads(run(["dvc", "metrics", "diff", "--json"], project).stdout)
    changed = {path for path, values in diff.items() if values}
    assert "metrics/m_cos_1.json" in changed and "metrics/baseline.json" not in changed


@pytest.mark.parametrize("override, key", [("loss.coss=5", "loss.coss"), ("loss.cos=abc", "loss.cos")])
def test_a_typo_fails_at_once_naming_the_key(project, override, key):
    result = run(["dvc", "exp", "run", "-S", override], project, check=False)
    assert result.returncode != 0
    assert key in result.stdout + result.stderr


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (CI installs it: apt-get install chromium)")
def test_plots_page_draws_every_chart_offline(project, tmp_path):
    run(["dvc", "plots", "show", "-o", str(tmp_path / "page")], project)
    page = tmp_path / "page" / "index.html"
    html = page.read_text()
    assert "<script src=" not in html and "cdn.jsdelivr" not in html  # nothing to fetch
    charts = html.count("vegaEmbed(")
    assert charts >= 4
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
