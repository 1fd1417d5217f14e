"""Same inputs, same bytes: a tiny training run twice, in separate processes, writes identical files."""

import json
import subprocess
import sys
from pathlib import Path

from handpose.heatmap_targets import write_heatmaps

from .conftest import folder_bytes, tiny_config


def train_in_a_process(config: Path, split: Path, heatmaps: Path, out: Path) -> None:
    handpose = Path(sys.executable).parent / "handpose"
    subprocess.run(
        [
            str(handpose),
            "train",
            "--config",
            str(config),
            "--split",
            str(split),
            "--heatmaps",
            str(heatmaps),
            "--models",
            str(out / "models"),
            "--live",
            str(out / "live"),
            "--timings",
            str(out / "timings.json"),
            "--quiet",
        ],
        check=True,
        capture_output=True,
    )


def test_two_processes_write_identical_models_and_logs(tiny_split, tmp_path):
    config = tmp_path / "m_asm.json"
    config.write_text(json.dumps(tiny_config("m_asm", epochs=2).model_dump()))
    write_heatmaps(tiny_split["train"], tmp_path / "heatmaps", size=8, sigma=1.0)
    for run in ("a", "b"):
        train_in_a_process(config, tiny_split["dir"], tmp_path / "heatmaps", tmp_path / run)
    assert (tmp_path / "a/models/seed0.pt").read_bytes() == (tmp_path / "b/models/seed0.pt").read_bytes()
    assert folder_bytes(tmp_path / "a/live") == folder_bytes(tmp_path / "b/live")  # no timestamps in the curves
    assert folder_bytes(tmp_path / "a/live")  # ... and there are curves
    # The wall times differ from run to run; that is why they live outside the results.
    assert (tmp_path / "a" / "timings.json").is_file()
