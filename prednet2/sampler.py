"""The data order of a run: shuffled batches that a resumed run (and every DDP rank) can reproduce exactly."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

from prednet2.config import ConfigError


class ResumableBatchSampler(Sampler[list[int]]):
    """Shuffled batches, a fresh permutation per epoch from ``(seed, epoch)``, starting at any batch.

    The permutation depends only on the seed and the epoch (not on a global RNG), so a resumed run that sets
    the saved ``(epoch, batch)`` sees exactly the batches a straight run would have seen.
    """

    def __init__(self, n: int, batch_size: int, seed: int, *, rank: int = 0, world_size: int = 1):
        if n <= 0:
            raise ValueError("the dataset is empty")
        if batch_size % world_size:
            raise ConfigError(
                f"data.batch_size={batch_size} is the global batch and must be divisible by the number of "
                f"processes ({world_size})"
            )
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start = 0, 0

    def set_position(self, epoch: int, batch: int) -> None:
        self.epoch, self.start = epoch, batch

    def __len__(self) -> int:
        # Drop the ragged last batch (a constant batch size keeps steps comparable), but never drop everything.
        return max(1, self.n // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        perm = torch.randperm(self.n, generator=g).tolist()
        for b in range(self.start, len(self)):
            # DDP: every rank draws the same global batch and keeps its 1/world share (a DistributedSampler over
            # clips with set_epoch, but one that keeps the global batches of a single-process run, and resumes).
            yield perm[b * self.batch_size : (b + 1) * self.batch_size][self.rank :: self.world_size]
