"""One process or one of `torchrun`'s: rank, world size and device from the torchrun environment variables."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ssld_zoo.errors import SsldZooError


@dataclass(frozen=True)
class Context:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        """True on the process that writes files and shows progress (rank 0)."""
        return self.rank == 0

    def all_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """`tensor` summed over all processes (in place; unchanged for a single process)."""
        if self.world > 1:
            dist.all_reduce(tensor)
        return tensor

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def setup(device: str | None = None) -> Context:
    """Read RANK / WORLD_SIZE / LOCAL_RANK (set by torchrun), pick the device, join the process group (gloo on CPU,
    nccl on CUDA) when there is more than one process."""
    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    kind = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if kind not in ("cpu", "cuda"):
        raise SsldZooError(f"device must be cpu or cuda, not {kind!r}.")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise SsldZooError("device cuda was asked for, but torch sees no CUDA device; use --device cpu.")
        chosen = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(chosen)
    else:
        chosen = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if kind == "cuda" else "gloo", rank=rank, world_size=world,
                                device_id=chosen if kind == "cuda" else None)
    return Context(rank, world, local_rank, chosen)


def teardown(context: Context) -> None:
    """Leave the process group joined by `setup`."""
    if context.world > 1 and dist.is_initialized():
        dist.destroy_process_group()
