"""Where and how torch runs: the device, the CPU threads and deterministic kernels, in one place."""

from __future__ import annotations

import torch

from handpose.config import TrainConfig


def setup_torch(train: TrainConfig) -> torch.device:
    """The device `train.device` names (auto = the GPU when there is one), with `train.threads` CPU
    threads and deterministic kernels: the same inputs give the same bytes on one machine, and a
    fixed thread count keeps the CPU's reduction order the same across machines."""
    if train.threads:
        torch.set_num_threads(train.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    name = train.device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("train.device: 'cuda' requested but no CUDA GPU is available")
    return torch.device(name)
