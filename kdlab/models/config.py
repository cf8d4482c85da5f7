"""Model hyper-parameters (``ModelConfig``) and the presets of the paper's Table 2.

Parameter counts (encoder + decoder + CTC) reproduce ESPnet2's module counts exactly when

* the decoder FFN has the encoder's inner dimension (one ``ffn_dim`` for both), and
* the depthwise convolution kernel is 31 for the LibriSpeech L model (114.97 M at V 4233 / 116.15 M at
  V 5000; kernel 15 would give 114.87 M) and 15 for the AISHELL-1 M / S / XS models (46.20 M, 12.42 M,
  6.50 M at V 4233; kernel 31 would give 46.25 M, 12.45 M, 6.52 M).

The paper's own Table 2 numbers (115.0 / 46.8 / 12.4 / 6.5 M) mix vocabularies (46.8 M is M at V 5000).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from kdlab.config import DictConfig


@dataclass(frozen=True)
class ModelConfig(DictConfig):
    """Architecture of a joint CTC/attention Conformer (shared by the AR teacher and Mask-CTC student);
    ``to_dict`` / ``from_dict`` (unknown keys are an error) come from :class:`kdlab.config.DictConfig`."""

    CONFIG_KEY: ClassVar[str] = "model.config"
    UNKNOWN_KEYS: ClassVar[str] = "ModelConfig: unknown keys {keys}; known: {known}"

    d_model: int = 256  # attention dimension
    heads: int = 4  # attention heads (d_model % heads == 0)
    ffn_dim: int = 2048  # inner dim of every FFN, encoder and decoder alike
    enc_blocks: int = 12  # Conformer blocks
    dec_blocks: int = 6  # Transformer decoder blocks
    cnn_kernel: int = 15  # depthwise conv kernel in the Conformer conv module (odd)
    dropout: float = 0.1  # residual / FFN dropout
    pos_dropout: float = 0.1  # dropout after the positional encodings
    attn_dropout: float = 0.0  # dropout on attention weights
    ctc_weight: float = 0.3  # alpha of eq 6
    lsm_weight: float = 0.1  # label smoothing of the attention / MLM cross entropy
    n_mels: int = 80  # input feature dimension
    subsample_channels: int = 0  # Conv2d subsampling channels; 0: d_model (ESPnet). The mini presets use fewer
    cmlm_rel_pos: bool = False  # CMLM decoder self-attention with relative positions (ESPnet: absolute)
    cmlm_embed_std: float = 0.0  # CMLM embedding init std; 0: torch's N(0, 1) as ESPnet (fairseq: d^-0.5)
    cmlm_abs_pos: bool = False  # with cmlm_rel_pos: also add absolute sinusoidal positions to the CMLM's input
    # CTC student (kind "ctc"): intermediate CTC heads (InterCTC / Inter-KD, docs/KD_FAMILIES.md)
    inter_ctc_layers: list = field(default_factory=list)  # encoder blocks (1-based) with an intermediate head
    inter_ctc_weight: float = 0.3  # w of L = (1 - w)·L_ctc + w·mean_k L_ctc,k
    # streaming encoder (chunk-based attention, causal depthwise convolution)
    chunk_size: int = 0  # encoder frames (after the x4 subsampling) per attention chunk; 0: full context
    left_chunks: int = -1  # chunks of left context each chunk attends to; -1: all
    # streaming student: auxiliary non-streaming branches for layer-to-layer KD and APC heads
    aux_layers: list = field(default_factory=list)  # encoder blocks (1-based) followed by an aux branch
    aux_out_dim: int = 0  # output width of the aux branches / APC heads (the teacher's d_model); 0: d_model
    # transducer (kind "transducer")
    pred_dim: int = 0  # prediction network width; 0: d_model
    pred_layers: int = 1  # LSTM layers of the prediction network
    joint_dim: int = 0  # joiner hidden width; 0: d_model

    def __post_init__(self) -> None:
        if self.d_model % self.heads:
            raise ValueError(f"ModelConfig: d_model={self.d_model} is not divisible by heads={self.heads}")
        if self.d_model % 2:
            raise ValueError(f"ModelConfig: d_model={self.d_model} must be even (sinusoidal positions)")
        if self.cmlm_embed_std < 0:
            raise ValueError(f"ModelConfig: cmlm_embed_std={self.cmlm_embed_std} must be >= 0")
        if self.subsample_channels < 0:
            raise ValueError(f"ModelConfig: subsample_channels={self.subsample_channels} must be >= 0")
        if self.cnn_kernel % 2 == 0:
            raise ValueError(f"ModelConfig: cnn_kernel={self.cnn_kernel} must be odd")
        if not 0.0 <= self.ctc_weight <= 1.0:
            raise ValueError(f"ModelConfig: ctc_weight={self.ctc_weight} must lie in [0, 1]")
        if not 0.0 <= self.lsm_weight < 1.0:
            raise ValueError(f"ModelConfig: lsm_weight={self.lsm_weight} must lie in [0, 1)")
        self._check_families()

    def _check_families(self) -> None:
        """Ranges of the KD-family fields (intermediate heads, streaming, aux branches, transducer)."""
        for name in ("inter_ctc_layers", "aux_layers"):
            bad = [k for k in getattr(self, name) if not isinstance(k, int) or not 1 <= k <= self.enc_blocks]
            if bad:
                raise ValueError(f"ModelConfig: {name} {bad} outside the encoder blocks 1..{self.enc_blocks}")
        if not 0.0 <= self.inter_ctc_weight <= 1.0:
            raise ValueError(f"ModelConfig: inter_ctc_weight={self.inter_ctc_weight} must lie in [0, 1]")
        if self.chunk_size < 0 or self.left_chunks < -1:
            raise ValueError(f"ModelConfig: chunk_size={self.chunk_size} must be >= 0 and "
                             f"left_chunks={self.left_chunks} >= -1")
        for name in ("aux_out_dim", "pred_dim", "joint_dim"):
            if getattr(self, name) < 0:
                raise ValueError(f"ModelConfig: {name}={getattr(self, name)} must be >= 0")
        if self.pred_layers < 1:
            raise ValueError(f"ModelConfig: pred_layers={self.pred_layers} must be >= 1")

    @property
    def streaming(self) -> bool:
        """Chunk-based attention and causal convolution in the encoder."""
        return self.chunk_size > 0


    def with_updates(self, **changes: Any) -> "ModelConfig":
        """A copy with some fields changed (validated)."""
        return replace(self, **changes)


# The mini presets' CMLM (Mask-CTC student only; the AR decoder keeps ESPnet's layout). With ESPnet's
# decoder the masked positions carry the same <mask> embedding, scaled by sqrt(d) to ~10x the positions,
# and absolute positions only: the CMLM stayed at the unigram level (dev masked-token accuracy 6-7 %)
# for 1,500 updates. Relative-position self-attention and embeddings initialised at std d^-0.5 let it
# learn within the budget (docs/RESULTS.md, calibration). The reproduce presets' students also add absolute
# positions (``cmlm_abs_pos``, set in their configs so that older checkpoints of these presets load unchanged).
CMLM_FAST = {"cmlm_rel_pos": True, "cmlm_embed_std": 112**-0.5}

PRESETS: dict[str, ModelConfig] = {
    # Table 2, LibriSpeech AR teacher / same-size NAR: kernel 31 -> 114.97 M (V 4233), 116.15 M (V 5000).
    "L": ModelConfig(d_model=512, heads=8, ffn_dim=2048, cnn_kernel=31),
    # Table 2, AISHELL-1 AR teacher / same-size NAR: kernel 15 -> 46.20 M (V 4233), 46.79 M (V 5000).
    "M": ModelConfig(d_model=256, heads=4, ffn_dim=2048, cnn_kernel=15),
    # Table 2, LibriSpeech ~9x smaller NAR: kernel 15 -> 12.42 M (V 4233), 12.72 M (V 5000).
    "S": ModelConfig(d_model=128, heads=4, ffn_dim=1024, cnn_kernel=15),
    # Table 2, AISHELL-1 ~7x smaller NAR: kernel 15 -> 6.50 M (V 4233).
    "XS": ModelConfig(d_model=128, heads=4, ffn_dim=256, cnn_kernel=15),
    # CPU teacher for the embedded corpora: ~2.6 M parameters at V 256. Its Conv2d subsampling has 32
    # channels instead of d_model: that conv took 45 % of a training step with 112 channels (1.6x faster).
    "mini-teacher": ModelConfig(d_model=112, heads=4, ffn_dim=448, enc_blocks=6, dec_blocks=3, cnn_kernel=15,
                                subsample_channels=32, **CMLM_FAST),
    # CPU student, ~9x smaller than mini-teacher (as S is to L): ~0.28 M parameters at V 256.
    "mini-student": ModelConfig(d_model=48, heads=4, ffn_dim=96, enc_blocks=4, dec_blocks=2, cnn_kernel=15,
                                subsample_channels=32, cmlm_rel_pos=True, cmlm_embed_std=48**-0.5),
}


def get_preset(name: str) -> ModelConfig:
    """The preset ``name``; a clear error lists the known names."""
    if name not in PRESETS:
        raise KeyError(f"unknown model preset {name!r}; known presets: {', '.join(PRESETS)}")
    return PRESETS[name]
