"""Arithmetic of a decode: floating-point operations of the matrix products, attention and convolutions.

``kdlab bench decode`` times each method; this counts what each one has to compute, with
``torch.utils.flop_counter`` (matmul, linear, batched matmul, scaled dot-product attention and
convolutions; element-wise work is not counted). The ratio of two counts is what the time ratio would be
if both methods ran at the same speed per operation: a bound that no implementation of the same exact
search on the same model beats without running faster per operation. Mask-CTC greedy, for instance,
adds ⌈N/K⌉ CMLM passes (eq 5) to the encoder pass; their arithmetic sets how close its time can come to the
encoder's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode


def count_flops(job: Callable[[Any], Any], batches: Iterable[Any]) -> int:
    """Floating-point operations of ``job(batch)`` summed over ``batches`` (each run once, no timing)."""
    with FlopCounterMode(display=False) as counter:
        for batch in batches:
            job(batch)
    return counter.get_total_flops()


def flops_per_method(jobs: dict[str, Callable[[Any], Any]], batches: dict[str, list]) -> dict[str, float]:
    """GFLOPs of every job over its batches: ``jobs[name](batch)`` for each batch of ``batches[name]``."""
    with torch.inference_mode():
        return {name: count_flops(job, batches[name]) / 1e9 for name, job in jobs.items()}
