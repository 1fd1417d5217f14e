"""The `pretrain` stage: its hands are the renderer's own (what the split stage would decode), distinct
from the dataset's, and every variant's backbone starts from its weights, which must fit the model."""

import json

import numpy as np
import pytest
import torch
import yaml

from handpose.checkpoints import load_pretrained
from handpose.config import ConfigError, validate
from handpose.data.freihand import open_freihand
from handpose.data.images import to_input_size
from handpose.data.synthetic.arrays import render_arrays
from handpose.model import build_backbone
from handpose.model.pose_net import build_model, to_input
from handpose.pretrain import WeightAverage, pretrain
from handpose.step import FlatRMSprop
from handpose.training_log import read_curves

from .conftest import ROOT, tiny_config


def tiny_params(**pretrain):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["model"].update(input_size=32, mlp_width=32, hourglass={"features": 16, "stacks": 2, "depth": 4})
    raw["pretrain"].update(pretrain)
    return validate(raw)


def test_rendered_arrays_are_the_pixels_the_split_stage_decodes_from_the_dataset(tiny_dataset):
    data = open_freihand(tiny_dataset)  # written with seed 0
    hands = render_arrays(6, seed=0, size=32, workers=1, progress=False)
    for i in range(6):
        assert np.array_equal(hands["images"][i], to_input_size(data.read_rgb(i), 32)), i
    np.testing.assert_array_equal(hands["xyz"], data.xyz[:6])
    np.testing.assert_array_equal(hands["K"], data.K[:6])


def test_rendered_arrays_do_not_depend_on_the_worker_count_and_differ_by_seed():
    one = render_arrays(8, seed=1, size=32, workers=1, progress=False)
    two = render_arrays(8, seed=1, size=32, workers=2, progress=False)
    other = render_arrays(8, seed=2, size=32, workers=1, progress=False)
    for key in one:
        assert np.array_equal(one[key], two[key]), key
    assert not np.array_equal(one["xyz"], other["xyz"])


def test_pretraining_writes_backbone_weights_that_every_variant_loads(tmp_path):
    params = tiny_params(n_hands=16, passes=2, batch_size=8)
    pretrain(params, tmp_path / "pretrain.pt", tmp_path / "live", tmp_path / "t.json", progress=False)
    log = read_curves(tmp_path / "live")
    assert log.columns.tolist() == ["step", "held_out_uv_error_px", "loss_hm", "lr", "samples_seen"]
    assert log["step"].tolist() == [1, 2, 3, 4] and log["samples_seen"].tolist() == [8, 16, 24, 32]  # 2 x 2 steps
    # The lr decays along a cosine from pretrain.lr at the first step towards 0 after the last.
    lr = params.pretrain.lr
    np.testing.assert_allclose(log["lr"], [lr, lr * (2 + 2**0.5) / 4, lr / 2, lr * (2 - 2**0.5) / 4], rtol=1e-6)
    assert np.isfinite(log["held_out_uv_error_px"]).all()
    summary = json.loads((tmp_path / "live" / "metrics.json").read_text())  # what `dvc exp show` reads
    assert summary["step"] == 4 and summary["held_out_uv_error_px"] == log["held_out_uv_error_px"].iloc[-1]
    weights = load_pretrained(tmp_path / "pretrain.pt", params.model)
    model = build_model(tiny_config("m_cos_2").model, 224)
    fresh = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    model.backbone.load_state_dict(weights)  # strict: every key and shape fits
    changed = [k for k, v in model.backbone.state_dict().items() if not torch.equal(v, fresh[k])]
    assert changed and all(k in weights for k in changed)


def test_the_saved_weights_are_the_mean_of_the_late_ones_with_batchnorm_re_estimated():
    torch.manual_seed(0)
    backbone = build_backbone(tiny_params().model)
    optimizer = FlatRMSprop(backbone, lr=1e-3)
    weights = optimizer.param_groups[0]["params"][0]
    average, seen = WeightAverage(optimizer, start=2), []
    for step in range(5):  # a stand-in for five training steps
        with torch.no_grad():
            weights.add_(0.01 * torch.randn_like(weights))
        seen.append(weights.detach().clone())
        average.update(step)
    images = np.random.default_rng(0).integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    average.apply(backbone, images, channels_last=False, bf16=False)
    torch.testing.assert_close(weights.detach(), torch.stack(seen[2:]).mean(0))
    # BatchNorm's running statistics are now those of the averaged weights on the images: the first
    # norm's, of the stem's convolution (two batches of 32: the mean of their means is the overall one).
    with torch.no_grad():
        stem = backbone.stem[0](to_input(torch.from_numpy(images)))
    torch.testing.assert_close(backbone.stem[1].body[0].running_mean, stem.mean((0, 2, 3)), rtol=1e-4, atol=1e-5)


def test_pretrained_weights_for_another_backbone_are_refused_naming_the_setting(tmp_path):
    pretrain(tiny_params(n_hands=8, batch_size=8), tmp_path / "p.pt", tmp_path / "live", tmp_path / "t", progress=False)
    raw = tiny_params().model.model_dump()
    other = type(tiny_params().model).model_validate({**raw, "hourglass": {**raw["hourglass"], "features": 32}})
    with pytest.raises(
        ValueError, match=r"p\.pt: pretrained for another backbone \(model\.hourglass\.features 16 there"
    ):
        load_pretrained(tmp_path / "p.pt", other)


def test_no_pretraining_means_no_weights(tmp_path):
    params = tiny_params(n_hands=0)
    pretrain(params, tmp_path / "p.pt", tmp_path / "live", tmp_path / "t", progress=False)
    assert load_pretrained(tmp_path / "p.pt", params.model) is None
    # What dvc.yaml declares exists, and holds no curves.
    assert (tmp_path / "live" / "plots").is_dir() and not list((tmp_path / "live" / "plots").rglob("*.tsv"))
    assert (tmp_path / "live" / "metrics.json").is_file()


def test_pretraining_hands_must_not_be_the_datasets_own():
    with pytest.raises(ConfigError, match=r"pretrain\.seed: must differ from data\.seed \(0\)"):
        tiny_params(seed=0)
    assert tiny_params(seed=0, n_hands=0).pretrain.n_hands == 0  # no hands rendered: nothing to collide


def test_a_diverging_pretraining_stops_naming_the_step_and_writes_nothing(tmp_path):
    params = tiny_params(n_hands=16, passes=2, batch_size=8, lr=1e9)
    with pytest.raises(
        ValueError, match=r"pretrain: training diverged at step \d+/4: loss_hm = (nan|inf); lower pretrain\.lr"
    ):
        pretrain(params, tmp_path / "p.pt", tmp_path / "live", tmp_path / "t.json", progress=False)
    assert list(tmp_path.iterdir()) == []
