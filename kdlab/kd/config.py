"""Configuration of knowledge transfer and distillation from an AR teacher to a NAR student (Section 3.2).

The loss weights follow eq 10 and eq 13:

    L = L_jca(student) + γ_enc·(β_F·L_F-KD + β_S·L_S-KD)_enc + γ_dec·(β_F·L_F-KD + β_S·L_S-KD)_dec

The paper trains in two stages (Section 4.2): stage 1 from scratch with frame-level KD only (β_F = 1, β_S = 0,
γ_enc = 0.5, γ_dec = 0.3; 80 epochs), stage 2 fine-tunes with sequence-level KD added (β_F = β_S = 1,
γ_enc = γ_dec = 0.5; 20 epochs). The N-best list Ω of eq 8–9 has |Ω| = 10 from the teacher's joint
CTC/attention beam search (beam 10, CTC weight 0.3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from kdlab.config import DictConfig
from kdlab.search.joint_beam import END_RULES

ON_MISMATCH = ("error", "recompute")
# "ar-nar": the paper's eq 7–13 (Mask-CTC student); the others are the related KD families
# (docs/KD_FAMILIES.md): "ctc" token-probability KD on the final CTC head, "inter" Inter-KD, "layer"
# layer-to-layer KD + APC for a streaming student, "onebest" / "lattice" for a transducer student.
METHODS = ("ar-nar", "ctc", "inter", "layer", "onebest", "lattice")
# the teacher kinds each method accepts
TEACHER_KINDS = {"ar-nar": ("ar",), "ctc": ("ar", "maskctc", "ctc"), "inter": ("ar", "maskctc", "ctc"),
                 "layer": ("ar", "maskctc", "ctc"), "onebest": ("transducer",), "lattice": ("transducer",)}
ENC_FRAME_NORMS = ("utterance", "frame")


@dataclass
class KDConfig(DictConfig):
    """Knowledge-distillation settings; round-trips through a plain dict (YAML) with ``to_dict`` /
    ``from_dict`` (:class:`kdlab.config.DictConfig`)."""

    CONFIG_KEY: ClassVar[str] = "kd"
    UNKNOWN_KEYS: ClassVar[str] = "unknown KD config key(s) {keys}; known: {known}"

    enabled: bool = False            # off: the student trains on L_jca (eq 6) alone
    teacher: str = ""                # path of the AR teacher checkpoint (epoch-N.pt or an average)
    beta_f: float = 1.0              # β_F, frame-level KD weight (eq 10)
    beta_s: float = 0.0              # β_S, sequence-level KD weight (eq 10)
    gamma_enc: float = 0.5           # γ_enc, encoder (CTC) KD weight (eq 13)
    gamma_dec: float = 0.3           # γ_dec, decoder (CMLM) KD weight (eq 13)
    nbest: int = 10                  # |Ω|, hypotheses kept per utterance (eq 8–9)
    beam: int = 10                   # teacher beam size for the N-best search
    ctc_weight: float = 0.3          # CTC weight in the teacher's joint CTC/attention search
    end_rule: str = "beam"           # its end rule: "beam" (ESPnet's, <eos> competes) | "exact"
    nbest_cache: str = ""            # N-best cache file (JSON lines); "" → <run_dir>/nbest.jsonl
    on_mismatch: str = "error"       # cache built by another teacher/tokenizer: "error" | "recompute"
    enc_frame_norm: str = "utterance"  # eq 7: "utterance" (Σ_t, mean over utterances) | "frame" (frame mean)
    nbest_max_frames: int = 8000     # padded feature frames per batch of the teacher's N-best search
    seed: int = 0                    # seed of the hypothesis masking of eq 12
    # --- the related KD families (method != "ar-nar"): L = L_student + weight·L_KD
    method: str = "ar-nar"           # one of METHODS
    weight: float = 1.0              # λ of the family's KD loss
    temperature: float = 1.0         # softmax temperature of the family KL terms (teacher and student)
    teacher_layers: list = field(default_factory=list)  # "layer": teacher blocks (1-based) for the aux_layers
    layer_weight: float = 1.0        # "layer": weight of the layer-to-layer term
    apc_weight: float = 1.0          # "layer": weight of the APC term
    apc_shift: int = 2               # "layer": frames (after subsampling) the APC heads predict ahead
    apc_target: str = "teacher"      # "layer": APC predicts the teacher's layer | "aux" the student's own aux
    token_weight: float = 0.0        # "layer": weight of an added token-probability (final CTC) term

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the field when a setting is out of range."""
        for name in ("beta_f", "beta_s", "gamma_enc", "gamma_dec"):
            if getattr(self, name) < 0:
                raise ValueError(f"KDConfig.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("nbest", "beam", "nbest_max_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"KDConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.nbest > self.beam:
            raise ValueError(f"KDConfig.nbest ({self.nbest}) cannot exceed KDConfig.beam ({self.beam})")
        if not 0.0 <= self.ctc_weight <= 1.0:
            raise ValueError(f"KDConfig.ctc_weight must be in [0, 1], got {self.ctc_weight}")
        if self.end_rule not in END_RULES:
            raise ValueError(f"KDConfig.end_rule must be one of {END_RULES}, got {self.end_rule!r}")
        if self.on_mismatch not in ON_MISMATCH:
            raise ValueError(f"KDConfig.on_mismatch must be one of {ON_MISMATCH}, got {self.on_mismatch!r}")
        if self.enc_frame_norm not in ENC_FRAME_NORMS:
            raise ValueError(
                f"KDConfig.enc_frame_norm must be one of {ENC_FRAME_NORMS}, got {self.enc_frame_norm!r}"
            )
        if self.method not in METHODS:
            raise ValueError(f"KDConfig.method must be one of {METHODS}, got {self.method!r}")
        for name in ("weight", "layer_weight", "apc_weight", "token_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"KDConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.apc_target not in ("teacher", "aux"):
            raise ValueError(f"KDConfig.apc_target must be teacher or aux, got {self.apc_target!r}")
        if self.temperature <= 0 or self.apc_shift < 1:
            raise ValueError(f"KDConfig.temperature ({self.temperature}) must be > 0 and apc_shift "
                             f"({self.apc_shift}) >= 1")
        if self.enabled and not self.teacher:
            raise ValueError("KDConfig.enabled is true but KDConfig.teacher (checkpoint path) is empty")

    @property
    def uses_nbest(self) -> bool:
        """Sequence-level KD (eq 8, 12) needs the teacher's N-best lists."""
        return (self.enabled and self.method == "ar-nar" and self.beta_s > 0
                and (self.gamma_enc > 0 or self.gamma_dec > 0))

    @classmethod
    def stage1(cls, teacher: str, **overrides: Any) -> KDConfig:
        """Paper stage 1: frame-level KD from scratch (β_F=1, β_S=0, γ_enc=0.5, γ_dec=0.3; 80 epochs)."""
        base = dict(enabled=True, teacher=str(teacher), beta_f=1.0, beta_s=0.0, gamma_enc=0.5, gamma_dec=0.3)
        return cls(**{**base, **overrides})

    @classmethod
    def stage2(cls, teacher: str, **overrides: Any) -> KDConfig:
        """Paper stage 2: add sequence-level KD (β_F=β_S=1, γ_enc=γ_dec=0.5; 20 epochs fine-tuning)."""
        base = dict(enabled=True, teacher=str(teacher), beta_f=1.0, beta_s=1.0, gamma_enc=0.5, gamma_dec=0.5)
        return cls(**{**base, **overrides})


