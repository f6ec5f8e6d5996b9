"""One model on several processes: DistributedDataParallel under `torchrun`, and a no-op stand-in otherwise.

`torchrun --nproc_per_node N -m digitlab train ...` (or several nodes with --nnodes/--rdzv-endpoint) starts N
processes with RANK, WORLD_SIZE and LOCAL_RANK set; `Processes.from_env()` reads them and joins the process group —
NCCL when the device is CUDA (each process on cuda:LOCAL_RANK), gloo on the CPU. Without torchrun it is a single
process (rank 0 of 1) and every method below is the identity, so `digitlab train` is unchanged.

The semantics, stated:
- `--batch-size` is per process; the global batch is batch x N. Each epoch's permutation is the same on every rank
  (seeded by (seed, epoch)); global batch k is its k-th slice of batch x N images, and rank r trains on the r-th
  part of it: the ranks see disjoint shards that together cover the epoch once. The learning rate is not rescaled:
  a larger global batch usually wants a larger `--lr`, the user's call.
- Gradients are averaged over the ranks by DDP. With batch norm on CUDA, the layers become SyncBatchNorm
  (statistics over the global batch); PyTorch's SyncBatchNorm runs on GPUs only, so on the CPU each rank normalises
  with its own batch and DDP broadcasts rank 0's running statistics at every step.
- Rank 0 alone writes the run folder, evaluates validation and test (once each), and saves checkpoints at the end
  of each epoch; all ranks resume from the same last.safetensors. Mid-epoch checkpoints (`--checkpoint-every`,
  Ctrl-C) are taken at the next epoch end instead, since each rank's random streams differ within an epoch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Processes:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    @staticmethod
    def from_env(device_name: str) -> Processes:
        """The torchrun environment, with the process group joined; a single process when there is none."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return Processes()
        cuda = device_name in ("auto", "cuda") and torch.cuda.is_available()
        processes = Processes(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
        if cuda:
            torch.cuda.set_device(processes.local_rank)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if cuda else "gloo")
        return processes

    def device(self, device: torch.device) -> torch.device:
        """Each process on its own GPU: cuda -> cuda:LOCAL_RANK."""
        return torch.device("cuda", self.local_rank) if self.active and device.type == "cuda" else device

    def wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """The module the training step calls: the model itself, or a DDP wrapper sharing its parameters."""
        if not self.active:
            return model
        if device.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                                         else None)  # fmt: skip

    def shard(self, global_batch: torch.Tensor) -> torch.Tensor:
        """This rank's part of a global batch of indices (parts differ in size by at most one; an epoch's last batch
        smaller than the number of ranks is padded by repeating its images, as DistributedSampler pads)."""
        if not self.active:
            return global_batch
        if len(global_batch) < self.world:
            global_batch = global_batch.repeat(self.world)[: self.world]
        return global_batch.tensor_split(self.world)[self.rank]

    def stream(self, base: int) -> tuple[int, ...]:
        """Spawn key of a random stream: rank 0 keeps the single-process streams, other ranks get their own."""
        return (base,) if self.rank == 0 else (base, self.rank)

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        if self.active:
            value = value.clone()
            dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value

    def any(self, flag: bool) -> bool:
        return bool(self.sum(torch.tensor(int(flag))).item()) if self.active else flag

    def broadcast(self, value):
        """Rank 0's value of a small picklable object, on every rank (the run folder's name, chosen by rank 0)."""
        if not self.active:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def close(self) -> None:
        """Leave the process group together: every rank waits here until all arrive (rank 0 comes last, after the
        test pass), then destroys it. A rank that destroyed its group while rank 0 still held its connections died
        with SIGABRT in 2 of 12 two-rank CPU runs ("terminate called without an active exception", gloo); 0 of 24
        with the barrier."""
        if self.active and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
