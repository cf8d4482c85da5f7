"""Distillation losses from an AR teacher to a Mask-CTC student (Gong et al. 2022, Section 3.2, eq 7–13).

Normalisation (every loss is a scalar averaged over the utterances of the batch, like the CTC loss):

- eq 7  (encoder, frame level): Σ_t over the valid frames of an utterance (padding excluded), then the mean
  over utterances (``norm="utterance"``, the literal eq 7); ``norm="frame"`` divides by the number of valid
  frames in the batch instead.
- eq 8  (encoder, sequence level): Σ_{ŷ∈Ω} P′(ŷ)·(−log Q_ctc(ŷ|X)) per utterance, mean over utterances.
- eq 11 (decoder, frame level): Σ over the masked positions / |y_mask| per utterance, mean over the
  utterances that have at least one masked position.
- eq 12 (decoder, sequence level): Σ_{ŷ∈Ω} P′(ŷ)·(−log Q(ŷ_mask|ŷ_obs,H)) / |ŷ_mask| per utterance, mean
  over utterances.

N-best lists are handled flattened: M hypotheses in all, ``utt (M,)`` says which utterance each belongs to.
Teacher tensors are always detached: the teacher is frozen, so eq 7's P·log P term is a constant and dropped.
"""

from __future__ import annotations

from typing import Callable

import torch

from kdlab.models.ctc import frames_needed
from kdlab.nn.masks import length_mask
from kdlab.tokens import NON_TOKENS

CtcNll = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def check_same_grid(student: torch.Tensor, teacher: torch.Tensor, what: str) -> None:
    """Raise ValueError unless student and teacher tensors share (B, T, V); never broadcast."""
    if student.dim() != 3 or teacher.dim() != 3:
        raise ValueError(f"{what}: expected (B, T, V) tensors, got student {tuple(student.shape)}, "
                         f"teacher {tuple(teacher.shape)}")
    (bs, ts, vs), (bt, tt, vt) = student.shape, teacher.shape
    if bs != bt:
        raise ValueError(f"{what}: batch size differs (student {bs}, teacher {bt})")
    if ts != tt:
        raise ValueError(f"{what}: length differs (student {ts}, teacher {tt}); teacher and student must "
                         "share the frame rate (same subsampling) and the token sequence")
    if vs != vt:
        raise ValueError(f"{what}: vocabulary size differs (student {vs}, teacher {vt}); "
                         "teacher and student must share one tokenizer")


def enc_frame_kd(student_logp: torch.Tensor, teacher_logp: torch.Tensor, lens: torch.Tensor,
                 norm: str = "utterance") -> torch.Tensor:
    """Eq 7, encoder frame-level KD: −Σ_t Σ_c P_t(c) log Q_t(c) over the CTC posteriors.

    student_logp, teacher_logp: (B, T', V) log-probabilities; lens: (B,) valid frames. Padding is excluded.
    norm: "utterance" (Σ over frames, mean over utterances) or "frame" (mean over all valid frames).
    """
    check_same_grid(student_logp, teacher_logp, "encoder frame KD (eq 7)")
    valid = length_mask(lens.to(student_logp.device), student_logp.size(1), strict=True)  # (B, T')
    p = teacher_logp.detach().exp()  # (B, T', V)
    ce = -(p * student_logp).sum(-1)  # (B, T')
    ce = torch.where(valid, ce, torch.zeros_like(ce))
    if norm == "utterance":
        return ce.sum() / max(student_logp.size(0), 1)
    if norm == "frame":
        return ce.sum() / valid.sum().clamp(min=1)
    raise ValueError(f"unknown eq 7 normalisation {norm!r} (expected 'utterance' or 'frame')")


