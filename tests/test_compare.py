"""`make compare` on a tiny project: per variant its pose error and PA-MPJPE (metrics/summary.json) in a
fresh clone, where every row agrees, and after an experiment, beside the param that changed; nothing else.
The test runs the Makefile's own target, so the flags live in one place. Both projects are the session's
(conftest.py): tiny_project with its four variants (more than one, so each per-variant metric is named
with its file), and the copy of it after `dvc exp run -S loss.cos=5`."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .dvc_project import ROOT, environment, run

pytestmark = pytest.mark.slow  # reads the session's tiny project and its experiment, built by DVC

VARIANTS = {"baseline", "m_cos_1", "m_cos_2", "m_asm"}  # tiny_project's: params.yaml's own


def compare(repo: Path) -> tuple[list[str], list[list[str]]]:
    """`make compare` in `repo`: the table's column names and its rows (cells split on whitespace)."""
    result = subprocess.run(
        ["make", "-s", "-f", str(ROOT / "Makefile"), "compare", f"BIN={Path(sys.executable).parent}"],
        cwd=repo,
        env={**environment(), "COLUMNS": "1000"},  # wide: no column is cut (test_pipeline checks 200)
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip() and not line.strip().startswith("─")]
    return lines[0].split(), [line.replace("└──", "").replace("├──", "").split() for line in lines[1:]]


def summary_columns(repo: Path) -> list[str]:
    summary = json.loads((repo / "metrics" / "summary.json").read_text())
    assert set(VARIANTS) < set(summary)
    return [f"{name}.{metric}" for name, metrics in summary.items() for metric in ("pose", "pa")]


def assert_numbers(header: list[str], rows: list[list[str]], columns: list[str]) -> None:
    for row in rows:
        cells = dict(zip(header[1:], row[-(len(header) - 1) :]))  # the Experiment cell may hold spaces
        for column in columns:
            assert float(cells[column]) > 0, (column, row)


def test_a_fresh_clone_shows_every_variants_pose_error_and_pa_mpjpe(tiny_project, tmp_path):
    # One commit and no experiments: every column agrees between workspace and HEAD.
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(tiny_project), str(clone)], tmp_path)
    header, rows = compare(clone)
    columns = summary_columns(clone)
    assert header == ["Experiment", *columns]  # no params (none differ), no per-variant details, no deps
    assert len(rows) == 2  # workspace and HEAD
    assert_numbers(header, rows, columns)


def test_after_an_experiment_the_changed_param_joins_them(cos_experiment):
    project, _ = cos_experiment  # `dvc exp run -S loss.cos=5`: retrains m_cos_1 and m_cos_2 only
    header, rows = compare(project)
    columns = summary_columns(project)
    assert header == ["Experiment", *columns, "loss.cos"]  # not loss.pose: it did not change
    assert len(rows) == 3  # workspace, HEAD and the experiment
    assert_numbers(header, rows, columns)
    assert {row[-1] for row in rows} == {"5", "10"}
