"""Where and how torch runs: the device, the CPU threads and deterministic kernels, in one place (MKL's
reproducible mode is set in handpose/__init__.py, as it must come before MKL's first call)."""

from __future__ import annotations

import os

import torch

from handpose.config import TrainConfig


def setup_torch(train: TrainConfig) -> torch.device:
    """The device `train.device` names (auto = the GPU when there is one), with `train.threads` CPU
    threads and deterministic kernels: the same inputs give the same bytes on one machine, and a
    fixed thread count keeps the CPU's reduction order the same across machines."""
    if train.threads:
        torch.set_num_threads(train.threads)
    # Deterministic CUDA also needs cuBLAS's fixed workspace (set before its first handle exists) and
    # no cuDNN autotuning, which may pick another kernel per run.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)
    name = train.device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("train.device: 'cuda' requested but no CUDA GPU is available")
    return torch.device(name)


def uses_bf16(train: TrainConfig, device: torch.device) -> bool:
    """Whether training autocasts to bfloat16: `train.bf16`, or for `auto` where the device computes in
    bf16 natively (a CUDA GPU that supports it; a CPU with AVX512-BF16 or AMX), so that it is faster
    there. Elsewhere bf16 is emulated and slower than fp32."""
    if train.bf16 != "auto":
        return train.bf16
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private: absent ones count as no
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)
