"""The `configure` stage: params.yaml, checked against the registries of loss terms (handpose.losses)
and backbones (handpose.model), -> one resolved config per variant, configs/<variant>.json.

A variant's config holds only what its training reads: its own terms' weights and settings, and its
backbone's settings. Changing anything else leaves the file's bytes, and so its DVC stages, as they are.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from handpose.atomic import atomic_path
from handpose.config import ConfigError, Params, VariantConfig, describe
from handpose.losses import TERMS
from handpose.model import backbone_settings


def check_terms(params: Params) -> None:
    """Every term a variant names is registered and weighted; every weight and settings section
    belongs to a registered term; each settings section fits its term's schema."""
    known = ", ".join(TERMS)
    for name in params.loss:
        if name not in TERMS:
            raise ConfigError(f"loss.{name}: unknown key (the loss terms: {known})")
    for variant, terms in params.variants.items():
        for i, name in enumerate(terms):
            if name not in TERMS:
                raise ConfigError(f"variants.{variant}[{i}]: unknown loss term {name!r} (the loss terms: {known})")
            if name not in params.loss:
                raise ConfigError(f"loss.{name}: missing (the weight of a term that variant {variant} uses)")
        if len(set(terms)) != len(terms):
            raise ConfigError(f"variants.{variant}: a term is listed twice ({', '.join(terms)})")
    with_settings = [name for name, term in TERMS.items() if term.settings is not None]
    for section, values in params.sections.items():
        if section not in with_settings:
            sections = ", ".join([*Params.model_fields, *with_settings])
            raise ConfigError(f"{section}: unknown key (known: {sections})")
        _validated(TERMS[section].settings, values, section)
    for variant, terms in params.variants.items():
        for name in terms:
            if name in with_settings and name not in params.sections:
                raise ConfigError(f"{name}: missing (the settings of loss term {name!r}, used by variant {variant})")


def _validated(schema: type, values: dict, prefix: str) -> dict:
    try:
        return schema.model_validate(values).model_dump()
    except ValidationError as err:
        raise ConfigError(describe(err, prefix=prefix, model=schema)) from None


def variant_config(params: Params, variant: str) -> VariantConfig:
    """One variant's resolved config: its own terms (in TERMS order) with their weights and settings."""
    if variant not in params.variants:
        raise ConfigError(f"variants.{variant}: no such variant (known: {', '.join(params.variants)})")
    terms = [name for name in TERMS if name in params.variants[variant]]
    return VariantConfig(
        variant=variant,
        losses={name: params.loss[name] for name in terms},
        term_settings={
            name: _validated(TERMS[name].settings, params.sections[name], name)
            for name in terms
            if TERMS[name].settings is not None
        },
        model=params.model.with_only_its_backbone(backbone_settings(params.model).model_dump()),
        train=params.train_of(variant),
    )


def configure(params: Params, out_dir: str | Path) -> list[Path]:
    """Check params against the registries, then write configs/<variant>.json for every variant
    (stable formatting: an unchanged config keeps its bytes). Nothing is written unless every
    variant's config is valid."""
    check_terms(params)
    backbone_settings(params.model)
    configs = {variant: variant_config(params, variant) for variant in params.variants}
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        for variant, config in configs.items():
            (tmp / f"{variant}.json").write_text(json.dumps(config.model_dump(), indent=2, sort_keys=True) + "\n")
    return [Path(out_dir) / f"{variant}.json" for variant in configs]
