"""Models: AR teacher (joint CTC/attention), NAR Mask-CTC student, CTC student (Inter-KD, streaming) and
transducer (one-best-path KD); presets; parameter counts."""

from __future__ import annotations

from torch import nn

from kdlab.models.ar import ARModel
from kdlab.models.config import PRESETS, ModelConfig, get_preset
from kdlab.models.ctc import ctc_loss, ctc_loss_per_utt
from kdlab.models.ctc_model import CTCModel
from kdlab.models.maskctc import MaskCTCModel, sample_mlm_mask

KINDS = ("ar", "maskctc", "ctc", "transducer")
TRAINING_ONLY = ("aux", "apc")  # modules of a streaming student used only by layer-to-layer KD / APC


def build_model(cfg: ModelConfig, vocab_size: int, kind: str) -> nn.Module:
    """``kind="ar"`` -> ``ARModel`` (teacher), ``"maskctc"`` -> ``MaskCTCModel`` (student), ``"ctc"`` ->
    ``CTCModel``, ``"transducer"`` -> ``TransducerModel``."""
    if kind == "ar":
        return ARModel(cfg, vocab_size)
    if kind == "maskctc":
        return MaskCTCModel(cfg, vocab_size)
    if kind == "ctc":
        return CTCModel(cfg, vocab_size)
    if kind == "transducer":
        from kdlab.models.transducer import TransducerModel

        return TransducerModel(cfg, vocab_size)
    raise ValueError(f"unknown model kind {kind!r}; expected one of {KINDS}")


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Trainable parameter counts of the parts the model has (``encoder``, ``decoder``, ``ctc``,
    ``predictor``, ``joiner``; a streaming student's training-only ``aux`` branches and ``apc`` heads) and
    ``total``; with training-only parts, also ``inference`` (the model that decodes)."""

    def count(module: nn.Module) -> int:
        return sum(p.numel() for p in module.parameters() if p.requires_grad)

    names = ("encoder", "decoder", "ctc", "predictor", "joiner", *TRAINING_ONLY)
    parts = {name: count(getattr(model, name)) for name in names if isinstance(getattr(model, name, None), nn.Module)}
    counts = {**parts, "total": count(model)}
    if any(name in parts for name in TRAINING_ONLY):  # what decoding uses, without the KD-only branches
        counts["inference"] = counts["total"] - sum(parts.get(name, 0) for name in TRAINING_ONLY)
    return counts


__all__ = [
    "ARModel",
    "CTCModel",
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
