"""Token-probability KD into a CTC student: the final head only (``kd.method: ctc``) or the final and the
intermediate CTC heads (``kd.method: inter``, Inter-KD, Yoon et al. 2022).

Per head k the loss is Hinton et al.'s (2015) softened frame-level KL from the teacher's CTC posteriors
P (the teacher's *final* head, the only one it has) to the student head's posteriors Q_k:

    KD_k = τ² · Σ_t KL(P_t^τ ‖ Q_k,t^τ),     P^τ = softmax(log P / τ),  Q^τ = softmax(log Q / τ)

over the valid frames t (padding excluded), normalised like eq 7 (``kd.enc_frame_norm``: "utterance" sums
over an utterance's frames and averages over utterances, the scale of the CTC loss; "frame" averages over
all valid frames). τ² keeps the gradient scale independent of τ (Hinton et al. 2015). The cross entropy is
`kdlab.kd.losses.enc_frame_kd` (eq 7); the teacher's entropy, a constant, is subtracted so that the loss is
the KL itself (0 when the student equals the teacher).

Heads are combined the way the student combines its own CTC losses (InterCTC, Lee & Watanabe 2021, with
w = the student's ``inter_ctc_weight``): each head's objective is L_ctc,k + λ·KD_k, so

    L = (1 − w)·L_ctc + w·mean_k L_ctc,k  +  λ·[(1 − w)·KD_final + w·mean_k KD_k]     ("inter")
    L = (1 − w)·L_ctc + w·mean_k L_ctc,k  +  λ·KD_final                                ("ctc")

(λ = ``kd.weight``). This is our reading of the abstract ("additionally transfers the teacher's knowledge to
the intermediate CTC layers"); the paper's exact weighting is not stated there. The total KD weight is λ in
both methods, so "inter" differs from "ctc" only in where the teacher's knowledge goes.
"""

from __future__ import annotations

from typing import Callable

import torch

from kdlab.config import ConfigError
from kdlab.kd.config import KDConfig
from kdlab.kd.distiller import check_same_frames
from kdlab.kd.losses import enc_frame_kd
from kdlab.kd.teacher import teacher_posteriors

FeatMap = Callable[[torch.Tensor], torch.Tensor]


def soft_kl(student_logp: torch.Tensor, teacher_logp: torch.Tensor, lens: torch.Tensor,
            temperature: float = 1.0, norm: str = "utterance") -> torch.Tensor:
    """τ²·Σ_t KL(P_t^τ ‖ Q_t^τ) over the valid frames (Hinton et al. 2015), normalised by ``norm`` (eq 7).

    student_logp, teacher_logp: (B, T', V) log-probabilities; lens: (B,) valid frames. The teacher is
    detached. Returns a scalar.
    """
    s = (student_logp / temperature).log_softmax(-1)  # (B, T', V): softmax(logits/τ), shift-invariant
    t = (teacher_logp.detach() / temperature).log_softmax(-1)  # (B, T', V)
    cross = enc_frame_kd(s, t, lens, norm)  # −Σ P^τ log Q^τ
    entropy = enc_frame_kd(t, t, lens, norm)  # −Σ P^τ log P^τ, a constant
    return temperature**2 * (cross - entropy)


def combine_heads(final: torch.Tensor, inter: list[torch.Tensor], inter_weight: float) -> torch.Tensor:
    """(1 − w)·KD_final + w·mean_k KD_k, InterCTC's weighting of the heads; ``inter`` empty: KD_final."""
    if not inter:
        return final
    return (1.0 - inter_weight) * final + inter_weight * torch.stack(inter).mean()


class InterKD:
    """KD from a frozen CTC-capable teacher (kinds ar, maskctc, ctc) into a CTC student's heads.

    ``cfg.method`` "ctc": the final head only; "inter": the final and every intermediate head (Inter-KD).
    Called as ``loss, metrics = distiller(student, batch, student_out)`` with ``loss`` = λ·(combined KD);
    metrics ``kd_final``, ``kd_inter`` (mean over the intermediate heads, "inter" only) and ``kd``.
    """

    def __init__(self, teacher: torch.nn.Module, cfg: KDConfig, feat_map: FeatMap | None = None) -> None:
        if cfg.method not in ("ctc", "inter"):
            raise ConfigError(f"kd.method: InterKD handles 'ctc' and 'inter', got {cfg.method!r}")
        self.teacher = teacher.eval().requires_grad_(False)
        self.cfg = cfg
        self.feat_map = feat_map  # student-normalised features → teacher-normalised (None: same CMVN)
        self.checked = False

    def __call__(self, student: torch.nn.Module, batch: dict, student_out: dict
                 ) -> tuple[torch.Tensor, dict[str, float]]:
        """The weighted KD loss of one batch and its terms as floats."""
        self.teacher.eval()  # stays frozen even if a caller switched every module to train()
        feats = batch["feats"]  # (B, T, n_mels)
        if self.feat_map is not None:
            feats = self.feat_map(feats)
        t_out = teacher_posteriors(self.teacher, feats, batch["feat_lens"])
        if not self.checked:
            check_heads(self.cfg.method, student_out, t_out)
            self.checked = True
        final, inter = self._head_terms(student_out, t_out["ctc_logp"])
        weight = getattr(getattr(student, "cfg", None), "inter_ctc_weight", 0.0)
        loss = self.cfg.weight * combine_heads(final, inter, weight)
        metrics = {"kd_final": float(final.detach()), "kd": float(loss.detach())}
        if inter:
            metrics["kd_inter"] = float(torch.stack(inter).mean().detach())
        return loss, metrics

    def _head_terms(self, s_out: dict, teacher_logp: torch.Tensor
                    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """KD_final and, for "inter", KD_k of every intermediate head (teacher_logp (B, T', V))."""
        lens, tau, norm = s_out["enc_lens"], self.cfg.temperature, self.cfg.enc_frame_norm
        final = soft_kl(s_out["ctc_logp"], teacher_logp, lens, tau, norm)
        if self.cfg.method != "inter":
            return final, []
        return final, [soft_kl(lp, teacher_logp, lens, tau, norm) for lp in s_out["inter_logp"]]

    def to(self, device: torch.device | str) -> InterKD:
        self.teacher.to(device)
        return self


def check_heads(method: str, s_out: dict, t_out: dict) -> None:
    """The student must have the heads ``method`` distils into, the teacher's vocabulary and frame rate."""
    if "ctc_logp" not in s_out:
        raise ConfigError(f"kd.method {method!r} needs a student with a CTC head (model.kind ctc, maskctc or ar)")
    if method == "inter" and not s_out.get("inter_logp"):
        raise ConfigError("kd.method 'inter' needs intermediate CTC heads: set model.config.inter_ctc_layers "
                          "(model.kind ctc)")
    check_same_frames(s_out, t_out)
