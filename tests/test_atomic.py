"""Outputs appear whole or not at all, and their temporaries never show up in git."""

import shutil
import subprocess

import pytest

from handpose.atomic import atomic_path, write_text

from .dvc_project import ROOT


def test_a_failed_write_leaves_neither_output_nor_temporary(tmp_path):
    target = tmp_path / "metrics" / "m.json"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("{half")
        raise RuntimeError("killed mid-write")
    assert list(target.parent.iterdir()) == []
    write_text(target, "{}")
    assert target.read_text() == "{}" and [p.name for p in target.parent.iterdir()] == ["m.json"]


@pytest.mark.parametrize("output", ["metrics/m_cos_2.json", "models/m_asm/seed0.pt", "data/split"])
def test_temporaries_are_ignored_by_git(output):
    scratch = ROOT / "tests" / "atomic-scratch"  # in the repo, where nothing else ignores it
    try:
        with atomic_path(scratch / output) as tmp:
            tmp.write_text("being written")
            ignored = subprocess.run(["git", "check-ignore", "-q", str(tmp.relative_to(ROOT))], cwd=ROOT)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    assert ignored.returncode == 0, f"{tmp.name} would show up in `git status`"
