"""Spreading the scoring over processes started by ``torchrun``.

Each rank scores every ``world``-th sentence (interleaved, so long and short sentences
spread evenly), the per-sentence results are gathered back into input order on every
rank, and rank 0 alone writes and prints. Without ``torchrun`` (``WORLD_SIZE`` unset or 1)
everything here is a no-op.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Sequence, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init(device: str) -> Ranks:
    """Join the process group that ``torchrun`` set up (NCCL on GPUs, gloo on CPUs)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks()
    ranks = Ranks(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not ranks.main:  # one voice: rank 0 reports progress
        logging.getLogger().setLevel(logging.WARNING)
    use_gpu = device != "cpu" and torch.cuda.is_available()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_gpu else "gloo")
    return ranks


def rank_device(device: str, ranks: Ranks) -> str:
    """Each rank its own GPU: ``auto``/``cuda`` become ``cuda:<local rank>``."""
    if ranks.world > 1 and device in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{ranks.local_rank}"
    return device


def shard(n: int, ranks: Ranks) -> list[int]:
    """The indices of ``n`` items this rank handles."""
    return list(range(ranks.rank, n, ranks.world))


def gather(indices: Sequence[int], values: Sequence[T], n: int, ranks: Ranks) -> list[T | None]:
    """Every rank's ``values`` (for its ``indices``) back in input order, on every rank;
    ``None`` at the indices no rank gave."""
    parts: list = [(indices, values)]
    if ranks.world > 1:
        parts = [None] * ranks.world
        dist.all_gather_object(parts, (list(indices), list(values)))
    result: list = [None] * n
    for part_indices, part_values in parts:
        for i, value in zip(part_indices, part_values):
            result[i] = value
    return result


def barrier(ranks: Ranks) -> None:
    if ranks.world > 1:
        dist.barrier()


def finish(ranks: Ranks) -> None:
    if ranks.world > 1 and dist.is_initialized():
        dist.destroy_process_group()
