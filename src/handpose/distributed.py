"""Training across processes with torch.distributed: the process group that torchrun sets up, and
the few collective steps the training loop needs. With one process every function here is a no-op.

`train.nproc: N` makes `handpose train` start itself again under torchrun with N processes on this
node; launched by torchrun directly (several nodes: --nnodes, --node-rank, --rdzv-endpoint), it joins
the job torchrun describes in its environment (WORLD_SIZE, RANK, LOCAL_RANK).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Group:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0 alone logs, checkpoints and writes files."""
        return self.rank == 0


ONE = Group()  # a single process


def under_torchrun() -> bool:
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def relaunch_under_torchrun(nproc: int) -> None:
    """Replace this process by torchrun running the same command in `nproc` processes on this node
    (a free port on 127.0.0.1 for their rendezvous); returns only when there is nothing to do."""
    if nproc <= 1 or under_torchrun():
        return
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    os.execv(sys.executable, [*argv, "-m", "handpose", *sys.argv[1:]])


def join(device_type: str) -> Group:
    """Join the job torchrun started this process in (NCCL on GPUs, gloo on CPU), or a group of one."""
    if not under_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
        return Group()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return Group(dist.get_rank(), dist.get_world_size(), int(os.environ["LOCAL_RANK"]))


def all_sum(group: Group, value: torch.Tensor) -> torch.Tensor:
    """`value` summed over every process (a copy; the input is left as it is)."""
    value = value.detach().clone()
    if group.world > 1:
        dist.all_reduce(value)
    return value


def all_gather(group: Group, value: torch.Tensor) -> torch.Tensor:
    """Every process's `value` (the same shape in each), concatenated along dim 0 in rank order."""
    if group.world == 1:
        return value
    parts = [torch.empty_like(value) for _ in range(group.world)]
    dist.all_gather(parts, value.detach().contiguous())
    return torch.cat(parts)


def broadcast_from_main(group: Group, tensors: list[torch.Tensor]) -> None:
    """Overwrite `tensors` in place with rank 0's (e.g. BatchNorm statistics, which each CPU process
    keeps for its own share of the batch)."""
    if group.world > 1:
        for tensor in tensors:
            dist.broadcast(tensor, 0)


def barrier(group: Group) -> None:
    if group.world > 1:
        dist.barrier()


def leave(group: Group) -> None:
    if group.world > 1 and dist.is_initialized():
        dist.destroy_process_group()
