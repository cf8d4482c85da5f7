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
    ``predictor``, ``joiner``) and ``total``."""

    def count(module: nn.Module) -> int:
        return sum(p.numel() for p in module.parameters() if p.requires_grad)

    names = ("encoder", "decoder", "ctc", "predictor", "joiner")
    parts = {name: count(getattr(model, name)) for name in names if hasattr(model, name)}
    return {**parts, "total": count(model)}


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
