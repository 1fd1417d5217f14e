"""Beyond one workspace, with DVC's own engines: a queued grid run two at a time, and data, models and
experiments shared through a local-directory DVC remote and a local bare git repository."""

import json
import time
from pathlib import Path

import pytest

from .conftest import copy_project
from .dvc_project import run

pytestmark = pytest.mark.slow  # a DVC queue, remotes and experiments


@pytest.fixture(scope="module")
def project(tiny_project, tmp_path_factory) -> Path:
    """A committed tiny project after `dvc repro` (a copy of the session's tiny_project), its outputs pushed
    to a local DVC remote, and its git history pushed to a local bare repository (`origin`)."""
    base = tmp_path_factory.mktemp("sharing")
    repo = copy_project(tiny_project, base / "repo")
    run(["dvc", "remote", "add", "-d", "shared", str(base / "dvc-remote")], repo)
    run(["git", "commit", "-qam", "a shared DVC remote"], repo)
    run(["git", "init", "-q", "--bare", str(base / "origin.git")], repo)
    run(["git", "remote", "add", "origin", str(base / "origin.git")], repo)
    run(["git", "push", "-q", "origin", "HEAD:main"], repo)
    run(["dvc", "push", "-q"], repo)
    return repo


def experiments(repo: Path) -> dict[str, dict]:
    """`dvc exp show --json`: experiment name -> its metrics/summary.json."""
    found = {}
    for commit in json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout):
        for exp in commit.get("experiments") or []:
            for rev in exp["revs"]:
                data = rev.get("data") or {}
                metrics = (data.get("metrics") or {}).get("metrics/summary.json", {}).get("data")
                if rev.get("name") and metrics:
                    found[rev["name"]] = metrics
    return found


@pytest.fixture(scope="module")
def grid(project) -> Path:
    """`project` after a grid over loss.asm (50 and 200) was queued and run two at a time (`dvc queue start
    -j 2`): experiments asm50 and asm200, each retraining m_asm, the one variant that weighs L_asm (TINY
    trains on one thread, so the two run side by side on a 2-core machine, not four threads)."""
    for weight in (50, 200):
        run(["dvc", "exp", "run", "--queue", "--name", f"asm{weight}", "-S", f"loss.asm={weight}"], project)
    run(["dvc", "queue", "start", "-j", "2"], project)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status = run(["dvc", "queue", "status"], project).stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(2)
    assert "Failed" not in status, run(["dvc", "queue", "logs", "asm50"], project, check=False).stdout
    return project


def test_a_queued_grid_runs_two_at_a_time_and_dvc_exp_show_compares_it(grid):
    shown = experiments(grid)
    assert {"asm50", "asm200"} <= set(shown), shown
    assert shown["asm50"]["m_asm"] != shown["asm200"]["m_asm"]  # the grid's axis changed the result
    for variant in ("baseline", "m_cos_1", "m_cos_2"):  # and nothing else
        assert shown["asm50"][variant] == shown["asm200"][variant], variant


def test_a_second_machine_pulls_the_data_and_models_and_has_nothing_to_rerun(project, tmp_path):
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", "-b", "main", str(project.parent / "origin.git"), str(clone)], tmp_path)
    run(["dvc", "pull", "-q"], clone)
    pulled = ["models/m_cos_2/seed0.pt", "models/pretrain.pt", "data/split/train_images.npy", "predictions/m_cos_2.npz"]
    for path in pulled:
        assert (clone / path).read_bytes() == (project / path).read_bytes(), path
    result = run(["dvc", "repro"], clone)
    assert "Running stage" not in result.stdout and "up to date" in result.stdout.lower()
    assert run(["dvc", "status"], clone).stdout.strip().endswith("Data and pipelines are up to date.")


def test_an_experiment_crosses_machines_with_exp_push_and_pull(grid, tmp_path):
    project = grid  # its experiment asm50, run by the queue
    run(["dvc", "exp", "push", "origin", "asm50"], project)  # its git ref to origin, its outputs to the DVC remote
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", "-b", "main", str(project.parent / "origin.git"), str(clone)], tmp_path)
    run(["dvc", "exp", "pull", "origin", "asm50"], clone)
    assert set(experiments(clone)) == {"asm50"}  # the one pushed, not asm200
    assert experiments(clone)["asm50"] == experiments(project)["asm50"]
    run(["dvc", "exp", "apply", "asm50"], clone)
    run(["dvc", "checkout", "-q"], clone)
    model = "models/m_asm/seed0.pt"
    assert (clone / model).read_bytes() != (project / model).read_bytes()  # the clone holds asm50's model
    run(["dvc", "exp", "apply", "asm50"], project)
    assert (clone / model).read_bytes() == (project / model).read_bytes()
    assert (clone / "metrics" / "m_asm.json").read_text() == (project / "metrics" / "m_asm.json").read_text()
