"""One training step, shared by pretraining and training: the loss terms, the finite check, backward
and the update. The forward pass is the caller's (the backbone alone, or the whole network)."""

from __future__ import annotations

import torch

from handpose import distributed
from handpose.losses import TERMS, Batch, TermSettings, value


class TrainingDiverged(ValueError):
    """A loss became NaN or infinite: the run stops, and nothing diverged is kept as a result."""


def train_step(
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    weights: dict[str, float],
    logged: list[str],
    settings: dict[str, TermSettings],
    where: str,
    hint: str,
    group: distributed.Group = distributed.ONE,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Minimise sum(weight * term) over `weights` on `batch`; returns that loss and the value of every
    term in `logged` (those not weighted come from a pass without gradients, for the log alone).
    A non-finite loss on any process stops every process, naming `where`, the bad terms and `hint`."""
    terms = {}
    for name in [t for t in TERMS if t in weights or t in logged]:  # in TERMS order: the order of backward's sums
        with torch.set_grad_enabled(name in weights):
            terms[name] = value(name, batch, settings.get(name))
    loss = sum(w * terms[name] for name, w in weights.items())
    if not torch.isfinite(distributed.all_sum(group, loss)):  # one host sync per step (cheap on CPU)
        bad = [f"loss_{name} = {float(v.detach())}" for name, v in terms.items() if not torch.isfinite(v)]
        raise TrainingDiverged(f"{where}: {', '.join(bad) or f'weighted loss = {float(loss.detach())}'}; {hint}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss, terms
