"""Where training autocasts to bf16: as train.bf16 says, or for `auto` where the device has native bf16;
and the settings deterministic CUDA and MKL need."""

import os
import subprocess
import sys
from pathlib import Path

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


MKL_BRANCH = """
import ctypes, os
import torch
import handpose.train  # a stage's module; importing handpose sets MKL_CBWR
torch.sqrt(torch.rand(4096))  # MKL's first call reads MKL_CBWR
branch = None
if torch.backends.mkl.is_available():  # torch's x86 builds; MKL_CBWR_BRANCH = 1, COMPATIBLE = 3
    lib = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so"))
    branch = lib.mkl_serv_cbwr_get(ctypes.c_int(1))
print(os.environ["MKL_CBWR"], branch)
"""


@pytest.mark.parametrize("own, mode, branch", [(None, "COMPATIBLE", "3"), ("AUTO", "AUTO", "2")])
def test_mkl_runs_its_reproducible_branch_unless_told_otherwise(own, mode, branch):
    """MKL's default branch races on its first multi-threaded call (handpose/__init__.py); a stage imports
    handpose before its first op, so MKL starts in COMPATIBLE mode, or in the user's own."""
    env = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"} | ({"MKL_CBWR": own} if own else {})
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[1] / "src"), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", MKL_BRANCH], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == [mode, branch if torch.backends.mkl.is_available() else "None"]
