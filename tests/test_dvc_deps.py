"""dvc.yaml's code deps are exactly the package modules each stage runs, found from the imports
(tools/dvc_deps.py, which `make dvc-deps` runs to rewrite them), and the committed file is current."""

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "handpose"
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def load(path: Path):
    """tools/dvc_deps.py as a module (tools/ is not a package); its ROOT is the folder above it."""
    spec = importlib.util.spec_from_file_location(f"dvc_deps_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


dvc_deps = load(ROOT / "tools" / "dvc_deps.py")


def declared_code(deps: list) -> set[Path]:
    files = set()
    for dep in deps:
        path = ROOT / (dep if isinstance(dep, str) else next(iter(dep)))
        if path.is_relative_to(PACKAGE):
            found = sorted(path.rglob("*.py")) if path.is_dir() else [path]
            files |= {f for f in found if f.read_text().strip()}
    return files


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_deps_are_exactly_the_code_it_runs(stage):
    spec = STAGES[stage].get("do", STAGES[stage])
    runs, _ = dvc_deps.stage_code(dvc_deps.stage_command(spec))
    declared = declared_code(spec.get("deps", []))
    rel = lambda files: sorted(str(f.relative_to(ROOT)) for f in files)  # noqa: E731
    assert not runs - declared, f"{stage}: dvc.yaml misses deps on {rel(runs - declared)}; run `make dvc-deps`"
    assert not declared - runs, f"{stage}: dvc.yaml lists deps it does not run: {rel(declared - runs)}"


def test_the_committed_dvc_yaml_is_what_make_dvc_deps_writes():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "dvc_deps.py"), "--check"], capture_output=True)
    assert result.returncode == 0, result.stderr.decode()


def test_the_import_scan_sees_function_level_imports():
    # cmd_train imports the training loop inside the function; it must be found, with what it imports.
    train_code, _ = dvc_deps.stage_code("train")
    assert PACKAGE / "train.py" in train_code and PACKAGE / "losses.py" in train_code
    assert PACKAGE / "report.py" not in train_code


def test_a_new_import_is_a_new_dep_and_only_the_stages_that_run_it_change(tmp_path):
    # In a copy of the package, split's code gains an import of the training step: the generated file adds
    # it to split's deps, and pretrain's (whose code split is not) stay as they are.
    shutil.copytree(ROOT / "src", tmp_path / "src")
    shutil.copytree(ROOT / "tools", tmp_path / "tools")
    split = tmp_path / "src" / "handpose" / "data" / "split.py"
    split.write_text(split.read_text() + "\nfrom handpose import step  # noqa: E402, F401\n")
    copy = load(tmp_path / "tools" / "dvc_deps.py")
    stages = yaml.safe_load(copy.generated((ROOT / "dvc.yaml").read_text()))["stages"]
    assert "src/handpose/step.py" in stages["split"]["deps"] and "src/handpose/step.py" not in STAGES["split"]["deps"]
    assert stages["pretrain"]["deps"] == STAGES["pretrain"]["deps"]
