"""Models: AR teacher (joint CTC/attention) and NAR Mask-CTC student; presets; parameter counts."""

from __future__ import annotations

from torch import nn

from kdlab.models.ar import ARModel
from kdlab.models.config import PRESETS, ModelConfig, get_preset
from kdlab.models.ctc import ctc_loss, ctc_loss_per_utt
from kdlab.models.maskctc import MaskCTCModel, sample_mlm_mask

KINDS = ("ar", "maskctc")


def build_model(cfg: ModelConfig, vocab_size: int, kind: str) -> ARModel | MaskCTCModel:
    """``kind="ar"`` -> ``ARModel`` (teacher), ``"maskctc"`` -> ``MaskCTCModel`` (student)."""
    if kind == "ar":
        return ARModel(cfg, vocab_size)
    if kind == "maskctc":
        return MaskCTCModel(cfg, vocab_size)
    raise ValueError(f"unknown model kind {kind!r}; expected one of {KINDS}")


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Trainable parameter counts: ``encoder``, ``decoder``, ``ctc`` and ``total``."""

    def count(module: nn.Module) -> int:
        return sum(p.numel() for p in module.parameters() if p.requires_grad)

    parts = {name: count(getattr(model, name)) for name in ("encoder", "decoder", "ctc")}
    return {**parts, "total": count(model)}


__all__ = [
    "ARModel",
    "MaskCTCModel",
    "ModelConfig",
    "PRESETS",
    "KINDS",
    "get_preset",
    "build_model",
    "count_parameters",
    "ctc_loss",
    "ctc_loss_per_utt",
    "sample_mlm_mask",
]
