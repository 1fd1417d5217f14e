"""The research moves, done as a user would in a copy of the project, and run through DVC:
- a new loss term is two edits (a function in losses.py; its weight, and a variant using it, in params.yaml),
  and is trained, logged in every per-epoch log and charted by `dvc plots show` with no other edit;
- a new backbone is one module in src/handpose/model/, chosen with `dvc exp run -S model.backbone=...`."""

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from handpose.checkpoints import load_checkpoint
from handpose.training_log import read_curves

from .conftest import copy_project
from .dvc_project import run

pytestmark = pytest.mark.slow  # two DVC runs of a tiny project

# Edit 1 of 2: the new term, appended to losses.py exactly as the README shows.
TIP_TERM = """

TIPS = [4, 8, 12, 16, 20]  # the fingertips (skeleton.FINGER_JOINTS' last joints)


@term("tip", "sum over fingertips ||phi_j - phi_hat_j||^2")
def tip_loss(b: Batch) -> torch.Tensor:
    return ((b.pose[:, TIPS] - b.true_pose[:, TIPS]) ** 2).sum((1, 2)).mean()
"""

# The whole of a second backbone: one module, its settings and a builder.
TINY_BACKBONE = '''"""A one-convolution backbone: proves that a backbone is one module."""

from pydantic import BaseModel, ConfigDict
from torch import nn


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channels: int = 8


class Tiny(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.body = nn.Sequential(nn.Conv2d(3, channels, 5, stride=4, padding=2), nn.BatchNorm2d(channels), nn.ReLU())
        self.head = nn.Conv2d(channels, 21, 1)

    def forward(self, image):
        features = self.body(image)
        return [self.head(features)], features


def build(settings: Settings, input_size: int) -> Tiny:
    return Tiny(settings.channels)
'''

VARIANTS = {"m_cos_2": ["hm", "pose", "cos"], "m_tip": ["hm", "pose", "tip"]}


@pytest.fixture(scope="module")
def project(tiny_project, tmp_path_factory) -> Path:
    """A tiny project (a copy of the session's tiny_project, committed after `dvc repro`) given the new term
    (two edits) and run with `dvc repro`; then the new backbone (one new file) run as an experiment."""
    repo = copy_project(tiny_project, tmp_path_factory.mktemp("extend") / "repo")
    losses = repo / "src" / "handpose" / "losses.py"
    losses.write_text(losses.read_text() + TIP_TERM)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["loss"]["tip"] = 1.0  # edit 2, with the variant m_tip in the same file
    params["variants"] = VARIANTS  # m_tip beside one of the four it had: two trainings a run, not five
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["dvc", "repro"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "a new loss term"], repo)
    return repo


def test_a_new_loss_term_is_trained_logged_in_every_log_and_charted(project):
    params = yaml.safe_load((project / "params.yaml").read_text())
    for variant in VARIANTS:
        log = read_curves(project / "plots" / "train" / variant, "seed0")
        assert "loss_tip" in log and (log["loss_tip"] > 0).all(), variant  # logged by every variant
        # The logged total is the weighted sum of the variant's own terms, each a mean over the same steps:
        # equal up to float32 rounding over a handful of additions (relative 1e-5 is 100x float32's eps).
        weighted = sum(params["loss"][t] * log[f"loss_{t}"] for t in VARIANTS[variant])
        pd.testing.assert_series_equal(log["loss"], weighted, check_names=False, rtol=1e-5)
    shown = json.loads(run(["dvc", "plots", "show", "--json"], project).stdout)["data"]
    (chart,) = [c for name, c in shown.items() if name.startswith("Loss terms per epoch")]
    series = {row["series"] for row in chart[0]["content"]["data"]["values"]}
    assert {"loss", "loss_hm", "loss_pose", "loss_cos", "loss_tip"} <= series


def test_a_new_backbone_is_one_module_chosen_by_name(project):
    (project / "src" / "handpose" / "model" / "tiny.py").write_text(TINY_BACKBONE)
    run(["dvc", "exp", "run", "-S", "model.backbone=tiny", "-S", "+model.tiny.channels=8"], project)
    checkpoint = load_checkpoint(project / "models" / "m_tip" / "seed0.pt")
    assert checkpoint["config"].model.backbone == "tiny"
    assert checkpoint["model"]["backbone.body.0.weight"].shape == torch.Size([8, 3, 5, 5])
    pretrained = torch.load(project / "models" / "pretrain.pt", weights_only=True)
    assert pretrained["fits"]["backbone"] == "tiny" and "body.0.weight" in pretrained["weights"]
    for variant in VARIANTS:
        metrics = json.loads((project / "metrics" / f"{variant}.json").read_text())
        assert metrics["pose_error_mm"] > 0 and metrics["epochs"] == 2
    status = run(["dvc", "status"], project).stdout
    assert "changed" not in status  # the experiment ran every stage the new backbone touches