def nbest_weights(scores: torch.Tensor, utt: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Eq 9: P′(ŷ) = P(ŷ) / Σ_{ŷ'∈Ω} P(ŷ'), a softmax of the log-scores within each utterance's N-best.

    scores: (M,) teacher sequence log-scores; utt: (M,) utterance index in [0, batch_size). Returns (M,).
    """
    if scores.shape != utt.shape or scores.dim() != 1:
        raise ValueError(f"scores {tuple(scores.shape)} and utt {tuple(utt.shape)} must be equal 1-D shapes")
    if not torch.isfinite(scores).all():
        raise ValueError("N-best log-scores must be finite")
    scores = scores.detach().double()
    peak = torch.full((batch_size,), float("-inf"), dtype=scores.dtype, device=scores.device)
    peak = peak.scatter_reduce(0, utt, scores, reduce="amax")  # (B,)
    e = (scores - peak[utt]).exp()  # (M,)
    total = torch.zeros(batch_size, dtype=e.dtype, device=e.device).index_add(0, utt, e)  # (B,)
    return (e / total[utt]).float()


def enc_seq_kd(student_logp: torch.Tensor, lens: torch.Tensor, hyps: torch.Tensor, hyp_lens: torch.Tensor,
               utt: torch.Tensor, weights: torch.Tensor, ctc_nll: CtcNll) -> torch.Tensor:
    """Eq 8 (with eq 9 weights), encoder sequence-level KD: −Σ_{ŷ∈Ω} P′(ŷ) log Q_ctc(ŷ|X).

    student_logp: (B, T', V) CTC log-probs; lens: (B,); hyps: (M, S) teacher hypotheses (padded);
    hyp_lens: (M,); utt: (M,) utterance of each hypothesis; weights: (M,) P′.
    ctc_nll(logp (M, T', V), lens (M,), targets (M, S), target_lens (M,)) -> (M,) is −log Q_ctc (eq 3).
    A hypothesis the student cannot align (Q_ctc = 0: more labels + repeats than its T' frames) is left out.
    """
    batch = student_logp.size(0)
    lens = lens.to(student_logp.device)
    keep = frames_needed(hyps, hyp_lens) <= lens[utt]  # (M,)
    if not bool(keep.any()):
        return student_logp.sum() * 0.0
    utt, hyps, hyp_lens, weights = utt[keep], hyps[keep], hyp_lens[keep], weights[keep]
    nll = ctc_nll(student_logp[utt], lens[utt], hyps, hyp_lens)  # (M',)
    return (weights.detach().to(nll.dtype) * nll).sum() / max(batch, 1)


def teacher_token_dist(teacher_logits: torch.Tensor) -> torch.Tensor:
    """Teacher decoder posteriors P_t(c|y<t, H) of eq 11, restricted to the tokens of y.

    The AR teacher's softmax also covers <blank>, <sos/eos> and <mask>, none of which can be a token y_t
    that the CMLM student predicts at a masked position; those classes get probability 0 and the rest is
    renormalised (a softmax over the regular tokens, <unk> included). (B, L, V) logits → (B, L, V) probs.
    """
    excluded = torch.zeros(teacher_logits.size(-1), dtype=torch.bool, device=teacher_logits.device)
    excluded[list(NON_TOKENS)] = True
    return teacher_logits.detach().masked_fill(excluded, float("-inf")).softmax(-1)


def dec_frame_kd(student_logits: torch.Tensor, teacher_probs: torch.Tensor,
                 mask: torch.Tensor) -> torch.Tensor:
    """Eq 11, decoder frame-level KD at the masked positions, normalised by |y_mask|.

    student_logits: (B, L, V) CMLM logits; teacher_probs: (B, L, V) from `teacher_token_dist` (position t
    holds P_t(·|y<t, H)); mask: (B, L) bool, True where the student's input was <mask>. The student's
    log Q_t is a log-softmax over its full vocabulary (its <mask>/<blank>/<sos/eos> classes included), so
    the loss also pushes the student's mass off classes the teacher never predicts.
    """
    check_same_grid(student_logits, teacher_probs, "decoder frame KD (eq 11)")
    if mask.shape != student_logits.shape[:2]:
        raise ValueError(f"decoder frame KD (eq 11): mask {tuple(mask.shape)} does not match logits "
                         f"{tuple(student_logits.shape[:2])}")
    logq = student_logits.log_softmax(-1)  # (B, L, V)
    ce = -(teacher_probs.detach() * logq).sum(-1)  # (B, L)
    ce = torch.where(mask, ce, torch.zeros_like(ce))
    n_mask = mask.sum(-1)  # (B,)
    per_utt = ce.sum(-1) / n_mask.clamp(min=1)  # (B,)
    return per_utt.sum() / (n_mask > 0).sum().clamp(min=1)


def dec_seq_kd(student_logits: torch.Tensor, hyps: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor,
               batch_size: int) -> torch.Tensor:
    """Eq 12, decoder sequence-level KD: −Σ_{ŷ∈Ω} P′(ŷ)/|ŷ_mask| · log Q(ŷ_mask|ŷ_obs, H).

    student_logits: (M, L, V) CMLM logits for the masked hypotheses; hyps: (M, L) hypothesis tokens
    (padding ignored); mask: (M, L) bool masked positions; weights: (M,) P′. Mean over batch_size utterances.
    """
    if student_logits.shape[:2] != hyps.shape or mask.shape != hyps.shape:
        raise ValueError(f"decoder sequence KD (eq 12): logits {tuple(student_logits.shape)}, hyps "
                         f"{tuple(hyps.shape)} and mask {tuple(mask.shape)} disagree")
    if hyps.size(0) == 0:
        return student_logits.sum() * 0.0
    logq = student_logits.log_softmax(-1)  # (M, L, V)
    target = torch.where(mask, hyps, torch.zeros_like(hyps))  # (M, L), valid class ids
    tok_logq = logq.gather(-1, target.unsqueeze(-1)).squeeze(-1)  # (M, L)
    tok_logq = torch.where(mask, tok_logq, torch.zeros_like(tok_logq))
    n_mask = mask.sum(-1)  # (M,)
    per_hyp = -tok_logq.sum(-1) / n_mask.clamp(min=1)  # (M,)
    return (weights.detach() * per_hyp).sum() / max(batch_size, 1)


def kd_objective(terms: dict[str, torch.Tensor | None], beta_f: float, beta_s: float, gamma_enc: float,
                 gamma_dec: float) -> torch.Tensor:
    """Eq 10 inside eq 13: γ_enc·(β_F·L_F + β_S·L_S)_enc + γ_dec·(β_F·L_F + β_S·L_S)_dec.

    terms: "enc_f" (eq 7), "enc_s" (eq 8), "dec_f" (eq 11), "dec_s" (eq 12); a missing/None term is
    one whose weight is zero (not computed). The caller adds L_jca of the student (eq 6).
    """
    weight = term_weights(beta_f, beta_s, gamma_enc, gamma_dec)
    unknown = set(terms) - set(weight)
    if unknown:
        raise ValueError(f"unknown KD term(s) {sorted(unknown)}; expected {sorted(weight)}")
    total: torch.Tensor | None = None
    for name, w in weight.items():
        value = terms.get(name)
        if value is None:
            if w != 0:
                raise ValueError(f"KD term {name!r} has weight {w} but was not computed")
            continue
        total = w * value if total is None else total + w * value
    if total is None:
        raise ValueError("no KD term computed (all weights are zero)")
    return total


def term_weights(beta_f: float, beta_s: float, gamma_enc: float, gamma_dec: float) -> dict[str, float]:
    """The eq 13 coefficient of each KD term (γ·β), as used by `kd_objective`."""
    return {"enc_f": gamma_enc * beta_f, "enc_s": gamma_enc * beta_s,
            "dec_f": gamma_dec * beta_f, "dec_s": gamma_dec * beta_s}
