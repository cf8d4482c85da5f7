"""Layer-to-layer KD into a streaming student through auxiliary non-streaming branches, plus an APC-style
future-prediction term (``kd.method: layer``; Shim et al. 2023, "Knowledge distillation from non-streaming
to streaming ASR encoder using auxiliary non-streaming layer"; APC: Chung et al. 2019).

The streaming student (``model.kind: ctc``, ``chunk_size > 0``, ``aux_layers`` = [k_1, …]) returns, per aux
layer i, the output S_i (B, T', d_t) of its auxiliary non-streaming branch on block k_i and the output A_i
(B, T', d_t) of the APC head on block k_i's streaming output (``kdlab/models/ctc_model.py``). With
H_i (B, T', d_t) the output of teacher block ``kd.teacher_layers[i]`` (the teacher sees full context, and
so does S_i: both extract features with the same context, the point of the auxiliary branches):

    L_layer = mean_i  N_t D(S_i,t, H_i,t)                  t < len
    L_apc   = mean_i  N_t D(A_i,t, G_i,t+n)                t + n < len,  n = ``kd.apc_shift``
    D(x, y) = mean_d |x_d − y_d|  −  log σ(cos(x, y))      (L1 + cosine, DistilHuBERT, Chang et al. 2022)
    L_KD    = λ·(w_layer·L_layer + w_apc·L_apc + w_tok·KD_final)

N_t is ``kd.enc_frame_norm``: "utterance" sums over an utterance's frames and averages over utterances (the
scale of the CTC loss, eq 7), "frame" averages over all counted frames. KD_final is the token-probability
term of ``kd.method: ctc`` (``kdlab.kd.inter.soft_kl``, the teacher's final CTC posteriors), off unless
``kd.token_weight`` > 0. λ = ``kd.weight``, w_* = ``kd.layer_weight``, ``kd.apc_weight``,
``kd.token_weight``. Gradients of L_layer reach the streaming blocks through the aux branches.

Readings (the abstract fixes neither): the APC target G_i is the *teacher's* layer H_i at t + n
(``kd.apc_target: teacher``, the default: a KD loss in which the streaming layer predicts the future context
that only the non-streaming teacher has seen); ``kd.apc_target: aux`` uses the student's own aux branch
output S_i at t + n, detached (self-distillation, no teacher needed for this term). The distance D is
DistilHuBERT's layer loss; APC's original L1 is its first half.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from kdlab.config import ConfigError
from kdlab.kd.config import KDConfig
from kdlab.kd.inter import soft_kl
from kdlab.nn.masks import length_mask

FeatMap = Callable[[torch.Tensor], torch.Tensor]
APC_TARGETS = ("teacher", "aux")


def frame_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """D(x, y) per frame: mean_d |x − y| − log σ(cos(x, y)); x, y (B, T, D) -> (B, T)."""
    l1 = (x - y).abs().mean(-1)  # (B, T)
    cos = F.cosine_similarity(x, y, dim=-1, eps=1e-8)  # (B, T)
    return l1 - F.logsigmoid(cos)


def masked_reduce(per_frame: torch.Tensor, valid: torch.Tensor, norm: str) -> torch.Tensor:
    """per_frame (B, T), valid (B, T) bool -> scalar: "utterance" Σ_t / B, "frame" mean over valid frames."""
    total = torch.where(valid, per_frame, torch.zeros_like(per_frame)).sum()
    if norm == "utterance":
        return total / max(per_frame.size(0), 1)
    if norm == "frame":
        return total / valid.sum().clamp(min=1)
    raise ValueError(f"unknown frame normalisation {norm!r} (expected 'utterance' or 'frame')")


def layer_loss(student: torch.Tensor, target: torch.Tensor, lens: torch.Tensor, norm: str = "utterance"
               ) -> torch.Tensor:
    """Layer-to-layer term of one layer pair: student (B, T', D), target (B, T', D) (detached), lens (B,)."""
    valid = length_mask(lens.to(student.device), student.size(1), strict=True)  # (B, T')
    return masked_reduce(frame_distance(student, target.detach()), valid, norm)


def apc_loss(pred: torch.Tensor, target: torch.Tensor, lens: torch.Tensor, shift: int,
             norm: str = "utterance") -> torch.Tensor:
    """APC term: pred (B, T', D) at frame t against target (B, T', D) at t + shift, for t + shift < len."""
    if shift < 1:
        raise ValueError(f"apc shift must be >= 1, got {shift}")
    b, t = pred.shape[:2]
    if shift >= t:
        return pred.sum() * 0.0  # no frame has a target that far ahead
    valid = length_mask((lens.to(pred.device) - shift).clamp(min=0), t - shift, strict=True)  # (B, T'-n)
    per_frame = frame_distance(pred[:, : t - shift], target[:, shift:].detach())  # (B, T'-n)
    return masked_reduce(per_frame, valid, norm)


class LayerKD:
    """Layer-to-layer KD + APC from a frozen full-context teacher into a streaming student with aux branches.

    Called as ``loss, metrics = distiller(student, batch, student_out)``; metrics ``kd_layer``, ``kd_apc``,
    ``kd_token`` (when ``token_weight`` > 0) and ``kd``.
    """

    def __init__(self, teacher: torch.nn.Module, cfg: KDConfig, feat_map: FeatMap | None = None,
                 apc_target: str | None = None) -> None:
        """``apc_target``: overrides ``cfg.apc_target`` ("teacher" | "aux")."""
        apc_target = cfg.apc_target if apc_target is None else apc_target
        if cfg.method != "layer":
            raise ConfigError(f"kd.method: LayerKD handles 'layer', got {cfg.method!r}")
        if apc_target not in APC_TARGETS:
            raise ConfigError(f"LayerKD: apc_target must be one of {APC_TARGETS}, got {apc_target!r}")
        n_blocks = len(teacher.encoder.blocks)
        bad = [k for k in cfg.teacher_layers if not isinstance(k, int) or not 1 <= k <= n_blocks]
        if not cfg.teacher_layers or bad:
            raise ConfigError(f"kd.teacher_layers {list(cfg.teacher_layers)}: need teacher blocks in "
                              f"1..{n_blocks}, one per student aux layer")
        self.teacher = teacher.eval().requires_grad_(False)
        self.cfg, self.feat_map, self.apc_target = cfg, feat_map, apc_target
        self.checked = False

    def __call__(self, student: torch.nn.Module, batch: dict, student_out: dict
                 ) -> tuple[torch.Tensor, dict[str, float]]:
        """The weighted KD loss of one batch and its terms as floats."""
        t_out = self._teacher_outputs(batch)
        if not self.checked:
            check_layers(self.cfg, student_out, t_out)
            self.checked = True
        terms = self._terms(student_out, t_out)
        weights = {"layer": self.cfg.layer_weight, "apc": self.cfg.apc_weight, "token": self.cfg.token_weight}
        loss = self.cfg.weight * sum(weights[name] * value for name, value in terms.items())
        metrics = {f"kd_{name}": float(value.detach()) for name, value in terms.items()}
        metrics["kd"] = float(loss.detach())
        return loss, metrics

    @torch.no_grad()
    def _teacher_outputs(self, batch: dict) -> dict:
        """The teacher's chosen block outputs (list of (B, T', d_t)), enc_lens, and CTC log-probs if needed."""
        self.teacher.eval()  # stays frozen even if a caller switched every module to train()
        feats = batch["feats"]  # (B, T, n_mels)
        if self.feat_map is not None:
            feats = self.feat_map(feats)
        enc, enc_lens, hidden = self.teacher.encoder.forward_hidden(feats, batch["feat_lens"])
        out = {"layers": [hidden[k - 1] for k in self.cfg.teacher_layers], "enc_lens": enc_lens}
        if self.cfg.token_weight > 0:
            out["ctc_logp"] = self.teacher.ctc_log_probs(enc)  # (B, T', V)
        return out

    def _terms(self, s_out: dict, t_out: dict) -> dict[str, torch.Tensor]:
        """L_layer, L_apc and (optionally) the token term, unweighted."""
        lens, norm = s_out["enc_lens"], self.cfg.enc_frame_norm
        pairs = list(zip(s_out["aux"], s_out["apc"], t_out["layers"], strict=True))
        terms = {"layer": torch.stack([layer_loss(s, h, lens, norm) for s, _, h in pairs]).mean()}
        targets = [h if self.apc_target == "teacher" else s for s, _, h in pairs]
        terms["apc"] = torch.stack([apc_loss(a, g, lens, self.cfg.apc_shift, norm)
                                    for (_, a, _), g in zip(pairs, targets, strict=True)]).mean()
        if self.cfg.token_weight > 0:
            terms["token"] = soft_kl(s_out["ctc_logp"], t_out["ctc_logp"], lens, self.cfg.temperature, norm)
        return terms

    def to(self, device: torch.device | str) -> LayerKD:
        self.teacher.to(device)
        return self


def check_layers(cfg: KDConfig, s_out: dict, t_out: dict) -> None:
    """The student must have aux branches, one per teacher layer, of the teacher's width and frame rate."""
    if not s_out.get("aux"):
        raise ConfigError("kd.method 'layer' needs a student with auxiliary branches: set "
                          "model.config.aux_layers (model.kind ctc)")
    if len(s_out["aux"]) != len(cfg.teacher_layers):
        raise ConfigError(f"kd.teacher_layers {list(cfg.teacher_layers)} must name one teacher block per "
                          f"student aux layer ({len(s_out['aux'])} of them)")
    ds, dt = s_out["aux"][0].size(-1), t_out["layers"][0].size(-1)
    if ds != dt:
        raise ConfigError(f"the student's aux branches output {ds} dims but the teacher's layers have {dt}: "
                          f"set model.config.aux_out_dim: {dt}")
    if not torch.equal(s_out["enc_lens"].cpu(), t_out["enc_lens"].cpu()):
        raise ConfigError(f"KD: encoder frame counts differ (student {s_out['enc_lens'].tolist()}, teacher "
                          f"{t_out['enc_lens'].tolist()}); teacher and student must share the subsampling")
    if "ctc_logp" in t_out and s_out["ctc_logp"].size(-1) != t_out["ctc_logp"].size(-1):
        raise ConfigError("KD: the student's and the teacher's vocabularies differ; both must use one tokenizer")
