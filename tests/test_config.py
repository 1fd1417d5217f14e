import copy
from pathlib import Path

import pytest
import yaml

from handpose.config import ConfigError, load_params, read_variant_config, validate
from handpose.configure import check_terms, configure, variant_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def raw():
    """params.yaml as read, before validation: the tests edit it like a user would."""
    return yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.fixture
def params():
    return load_params(ROOT / "params.yaml")


def test_default_params_are_valid_and_hold_the_paper_variants(params):
    assert params.variants == {
        "baseline": ["hm", "pose", "len", "dir"],
        "m_cos_1": ["hm", "pose", "len", "dir", "cos"],
        "m_cos_2": ["hm", "pose", "cos"],
        "m_asm": ["hm", "pose", "asm"],
    }
    assert params.loss == {"hm": 0.1, "pose": 1.0, "len": 0.01, "dir": 0.1, "cos": 10.0, "asm": 100.0}


def validate_all(raw: dict):
    """What `handpose configure` checks: the schema, then the registries of loss terms and backbones."""
    params = validate(raw)
    check_terms(params)
    variant_config(params, next(iter(params.variants)))  # the backbone's own settings
    return params


@pytest.mark.parametrize(
    "edit, key",
    [
        (lambda p: p["loss"].update(coss=5), "loss.coss"),
        (lambda p: p["loss"].update(cos="ten"), "loss.cos"),
        (lambda p: p["loss"].update(cos=True), "loss.cos"),
        (lambda p: p["loss"].update(pose=-1), "loss.pose"),
        (lambda p: p["variants"].update(m_new=["hm", "cosine"]), "variants.m_new"),
        (lambda p: p["variants"].update(m_new=[]), "variants.m_new"),
        (lambda p: p["train"].pop("epochs"), "train.epochs"),
        (lambda p: p["model"].update(uv="max"), "model.uv"),
        (lambda p: p["heatmap"].update(size=17), "heatmap.size"),
        (lambda p: p["model"].update(features=64), "model.features: unknown key"),
        (lambda p: p["model"]["hourglass"].update(features=2), "model.hourglass.features"),
        (lambda p: p["model"]["hourglass"].update(depht=2), "model.hourglass.depht: unknown key"),
        (lambda p: p["model"].update(backbone="resnet"), "model.backbone: no module 'resnet'"),
        (
            lambda p: p["model"].update(backbone="pose_net", pose_net={}),
            "model.backbone: handpose.model.pose_net is not a backbone",
        ),
        (lambda p: p["model"].pop("hourglass"), "model.hourglass: missing"),
        (lambda p: p["data"].update(source="kaggle"), "data.source: no module 'kaggle'"),
        (lambda p: p["variants"].update(m_new=["hm", "hm"]), "variants.m_new: a term is listed twice"),
        (lambda p: p["loss"].pop("cos"), "loss.cos: missing"),
        (lambda p: p.pop("asm"), "asm: missing"),
        (lambda p: p["asm"].update(k=0), "asm.k"),
        (lambda p: p["model"].update(dropout=[0.3, 1.5]), "model.dropout[1]"),
        (lambda p: p.update(trian={}), "trian"),
        (lambda p: p["data"].update(n_train=10**6), "data.n_train"),
        (lambda p: p["train"].update(seed=[1, 1]), "train.seed"),
        (lambda p: p["train"].update(seed=[1, "2"]), "train.seed[1]"),
        (lambda p: p["train"].update(seed=1.5), "train.seed"),
    ],
)
def test_bad_params_fail_naming_the_key(raw, edit, key):
    bad = copy.deepcopy(raw)
    edit(bad)
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        validate_all(bad)


def test_load_params_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("loss: [unclosed\n")
    with pytest.raises(ConfigError, match="params.yaml"):
        load_params(bad)


def test_variant_config_holds_only_its_own_terms(params):
    assert variant_config(params, "baseline").losses == {"hm": 0.1, "pose": 1.0, "len": 0.01, "dir": 0.1}
    assert variant_config(params, "m_cos_2").term_settings == {}
    assert variant_config(params, "m_asm").term_settings == {"asm": params.sections["asm"]}
    with pytest.raises(ConfigError, match="variants.nope"):
        variant_config(params, "nope")


def test_changing_cos_rewrites_only_the_cos_variants(params, raw, tmp_path):
    before = {p.stem: p.read_bytes() for p in configure(params, tmp_path / "a")}
    changed = copy.deepcopy(raw)
    changed["loss"]["cos"] = 5
    after = {p.stem: p.read_bytes() for p in configure(validate(changed), tmp_path / "b")}
    assert {v for v in before if before[v] != after[v]} == {"m_cos_1", "m_cos_2"}


def test_settings_of_an_unused_backbone_leave_every_config_as_it_is(params, raw, tmp_path):
    before = {p.stem: p.read_bytes() for p in configure(params, tmp_path / "a")}
    raw["model"]["other"] = {"width": 3}  # another backbone's settings, kept for later
    after = {p.stem: p.read_bytes() for p in configure(validate(raw), tmp_path / "b")}
    assert before == after


def test_params_yaml_round_trips(params, tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params.model_dump()))
    assert load_params(path) == params


def test_variant_train_overrides_only_that_variant(raw):
    raw["variant_train"] = {"m_asm": {"batch_size": 25}}
    params = validate(raw)
    assert variant_config(params, "m_asm").train.batch_size == 25
    assert variant_config(params, "baseline").train.batch_size == params.train.batch_size


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"m_nope": {"batch_size": 25}}, "variant_train.m_nope"),
        ({"m_asm": {"batchsize": 25}}, "variant_train.m_asm.batchsize"),
        ({"m_asm": {"batch_size": "25"}}, "variant_train.m_asm.batch_size"),
        ({"m_asm": {"lr": 0}}, "variant_train.m_asm.lr"),
    ],
)
def test_bad_variant_train_names_the_key(raw, overrides, key):
    raw["variant_train"] = overrides
    with pytest.raises(ConfigError, match=key):
        validate(raw)


def test_a_number_dvc_writes_as_1e_05_is_a_number(raw):
    # `dvc exp run -S train.lr=1e-5` writes `1e-05`, which YAML 1.1 reads as a string.
    raw["train"]["lr"] = yaml.safe_load("lr: 1e-05")["lr"]
    assert validate(raw).train.lr == 1e-5


def test_derived_values_are_derived(params):
    assert params.model.heatmap_size == params.model.input_size // 4
    assert params.train.seed == [0]  # one seed or a list: always a list once read


def test_read_variant_config_round_trips_and_names_a_bad_file(params, tmp_path):
    for path in configure(params, tmp_path / "configs"):
        assert read_variant_config(path) == variant_config(params, path.stem)
    bad = tmp_path / "bad.json"
    bad.write_text('{"variant": "x"}')
    with pytest.raises(ConfigError, match="bad.json"):
        read_variant_config(bad)
