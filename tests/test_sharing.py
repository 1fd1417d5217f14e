"""Beyond one workspace, with DVC's own engines: a queued grid run two at a time, and data, models and
experiments shared through a local-directory DVC remote and a local bare git repository."""

import json
import time
from pathlib import Path

import pytest

from .dvc_project import new_project, run

# Two variants keep this quick; m_cos_2 is the one a grid over loss.cos retrains.
VARIANTS = {"baseline": ["hm", "pose", "len", "dir"], "m_cos_2": ["hm", "pose", "cos"]}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A committed tiny project after `dvc repro`, its outputs pushed to a local DVC remote, and its git
    history pushed to a local bare repository (`origin`)."""
    base = tmp_path_factory.mktemp("sharing")
    repo = new_project(base / "repo", {"variants": VARIANTS})
    run(["dvc", "remote", "add", "-d", "shared", str(base / "dvc-remote")], repo)
    run(["dvc", "repro"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "tiny run"], repo)
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


def test_a_queued_grid_runs_two_at_a_time_and_dvc_exp_show_compares_it(project):
    for cos in (2, 20):  # one thread each: two trainings on a 2-core machine, not four threads
        overrides = ["-S", f"loss.cos={cos}", "-S", "train.threads=1"]
        run(["dvc", "exp", "run", "--queue", "--name", f"cos{cos}", *overrides], project)
    run(["dvc", "queue", "start", "-j", "2"], project)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status = run(["dvc", "queue", "status"], project).stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(2)
    assert "Failed" not in status, run(["dvc", "queue", "logs", "cos2"], project, check=False).stdout
    shown = experiments(project)
    assert {"cos2", "cos20"} <= set(shown), shown
    assert shown["cos2"]["m_cos_2"] != shown["cos20"]["m_cos_2"]  # the grid's axis changed the result
    assert shown["cos2"]["baseline"] == shown["cos20"]["baseline"]  # and nothing else


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


def test_an_experiment_crosses_machines_with_exp_push_and_pull(project, tmp_path):
    run(["dvc", "exp", "run", "--name", "cos5", "-S", "loss.cos=5"], project)
    run(["dvc", "exp", "push", "origin", "cos5"], project)  # its git ref to origin, its outputs to the DVC remote
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", "-b", "main", str(project.parent / "origin.git"), str(clone)], tmp_path)
    run(["dvc", "exp", "pull", "origin", "cos5"], clone)
    assert experiments(clone)["cos5"] == experiments(project)["cos5"]
    run(["dvc", "exp", "apply", "cos5"], clone)
    run(["dvc", "checkout", "-q"], clone)
    model = "models/m_cos_2/seed0.pt"
    run(["dvc", "exp", "apply", "cos5"], project)
    assert (clone / model).read_bytes() == (project / model).read_bytes()
    assert (clone / "metrics" / "m_cos_2.json").read_text() == (project / "metrics" / "m_cos_2.json").read_text()
