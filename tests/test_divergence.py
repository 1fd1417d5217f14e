"""A diverged run is named and never passes as a result; evaluate and predict refuse a checkpoint that
is unfinished, holds non-finite weights, or was trained for another input size."""

import json

import pytest
import torch

from handpose import train as train_module
from handpose.checkpoints import load_checkpoint
from handpose.cli import main
from handpose.data import layout
from handpose.data.split import write_split
from handpose.evaluate import evaluate
from handpose.heatmap_targets import write_heatmaps
from handpose.step import DivergenceCheck, TrainingDiverged

from .conftest import data_config, tiny_config, train_tiny


def diverging_config(**train):
    config = tiny_config("m_cos_2", epochs=2)
    return config.model_copy(update={"train": config.train.model_copy(update={"lr": 1e6, **train})})


def test_a_non_finite_loss_stops_training_naming_variant_seed_epoch_step_and_term(tiny_split, tmp_path):
    with pytest.raises(train_module.TrainingDiverged) as caught:
        train_tiny(diverging_config(), tiny_split, tmp_path / "m.pt", progress=False)
    message = str(caught.value)
    assert message.startswith("m_cos_2 seed 0: training diverged at epoch ") and ", step " in message
    assert "loss" in message and ("nan" in message or "inf" in message), message
    assert "\n" not in message
    if (tmp_path / "m.pt").exists():  # an epoch finished before it diverged: kept, but marked unfinished
        assert load_checkpoint(tmp_path / "m.pt")["epoch"] + 1 < 2


def test_the_train_command_fails_in_one_line_and_leaves_no_curves(tiny_split, tmp_path, capsys):
    config = tmp_path / "m_cos_2.json"
    config.write_text(json.dumps(diverging_config().model_dump()))
    write_heatmaps(tiny_split["train"], tmp_path / "heatmaps", size=8, sigma=1.0)
    args = ["train", "--config", str(config), "--split", str(tiny_split["dir"]), "--heatmaps"]
    args += [str(tmp_path / "heatmaps"), "--models", str(tmp_path / "models"), "--live", str(tmp_path / "live")]
    (tmp_path / "live").mkdir()
    (tmp_path / "live" / "metrics.json").write_text('{"seed0": {"epoch": 9}}')  # an older run's
    assert main([*args, "--timings", str(tmp_path / "t.json"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("handpose train: error: m_cos_2 seed 0: training diverged") and "\n" not in err
    assert not (tmp_path / "live").exists()  # neither the older run's curves nor this one's pass for a result


@pytest.fixture(scope="module")
def trained(tiny_split, tmp_path_factory):
    """A finished 2-epoch tiny model: models/seed0.pt."""
    root = tmp_path_factory.mktemp("trained")
    model_path = root / "models" / "seed0.pt"
    train_tiny(tiny_config("m_cos_2", epochs=2), tiny_split, model_path, progress=False)
    return model_path


def altered(trained, tmp_path, change) -> torch.nn.Module:
    checkpoint = torch.load(trained, weights_only=True)
    change(checkpoint)
    path = tmp_path / "models" / "seed0.pt"
    path.parent.mkdir()
    torch.save(checkpoint, path)
    return path


def unfinished(checkpoint):
    checkpoint["epoch"], checkpoint["log"] = 0, checkpoint["log"][:1]  # as after its first epoch


def non_finite(checkpoint):
    checkpoint["model"]["mlp.0.weight"][0, 0] = float("nan")


@pytest.mark.parametrize(
    "change, reason",
    [
        (unfinished, r"training did not finish \(1 of 2 epochs\)"),
        (non_finite, r"1 of \d+ weight tensors hold NaN or inf \(first: mlp\.0\.weight\)"),
    ],
)
def test_evaluate_and_predict_refuse_a_checkpoint_that_is_no_result(
    trained, tiny_split, tiny_dataset, tmp_path, capsys, change, reason
):
    path = altered(trained, tmp_path, change)
    with pytest.raises(ValueError, match=f"seed0.pt: {reason}"):
        evaluate(path.parent, tiny_split["dir"], tiny_dataset, tmp_path / "m.json", tmp_path / "p.npz", tmp_path / "t")
    assert not (tmp_path / "m.json").exists() and not (tmp_path / "p.npz").exists()
    assert main(["predict", str(layout.rgb_path(tiny_dataset, 0)), "--model", str(path)]) == 2
    assert "seed0.pt: " in capsys.readouterr().err


def test_evaluate_refuses_a_split_of_another_input_size(trained, tiny_dataset, tmp_path):
    config = data_config(n_synthetic=40, n_train=24, n_test=8)
    write_split(tiny_dataset, tmp_path / "split64", config, input_size=64, progress=False)
    with pytest.raises(ValueError, match=r"seed0.pt: trained on 32 px inputs, but .*split64 holds 64 px images"):
        evaluate(
            trained.parent, tmp_path / "split64", tiny_dataset, tmp_path / "m.json", tmp_path / "p.npz", tmp_path / "t"
        )
    assert not (tmp_path / "m.json").exists()


def test_weights_that_do_not_fit_their_config_are_refused_naming_the_file(trained, tiny_dataset, tmp_path):
    path = altered(trained, tmp_path, lambda c: c["config"]["model"].update(input_size=64))
    assert main(["predict", str(layout.rgb_path(tiny_dataset, 0)), "--model", str(path)]) == 2


def test_a_deferred_check_names_the_first_diverged_step_and_its_terms_only_when_confirmed():
    """The GPU's way (no host sync per step), run on the CPU: nothing is raised at the step itself, and
    confirm() names the first bad step and the terms that were bad there, not later ones."""
    where = lambda at: f"run: diverged at step {at + 1}"  # noqa: E731
    check = DivergenceCheck(where, "lower the lr", torch.device("cpu"), deferred=True)
    one, nan = torch.tensor(1.0), torch.tensor(float("nan"))
    check.observe(0, one, {"hm": one, "pose": one})
    check.confirm()
    check.observe(1, nan, {"hm": one, "pose": nan})  # the first bad step: pose alone
    check.observe(2, nan, {"hm": nan, "pose": nan})
    with pytest.raises(TrainingDiverged, match=r"^run: diverged at step 2: loss_pose not finite; lower the lr$"):
        check.confirm()


def test_an_immediate_check_raises_at_the_step_with_the_bad_values():
    check = DivergenceCheck(lambda at: f"run: diverged at step {at + 1}", "lower the lr", torch.device("cpu"))
    check.observe(0, torch.tensor(1.0), {"hm": torch.tensor(1.0)})
    with pytest.raises(TrainingDiverged, match=r"^run: diverged at step 2: loss_hm = inf; lower the lr$"):
        check.observe(1, torch.tensor(float("inf")), {"hm": torch.tensor(float("inf"))})
