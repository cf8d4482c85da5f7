"""Optimiser and the Noam-style warm-up schedule (ESPnet's ``WarmupLR`` written with a peak lr)."""

from __future__ import annotations

import math

import torch

from kdlab.config import TrainConfig


def noam_lr(step: int, peak_lr: float, warmup_steps: int) -> float:
    """Learning rate at optimiser step ``step`` (1-based).

    Linear warm-up to ``peak_lr`` at ``warmup_steps``, then inverse-square-root decay:
    ``peak_lr * min(step / warmup, sqrt(warmup / step))``. With no warm-up the rate starts at the peak
    and stays there.
    """
    step = max(step, 1)
    if warmup_steps <= 0:
        return peak_lr
    return peak_lr * min(step / warmup_steps, math.sqrt(warmup_steps / step))


class NoamSchedule:
    """Sets each parameter group's lr from the optimiser step count; state is one integer."""

    def __init__(self, optimizer: torch.optim.Optimizer, peak_lr: float, warmup_steps: int) -> None:
        self.optimizer = optimizer
        self.peak_lr = peak_lr
        self.warmup_steps = warmup_steps
        self.step_count = 0
        self._apply()

    def _apply(self) -> None:
        lr = noam_lr(self.step_count + 1, self.peak_lr, self.warmup_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def step(self) -> None:
        """Call after each optimiser step: moves the lr to the next step's value."""
        self.step_count += 1
        self._apply()

    def state_dict(self) -> dict:
        return {"step_count": self.step_count}

    def load_state_dict(self, state: dict) -> None:
        self.step_count = int(state["step_count"])
        self._apply()


def build_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam (ESPnet's choice, weight decay as L2) or AdamW (decoupled weight decay)."""
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[cfg.optimizer]
    return cls(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
