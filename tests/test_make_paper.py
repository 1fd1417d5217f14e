"""`make paper` runs the paper's configuration: its -S overrides are valid params and say what the paper did."""

import re
import shlex

import yaml

from handpose.config import validate

from .dvc_project import ROOT


def paper_overrides() -> dict[str, str]:
    makefile = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    line = re.search(r"^PAPER_PARAMS := (.*)$", makefile, re.M).group(1)
    words = shlex.split(line)
    assert words[::2] == ["-S"] * (len(words) // 2)
    return dict(word.split("=", 1) for word in words[1::2])


def test_make_paper_sets_valid_params_with_the_papers_values():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for key, value in paper_overrides().items():
        *sections, leaf = key.lstrip("+").split(".")
        node = raw
        for section in sections:
            node = node.setdefault(section, {})
        node[leaf] = yaml.safe_load(value)
    params = validate(raw)
    assert (params.data.source, params.data.split, params.data.versions) == ("freihand", "paper", [0])
    assert (params.data.n_train, params.data.n_test, params.train.epochs) == (3200, 200, 100)
    assert (params.model.input_size, params.model.backbone_settings["features"], params.model.uv) == (
        256,
        256,
        "argmax",
    )
    assert params.train.lr == 1e-4 and params.pretrain.n_hands == 0
    assert params.train_of("m_asm").batch_size == 25 and params.train_of("baseline").batch_size == 8
    assert params.evaluate.views == [(0, 1)]  # each test image seen once
