"""params.yaml -> validated config; resolves one variant's effective losses.

Every stage loads params.yaml through `load_params`, so a typo fails at once with the key's name.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml

LOSS_TERMS: tuple[str, ...] = ("hm", "pose", "len", "dir", "cos", "asm")

# The schema: every section, every key, and the type its value must have.
_NUMBER = (int, float)
SCHEMA: dict[str, dict[str, Any]] = {
    "data": {"source": str, "n_synthetic": int, "n_train": int, "n_test": int, "seed": int},
    "heatmap": {"size": int, "sigma": _NUMBER},
    "model": {
        "input_size": int,
        "features": int,
        "stacks": int,
        "hourglass_depth": int,
        "mlp_depth": int,
        "mlp_width": int,
        "dropout": list,
        "uv": str,
    },
    "train": {
        "epochs": int,
        "batch_size": int,
        "lr": _NUMBER,
        "lr_drop_at": _NUMBER,
        "seed": (int, list),  # one seed, or a list: one model per seed, results as mean +- sd
        "channels_last": bool,
        "bf16": bool,
        "device": str,
    },
    "loss": {term: _NUMBER for term in LOSS_TERMS},
    "asm": {"k": int, "schedule": list, "pca": str},
    "variants": None,  # name -> list of loss terms, checked below
    "variant_train": None,  # name -> {train key: value}, checked below
}
DATA_SOURCES = ("synthetic", "freihand")
UV_MODES = ("soft_argmax", "argmax")
DEVICES = ("auto", "cpu", "cuda")
ASM_PCA = ("batch", "dataset")


class ConfigError(ValueError):
    """A bad value in params.yaml; the message names the key."""


def _check_type(key: str, value: Any, kind: Any) -> None:
    # bool is an int in Python; a weight of `true` is still a typo.
    if isinstance(value, bool) and kind is not bool:
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if not isinstance(value, kind):
        want = {_NUMBER: "a number", (int, list): "an integer or a list of integers"}.get(kind) or kind.__name__
        raise ConfigError(f"{key}: expected {want}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key}: must be finite, got {value!r}")


def _positive(params: dict, key: str) -> None:
    section, name = key.split(".")
    if params[section][name] <= 0:
        raise ConfigError(f"{key}: must be > 0, got {params[section][name]!r}")


def validate(params: dict) -> dict:
    """Check every section and key of a params dict; return it unchanged or raise ConfigError."""
    if not isinstance(params, dict):
        raise ConfigError("params.yaml: expected a mapping of sections")
    for section in params:
        if section not in SCHEMA:
            raise ConfigError(f"{section}: unknown section (known: {', '.join(SCHEMA)})")
    for section, keys in SCHEMA.items():
        if section not in params or not isinstance(params[section], dict):
            raise ConfigError(f"{section}: missing section or not a mapping")
        if keys is None:
            continue
        for key in params[section]:
            if key not in keys:
                raise ConfigError(f"{section}.{key}: unknown key (known: {', '.join(keys)})")
        for key, kind in keys.items():
            if key not in params[section]:
                raise ConfigError(f"{section}.{key}: missing")
            _check_type(f"{section}.{key}", params[section][key], kind)

    for key in (
        "data.n_synthetic",
        "data.n_train",
        "data.n_test",
        "heatmap.size",
        "heatmap.sigma",
        "model.input_size",
        "model.features",
        "model.stacks",
        "model.hourglass_depth",
        "model.mlp_width",
        "train.epochs",
        "train.batch_size",
        "train.lr",
        "asm.k",
    ):
        _positive(params, key)
    for term, weight in params["loss"].items():
        if weight < 0:
            raise ConfigError(f"loss.{term}: must be >= 0, got {weight!r}")
    if params["data"]["source"] not in DATA_SOURCES:
        raise ConfigError(f"data.source: must be one of {DATA_SOURCES}, got {params['data']['source']!r}")
    if params["data"]["n_train"] + params["data"]["n_test"] > params["data"]["n_synthetic"] and (
        params["data"]["source"] == "synthetic"
    ):
        raise ConfigError("data.n_train + data.n_test: more than the data.n_synthetic poses generated")
    if params["model"]["uv"] not in UV_MODES:
        raise ConfigError(f"model.uv: must be one of {UV_MODES}, got {params['model']['uv']!r}")
    if params["train"]["device"] not in DEVICES:
        raise ConfigError(f"train.device: must be one of {DEVICES}, got {params['train']['device']!r}")
    if params["model"]["input_size"] != 4 * params["heatmap"]["size"]:
        raise ConfigError(
            f"heatmap.size: the hourglass outputs input_size/4 = {params['model']['input_size'] / 4:g}, "
            f"got {params['heatmap']['size']}"
        )
    for i, p in enumerate(params["model"]["dropout"]):
        _check_type(f"model.dropout[{i}]", p, _NUMBER)
        if not 0 <= p < 1:
            raise ConfigError(f"model.dropout[{i}]: must be in [0, 1), got {p!r}")
    if not params["asm"]["schedule"]:
        raise ConfigError("asm.schedule: must list at least one factor")
    for i, f in enumerate(params["asm"]["schedule"]):
        _check_type(f"asm.schedule[{i}]", f, _NUMBER)
    seeds = params["train"]["seed"]
    if isinstance(seeds, list):
        if not seeds or len(set(map(str, seeds))) != len(seeds):
            raise ConfigError(f"train.seed: a list of seeds must be non-empty and without repeats, got {seeds!r}")
        for i, seed in enumerate(seeds):
            _check_type(f"train.seed[{i}]", seed, int)
    if params["asm"]["pca"] not in ASM_PCA:
        raise ConfigError(f"asm.pca: must be one of {ASM_PCA}, got {params['asm']['pca']!r}")
    if not params["variants"]:
        raise ConfigError("variants: define at least one variant")
    for name, terms in params["variants"].items():
        if not isinstance(terms, list) or not terms:
            raise ConfigError(f"variants.{name}: expected a list of loss terms, got {terms!r}")
        for term in terms:
            if term not in LOSS_TERMS:
                raise ConfigError(f"variants.{name}: unknown loss term {term!r} (known: {', '.join(LOSS_TERMS)})")
    for name, overrides in params["variant_train"].items():
        if name not in params["variants"]:
            raise ConfigError(f"variant_train.{name}: no such variant (known: {', '.join(params['variants'])})")
        if not isinstance(overrides, dict):
            raise ConfigError(f"variant_train.{name}: expected a mapping of train keys, got {overrides!r}")
        merged = {**params["train"], **overrides}
        for key, value in overrides.items():
            if key not in SCHEMA["train"]:
                raise ConfigError(
                    f"variant_train.{name}.{key}: unknown train key (known: {', '.join(SCHEMA['train'])})"
                )
            _check_type(f"variant_train.{name}.{key}", value, SCHEMA["train"][key])
        for key in ("epochs", "batch_size", "lr"):
            if merged[key] <= 0:
                raise ConfigError(f"variant_train.{name}.{key}: must be > 0, got {merged[key]!r}")
    return params


def seeds_of(train: dict) -> list[int]:
    """`train.seed` as a list: one model is trained per seed."""
    return train["seed"] if isinstance(train["seed"], list) else [train["seed"]]


def load_params(path: str | Path = "params.yaml") -> dict:
    """Read and validate params.yaml."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        params = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    return validate(params)


