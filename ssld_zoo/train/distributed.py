"""One process or one of `torchrun`'s: rank, world size and device from the torchrun environment variables."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

from ssld_zoo.errors import SsldZooError
from ssld_zoo.settings import env_number

MAX_PROCESSES = 1 << 16  # torchrun's WORLD_SIZE beyond this is a mistake, not a cluster


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
    world = env_number("WORLD_SIZE", 1, minimum=1, maximum=MAX_PROCESSES, integer=True)
    rank = env_number("RANK", 0, minimum=0, maximum=world - 1, integer=True)
    local_rank = env_number("LOCAL_RANK", 0, minimum=0, maximum=MAX_PROCESSES - 1, integer=True)
    if device not in (None, "cpu", "cuda"):  # each process takes its LOCAL_RANK's GPU, so no index is given
        raise SsldZooError(f"device must be cpu or cuda, not {device!r}.")
    chosen = pick_device(device)
    if chosen.type == "cuda":
        chosen = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(chosen)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if chosen.type == "cuda" else "gloo", rank=rank, world_size=world,
                                device_id=chosen if chosen.type == "cuda" else None)
    return Context(rank, world, local_rank, chosen)


def pick_device(device: str | None = None, *, error: type[SsldZooError] = SsldZooError) -> torch.device:
    """The torch device `device` names (cpu, cuda, cuda:1, ...), or when None cuda where torch sees one and cpu
    elsewhere. A name torch does not know, or cuda where there is none, raises `error`."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise error(f"--device '{device}' is not a torch device (cpu, cuda, cuda:1, ...).") from e
    if chosen.type not in ("cpu", "cuda", "mps"):  # meta, xpu, ...: no place this project runs a model on
        raise error(f"--device '{device}' is not a device ssld-zoo runs on; use cpu or cuda (cuda:1, ...).")
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise error(f"--device {device}: torch sees no CUDA device here; use --device cpu.")
    if chosen.type == "mps" and not torch.backends.mps.is_available():
        raise error(f"--device {device}: torch sees no Apple GPU here; use --device cpu.")
    return chosen


def teardown(context: Context) -> None:
    """Leave the process group joined by `setup`."""
    if context.world > 1 and dist.is_initialized():
        dist.destroy_process_group()
