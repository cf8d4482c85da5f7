"""The searches of one utterance with their traces, for the notebooks (eq 3, 5, Algorithm 1, joint beam).

Thin calls of :mod:`kdlab.search` on :class:`~kdlab.explore.outputs.Outputs`; the search code is the same
that ``kdlab decode`` runs, only with ``trace=True``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from kdlab.explore.model import LoadedModel
from kdlab.explore.outputs import Outputs
from kdlab.search import ctc_forced_align, ctc_greedy, joint_beam_search, maskctc_beam, maskctc_greedy
from kdlab.search.decode import make_mlm_fn, make_step_fn
from kdlab.search.maskctc import mlm_log_posteriors
from kdlab.search.types import AttentionBeamTrace, CTCGreedyTrace, CTCResult, Hyp, MaskBeamTrace, MaskCTCTrace, Segment
from kdlab.tokens import MASK


def greedy(out: Outputs) -> tuple[CTCResult, CTCGreedyTrace]:
    """Greedy CTC (eq 3's collapse of the best path): tokens, confidences, spans and the per-frame path."""
    enc, lens, logp = out.batch()
    results, traces = ctc_greedy(logp, lens, trace=True)
    return results[0], traces[0]


def forced_alignment(m: LoadedModel, out: Outputs, text: str) -> list[Segment]:
    """The best CTC path that spells ``text`` (Viterbi over the trellis): one segment per token."""
    return ctc_forced_align(out.ctc_logp, m.tokenizer.encode(text))


def _need_student(m: LoadedModel) -> None:
    if m.kind != "maskctc":
        raise ValueError(f"{m.name} is an AR model: Mask-CTC decoding needs a Mask-CTC student")


def maskctc(m: LoadedModel, out: Outputs, p_thr: float = 0.99, K: int = 2) -> tuple[list[int], MaskCTCTrace]:
    """Easy-first Mask-CTC (greedy CTC, masks under ``p_thr``, K tokens per CMLM call, eq 5) with its trace."""
    _need_student(m)
    enc, lens, logp = out.batch()
    with torch.inference_mode():
        tokens, traces = maskctc_greedy(logp, lens, make_mlm_fn(m.model, enc, lens), p_thr=p_thr, K=K, trace=True)
    return tokens[0], traces[0]


def maskctc_beam_search(m: LoadedModel, out: Outputs, beam: int = 10, p_thr: float = 0.99,
                        K: int = 2) -> tuple[list[Hyp], MaskBeamTrace]:
    """Algorithm 1 (beam ``B`` over the mask filling): the final beam, best first, and the per-iteration trace."""
    _need_student(m)
    enc, lens, logp = out.batch()
    with torch.inference_mode():
        hyps, traces = maskctc_beam(logp, lens, make_mlm_fn(m.model, enc, lens), beam=beam, p_thr=p_thr, K=K,
                                    trace=True)
    return hyps[0], traces[0]


def cmlm_posteriors_fn(m: LoadedModel, out: Outputs) -> Callable[[torch.Tensor], torch.Tensor]:
    """The student's CMLM exactly as Algorithm 1 calls it: hypotheses ys (H, L) of this utterance, with
    ``<mask>`` slots, -> log p_mlm(y_l | y_obs, H) (H, L, V) over the predictable tokens (eq 4). Only the
    ``<mask>`` slots' rows are meaningful (the decoder's last block computes just those)."""
    _need_student(m)
    enc, lens, _ = out.batch()
    with torch.inference_mode():
        mlm = make_mlm_fn(m.model, enc, lens)

    def posteriors(ys: torch.Tensor) -> torch.Tensor:
        n = ys.size(0)
        with torch.inference_mode():
            return mlm_log_posteriors(mlm(ys, torch.full((n,), ys.size(1)), torch.zeros(n, dtype=torch.long)))

    return posteriors


def ar_beam_search(m: LoadedModel, out: Outputs, beam: int = 10, ctc_weight: float = 0.3,
                   end_rule: str = "beam") -> tuple[list[Hyp], AttentionBeamTrace]:
    """The teacher's joint CTC/attention beam search (``end_rule`` "beam" = ESPnet's, or "exact")."""
    if m.kind != "ar":
        raise ValueError(f"{m.name} is a Mask-CTC student: the joint beam search needs the AR teacher")
    enc, lens, logp = out.batch()
    with torch.inference_mode():
        hyps, traces = joint_beam_search(logp, lens, make_step_fn(m.model, enc, lens), beam=beam,
                                         ctc_weight=ctc_weight, trace=True, end_rule=end_rule)
    return hyps[0], traces[0]


def cmlm_log_probs(m: LoadedModel, out: Outputs, ys_in: list[int]) -> torch.Tensor:
    """The student's CMLM log-posteriors p(y_l | y_obs, H) (eq 4) for an input with ``<mask>`` slots -> (L, V)."""
    _need_student(m)
    enc, lens, _ = out.batch()
    ys = torch.tensor([ys_in])
    with torch.inference_mode():
        logits = m.model.mlm_logits(enc, lens, ys, torch.tensor([len(ys_in)]))  # (1, L, V)
    return logits[0].log_softmax(-1)


def teacher_forced_log_probs(m: LoadedModel, out: Outputs, tokens: list[int]) -> torch.Tensor:
    """The AR decoder's log p(y_l | y_<l, H) along ``tokens`` (teacher forcing, eq 11's P) -> (L, V)."""
    from kdlab.tokens import SOS_EOS

    if m.kind != "ar":
        raise ValueError(f"{m.name}: teacher forcing needs the AR teacher")
    enc, lens, _ = out.batch()
    ys = torch.tensor([[SOS_EOS, *tokens]])
    with torch.inference_mode():
        logits = m.model.decoder_logits(enc, lens, ys, torch.tensor([ys.size(1)]))  # (1, L+1, V)
    return logits[0, : len(tokens)].log_softmax(-1)


def masked_input(tokens: list[int], masked: list[bool]) -> list[int]:
    """``tokens`` with ``<mask>`` where ``masked`` (the CMLM's y_obs input)."""
    return [MASK if hide else t for t, hide in zip(tokens, masked, strict=True)]