def variant_config(params: dict, variant: str) -> dict:
    """Everything training and evaluation need for one variant, and nothing else.

    Only the weights of the variant's own loss terms are included, so changing another
    term's weight leaves this config (and so its DVC stage) unchanged.
    """
    if variant not in params["variants"]:
        raise ConfigError(f"variants.{variant}: no such variant (known: {', '.join(params['variants'])})")
    terms = params["variants"][variant]
    config = {
        "variant": variant,
        "losses": {term: params["loss"][term] for term in LOSS_TERMS if term in terms},
        "model": params["model"],
        "train": {**params["train"], **params["variant_train"].get(variant, {})},
    }
    if "asm" in terms:
        config["asm"] = params["asm"]
    return config


def write_variant_configs(params: dict, out_dir: str | Path) -> list[Path]:
    """Write configs/<variant>.json for every variant (stable formatting, so unchanged = same bytes)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for variant in params["variants"]:
        path = out_dir / f"{variant}.json"
        path.write_text(json.dumps(variant_config(params, variant), indent=2, sort_keys=True) + "\n")
        paths.append(path)
    return paths


def read_variant_config(path: str | Path) -> dict:
    """Read a configs/<variant>.json written by `write_variant_configs`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: variant config not found (run the `configure` stage)")
    return json.loads(path.read_text())
