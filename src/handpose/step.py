"""One training step, shared by pretraining and training: the optimiser, the loss terms, the finite
check, backward and the update. The forward pass is the caller's (the backbone alone, or the whole
network)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from handpose import distributed
from handpose.losses import TERMS, Batch, TermSettings, value

NOT_YET = torch.iinfo(torch.int64).max  # no step has diverged


class FlatRMSprop(torch.optim.RMSprop):
    """RMSprop over one flat buffer that holds every parameter of `module`, and one that holds every
    gradient. Its update is a few kernels over the whole model, not a few per tensor (274 at the default
    size: on a CPU, foreach updates still loop over the tensors); what that buys is measured in
    docs/benchmarks.md (Optimiser). Element by element it is the same arithmetic, so the weights are bit
    for bit those of per-tensor RMSprop. Build it once the module is on its device and in its memory format:
    moving the module later would give it parameters that the buffer no longer holds.

    `lr_factors` ({submodule name: factor}) gives those submodules' parameters a param group of their own,
    a slice of the buffer, whose "lr_factor" the caller multiplies each lr it sets by (`set_lr`)."""

    def __init__(self, module: nn.Module, lr: float, lr_factors: dict[str, float] | None = None):
        lr_factors = lr_factors or {}
        own = {name: list(module.get_submodule(name).parameters()) for name in lr_factors}
        taken = {id(p) for params in own.values() for p in params}
        groups = [(1.0, [p for p in module.parameters() if id(p) not in taken])]
        groups += [(lr_factors[name], params) for name, params in own.items()]
        params = [p for _, group in groups for p in group]
        if len({(p.dtype, p.device) for p in params}) != 1:
            raise ValueError("FlatRMSprop needs every parameter on one device, in one dtype")
        flat = torch.zeros(sum(p.numel() for p in params), dtype=params[0].dtype, device=params[0].device)
        grads, self._views, offset, param_groups = torch.zeros_like(flat), [], 0, []
        with torch.no_grad():
            for factor, group in groups:
                start = offset
                for p in group:
                    strides = torch.empty_like(p).stride()  # dense, in p's memory format (channels_last stays)
                    p.data = flat.as_strided(p.shape, strides, offset).copy_(p)
                    self._views.append((p, grads.as_strided(p.shape, strides, offset)))
                    offset += p.numel()
                if len(groups) == 1:  # the whole buffer: the plain, single-group optimiser
                    piece = flat
                else:  # a slice of it, a leaf of its own (the optimiser refuses views of a tensor it updates)
                    piece = flat.detach()[start:offset]
                piece.grad = grads[start:offset]
                param_groups.append({"params": [piece], "lr_factor": factor})
        super().__init__(param_groups, lr=lr)
        self.zero_grad()

    def set_lr(self, lr: float) -> None:
        """Every group's lr: `lr` times the group's factor."""
        for group in self.param_groups:
            group["lr"] = lr * group.get("lr_factor", 1.0)  # a checkpoint from before the factors has none

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero the gradient buffers, and point each parameter's .grad back into them (a `module.zero_grad()`
        sets them to None, and backward would then write gradients that no step reads)."""
        for group in self.param_groups:
            group["params"][0].grad.zero_()
        for p, grad in self._views:
            if p.grad is not grad:
                p.grad = grad


class TrainingDiverged(ValueError):
    """A loss became NaN or infinite: the run stops, and nothing diverged is kept as a result."""


class DivergenceCheck:
    """Stops training at the first non-finite loss on any process, naming the step, the bad terms and
    a hint. On a CPU each step is checked as it comes (reading a value costs nothing there). On a GPU
    the check stays on the device and `confirm()` reads it, which the loop calls before it keeps
    anything (a log row, a checkpoint), so the host never waits for the GPU inside an epoch.

    `where(step)` names a step, e.g. "m_cos_2 seed 0: training diverged at epoch 2, step 7/250"."""

    def __init__(
        self,
        where: Callable[[int], str],
        hint: str,
        device: torch.device,
        group: distributed.Group = distributed.ONE,
        deferred: bool | None = None,  # default: on a GPU
    ):
        self.where, self.hint, self.group = where, hint, group
        self.deferred = device.type == "cuda" if deferred is None else deferred
        self.first = torch.tensor(NOT_YET, device=device)  # the first step whose loss was not finite
        self.bad_terms = torch.zeros(len(TERMS), dtype=torch.bool, device=device)

    def observe(self, step: int, loss: torch.Tensor, terms: dict[str, torch.Tensor]) -> None:
        finite = torch.isfinite(distributed.all_sum(self.group, loss))
        if not self.deferred:
            if not finite:
                bad = [f"loss_{name} = {float(v.detach())}" for name, v in terms.items() if not torch.isfinite(v)]
                bad = ", ".join(bad) or f"weighted loss = {float(loss)}"
                raise TrainingDiverged(f"{self.where(step)}: {bad}; {self.hint}")
            return
        self.first = torch.where(finite | (self.first != NOT_YET), self.first, step)
        # Device ops only: a tensor built from host values would wait for the GPU (a pageable copy).
        no = self.bad_terms[0] & False
        flags = torch.stack([~torch.isfinite(terms[t].detach()) if t in terms else no for t in TERMS])
        self.bad_terms = torch.where(self.first == step, flags, self.bad_terms)  # the first bad step's terms

    def confirm(self) -> None:
        """Raise TrainingDiverged if any step so far diverged (one host sync on a GPU; free on a CPU)."""
        if self.deferred and (first := int(self.first)) != NOT_YET:
            bad = [f"loss_{name}" for name, flag in zip(TERMS, self.bad_terms.tolist()) if flag]
            raise TrainingDiverged(f"{self.where(first)}: {', '.join(bad) or 'weighted loss'} not finite; {self.hint}")


def train_step(
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    weights: dict[str, float],
    logged: list[str],
    settings: dict[str, TermSettings],
    check: DivergenceCheck,
    step: int,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Minimise sum(weight * term) over `weights` on `batch`; returns that loss and the value of every
    term in `logged` (those not weighted come from a pass without gradients, for the log alone).
    `check` sees the loss of every `step` (a non-finite one on any process stops every process)."""
    terms = {}
    for name in [t for t in TERMS if t in weights or t in logged]:  # computed in TERMS order
        with torch.set_grad_enabled(name in weights):
            terms[name] = value(name, batch, settings.get(name))
    loss = sum(w * terms[name] for name, w in weights.items())  # summed in `weights` order (the config JSON's)
    check.observe(step, loss, terms)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss, terms
