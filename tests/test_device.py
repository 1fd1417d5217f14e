"""Where training autocasts to bf16: as train.bf16 says, or for `auto` where the device has native bf16;
and the settings deterministic CUDA needs."""

import os

import pytest
import torch

from handpose.device import setup_torch, uses_bf16

from .conftest import tiny_config


def train_config(bf16):
    config = tiny_config("m_cos_2").train
    return config.model_copy(update={"bf16": bf16})


CPU = torch.device("cpu")


@pytest.mark.parametrize("bf16", [True, False])
def test_an_explicit_setting_is_kept_on_any_device(bf16, monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: not bf16, raising=False)
    assert uses_bf16(train_config(bf16), CPU) is bf16


@pytest.mark.parametrize(
    "avx512_bf16, amx, expected", [(False, False, False), (True, False, True), (False, True, True), (None, None, False)]
)
def test_auto_picks_bf16_on_a_cpu_only_where_it_is_native(avx512_bf16, amx, expected, monkeypatch):
    """None: a torch without the probe, which counts as no native bf16 (emulated bf16 is slower)."""
    for probe, native in [("_is_avx512_bf16_supported", avx512_bf16), ("_is_amx_tile_supported", amx)]:
        if native is None:
            monkeypatch.delattr(torch.cpu, probe, raising=False)
        else:
            monkeypatch.setattr(torch.cpu, probe, lambda native=native: native, raising=False)
    assert uses_bf16(train_config("auto"), CPU) is expected


def test_setup_sets_what_deterministic_cuda_needs(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    setup_torch(train_config(False).model_copy(update={"device": "cpu"}))
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.benchmark is False
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
