"""Deterministic training: one seed, a fixed thread count and deterministic kernels."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def deterministic(seed: int, threads: int, *, strict_kernels: bool = True) -> Iterator[None]:
    """Seed torch, fix the thread count and require deterministic kernels, then restore.

    ``strict_kernels`` False keeps torch's default kernels: on the CPU these give the same
    result for the same seed and thread count, and the strict ones make the backward
    passes of padding and upsampling layers about twice as slow.
    """
    previous_threads = torch.get_num_threads()
    previous_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(strict_kernels)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous_deterministic)
        torch.set_num_threads(previous_threads)
