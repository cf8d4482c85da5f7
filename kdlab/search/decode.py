"""``decode(model, batch, methods)``: one encoder pass, several search methods.

Method names: ``ctc_greedy``, ``ctc_prefix_beam`` (``ctc_prefix_beam5`` sets the beam), ``attention_beam``
(AR models: joint CTC/attention, ``attention_beam10``), ``maskctc_greedy``, ``maskctc_beam``
(Mask-CTC models: Algorithm 1, ``maskctc_beam5``), ``rnnt_greedy``, ``rnnt_beam`` (transducers,
``kdlab.search.transducer``). A trailing number overrides the ``beam`` option.

Long audio (docs/BAD_INPUT.md): the encoder's self-attention costs time and memory quadratic in the
utterance length, so every method has a maximum utterance length, :data:`MAX_SECONDS`. The CTC methods
(``ctc_greedy``, ``ctc_prefix_beam``) have none: a batch decoded with CTC methods only whose longest
utterance exceeds :data:`CTC_CHUNK_ABOVE_S` is encoded in windows of :data:`CTC_CHUNK_S` seconds (plus
:data:`CTC_CONTEXT_S` of context on each side, dropped after encoding), so memory grows linearly with the
length. Every other method refuses a longer utterance with a :class:`LongAudioError` naming it and its
duration (split the recording, or decode it with a CTC method).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import torch

from kdlab.data.features import FRAME_SHIFT_S
from kdlab.errors import UserError
from kdlab.nn.masks import length_mask, subsampled_lengths
from kdlab.nn.subsampling import SUBSAMPLING
from kdlab.search.ctc import ctc_greedy, ctc_prefix_beam
from kdlab.search.joint_beam import StepFn, joint_beam_search
from kdlab.search.maskctc import MLMFn, maskctc_greedy
from kdlab.search.maskctc_beam import maskctc_beam
from kdlab.tokens import MASK

BASE_METHODS = ("ctc_greedy", "ctc_prefix_beam", "attention_beam", "maskctc_greedy", "maskctc_beam",
                "rnnt_greedy", "rnnt_beam")
BEAM_METHODS = ("ctc_prefix_beam", "attention_beam", "maskctc_beam", "rnnt_beam")
AR_ONLY = ("attention_beam",)
MASKCTC_ONLY = ("maskctc_greedy", "maskctc_beam")
RNNT_ONLY = ("rnnt_greedy", "rnnt_beam")
CTC_METHODS = ("ctc_greedy", "ctc_prefix_beam")
_NAME = re.compile(r"^([a-z_]+?)(\d+)?$")

MAX_SECONDS = {  # longest utterance each method decodes in one piece (None: CTC, chunked above the limit)
    "ctc_greedy": None, "ctc_prefix_beam": None,
    "attention_beam": 60.0, "maskctc_greedy": 60.0, "maskctc_beam": 60.0,
    "rnnt_greedy": 60.0, "rnnt_beam": 60.0,
}
CTC_CHUNK_ABOVE_S = 60.0  # CTC-only batches with a longer utterance are encoded in windows
CTC_CHUNK_S = 30.0  # kept frames per window
CTC_CONTEXT_S = 2.0  # extra encoder context on each side of a window (its frames are dropped)


class LongAudioError(UserError, ValueError):
    """An utterance longer than a decoding method's maximum; the message names it and its duration."""


@dataclass
class DecodeOptions:
    beam: int = 10  # beam size (paper: 10 for the AR joint search and Mask-CTC Algorithm 1)
    ctc_weight: float = 0.3  # λ of the joint CTC/attention score (paper Sec. 4.2)
    p_thr: float = 0.99  # Mask-CTC confidence threshold
    K: int = 2  # Mask-CTC tokens filled per iteration
    maxlen_ratio: float = 1.0  # AR: max output length = ratio × encoder frames
    end_rule: str = "beam"  # AR: "beam" (ESPnet's: <eos> competes for the beam) | "exact" (search.attention)


def parse_method(name: str) -> tuple[str, int | None]:
    """``"maskctc_beam5"`` -> ``("maskctc_beam", 5)``; raises ``ValueError`` for unknown names."""
    m = _NAME.match(name.strip())
    base, num = (m.group(1), m.group(2)) if m else (name, None)
    if base not in BASE_METHODS or (num is not None and base not in BEAM_METHODS):
        raise ValueError(f"unknown decoding method {name!r}; expected one of {BASE_METHODS} "
                         f"(beam methods may end in a beam size, e.g. maskctc_beam5)")
    if num is not None and int(num) < 1:
        raise ValueError(f"decoding method {name!r}: beam size must be >= 1")
    return base, None if num is None else int(num)


def check_methods(model: torch.nn.Module, methods: list[str]) -> None:
    """Raise ``ValueError`` if a method does not fit the model kind (AR vs Mask-CTC)."""
    for name in methods:
        base, _ = parse_method(name)
        if base in AR_ONLY and not hasattr(model, "decoder_step"):
            raise ValueError(f"method {name!r} needs an AR model (with decoder_step)")
        if base in MASKCTC_ONLY and not hasattr(model, "mlm_logits"):
            raise ValueError(f"method {name!r} needs a Mask-CTC model (with mlm_logits)")
        if base in RNNT_ONLY and not hasattr(model, "joiner"):
            raise ValueError(f"method {name!r} needs a transducer model (with a joiner)")
        if base in CTC_METHODS and not hasattr(model, "ctc"):
            raise ValueError(f"method {name!r} needs a model with a CTC head")


def make_step_fn(model: Any, enc: torch.Tensor, enc_lens: torch.Tensor) -> StepFn:
    """Wrap ``model.decoder_step`` for :func:`joint_beam_search`; re-indexes ``enc`` only when rows change."""
    memo: dict[str, torch.Tensor] = {}

    def step(ys: torch.Tensor, rows: torch.Tensor, cache: Any) -> tuple[torch.Tensor, Any]:
        if "rows" not in memo or not torch.equal(memo["rows"], rows):
            memo.update(rows=rows, enc=enc[rows], lens=enc_lens[rows])
        return model.decoder_step(ys, memo["enc"], memo["lens"], cache)

    return step


def make_mlm_fn(model: Any, enc: torch.Tensor, enc_lens: torch.Tensor) -> MLMFn:
    """Wrap ``model.mlm_logits`` for the Mask-CTC searches (rows = utterance of each sequence).

    The decoder's source keys/values are projected once per utterance here, not at every iteration for
    every hypothesis; hypotheses of one utterance share them (one attention call per utterance when every
    utterance has as many). The searches only read the posteriors of ``<mask>`` slots, so the last decoder
    block computes just those; the logits at other slots are zeros.
    """
    sources = model.decoder.sources(enc, enc_lens)  # one SourceKV (B, H, T', d_k) per layer

    def mlm(ys: torch.Tensor, ys_lens: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        group = run_length(rows)
        pos, used = masked_slots(ys, ys_lens)  # (N, Q) x2
        srcs = [s.select(rows, group) for s in sources]
        logits = model.mlm_logits(None, None, ys, ys_lens, srcs, positions=pos)  # (N, Q, V)
        return spread(logits, pos, used, ys.size(1))

    return mlm


def run_length(rows: torch.Tensor) -> int:
    """g when ``rows`` (N,) is runs of g equal values each (hypotheses grouped by utterance), else 1."""
    _, counts = torch.unique_consecutive(rows, return_counts=True)
    g = int(counts[0])
    return g if bool((counts == g).all()) else 1


def masked_slots(ys: torch.Tensor, ys_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``<mask>`` slots of each row: ys (N, L), ys_lens (N,) -> positions (N, Q) and used (N, Q) bool,
    Q = the most masks in a row (>= 1); unused entries point at slot 0."""
    m = (ys == MASK) & length_mask(ys_lens, ys.size(1))  # (N, L)
    q = max(1, int(m.sum(dim=1).max()))
    order = m.to(torch.int8).argsort(dim=1, descending=True, stable=True)[:, :q]  # masked slots first
    used = m.gather(1, order)
    return order.masked_fill(~used, 0), used


def spread(logits: torch.Tensor, pos: torch.Tensor, used: torch.Tensor, length: int) -> torch.Tensor:
    """(N, Q, V) logits at ``pos`` -> (N, L, V), zeros at the other slots."""
    out = logits.new_zeros(logits.size(0), length + 1, logits.size(2))  # slot L takes the unused entries
    idx = pos.masked_fill(~used, length)[..., None].expand_as(logits)
    return out.scatter_(1, idx, logits)[:, :length]


def run_method(
    name: str, model: Any, enc: torch.Tensor | None, enc_lens: torch.Tensor, ctc_logp: torch.Tensor | None,
    opts: DecodeOptions,
) -> list[list[int]]:
    """Apply one method to an encoded batch (``enc`` is None for chunked CTC); returns the best token ids
    per utterance."""
    base, num = parse_method(name)
    beam = num or opts.beam
    if base in RNNT_ONLY:
        from kdlab.search.transducer import transducer_beam, transducer_greedy

        if base == "rnnt_greedy":
            return transducer_greedy(model, enc, enc_lens)
        return [hyps[0].tokens for hyps in transducer_beam(model, enc, enc_lens, beam=beam)]
    if base == "ctc_greedy":
        return [r.tokens for r in ctc_greedy(ctc_logp, enc_lens)]
    if base == "ctc_prefix_beam":
        return [hyps[0].tokens for hyps in ctc_prefix_beam(ctc_logp, enc_lens, beam=beam)]
    if base == "attention_beam":
        found = joint_beam_search(ctc_logp, enc_lens, make_step_fn(model, enc, enc_lens), beam=beam,
                                  ctc_weight=opts.ctc_weight, nbest=1, maxlen_ratio=opts.maxlen_ratio,
                                  end_rule=opts.end_rule)
        return [hyps[0].tokens for hyps in found]
    mlm = make_mlm_fn(model, enc, enc_lens)
    if base == "maskctc_greedy":
        return maskctc_greedy(ctc_logp, enc_lens, mlm, p_thr=opts.p_thr, K=opts.K)
    found = maskctc_beam(ctc_logp, enc_lens, mlm, beam=beam, p_thr=opts.p_thr, K=opts.K)
    return [hyps[0].tokens for hyps in found]


def check_lengths(batch: dict, methods: list[str]) -> None:
    """Raise :class:`LongAudioError` for the first utterance longer than a method's :data:`MAX_SECONDS`."""
    lens = batch["feat_lens"].tolist()
    if not lens:
        return
    ids = batch.get("ids") or [f"#{i}" for i in range(len(lens))]
    longest = max(range(len(lens)), key=lambda i: lens[i])
    seconds = lens[longest] * FRAME_SHIFT_S
    for name in methods:
        limit = MAX_SECONDS[parse_method(name)[0]]
        if limit is not None and seconds > limit:
            raise LongAudioError(
                f"utterance {ids[longest]}: {seconds:.1f} s of audio is longer than the {limit:g} s that "
                f"{name} decodes (memory grows with the square of the length); split the recording, or "
                f"decode it with ctc_greedy / ctc_prefix_beam, which cut long audio into windows")


def needs_chunking(batch: dict, methods: list[str]) -> bool:
    """True when every method is a CTC method and the longest utterance exceeds CTC_CHUNK_ABOVE_S."""
    only_ctc = all(parse_method(m)[0] in CTC_METHODS for m in methods)
    return only_ctc and int(batch["feat_lens"].max()) * FRAME_SHIFT_S > CTC_CHUNK_ABOVE_S


def chunked_ctc_log_probs(model: Any, feats: torch.Tensor, chunk_s: float = CTC_CHUNK_S,
                          context_s: float = CTC_CONTEXT_S) -> torch.Tensor:
    """CTC log-probabilities (T', V) of one utterance's features (T, D), encoded in windows.

    Window k keeps encoder frames [k*C, (k+1)*C) and sees ``context_s`` more audio on each side; encoder
    frame j depends on feature frames 4j .. 4j+6, so the kept frames line up with a whole-utterance
    encoding and T' = ((T - 1) // 2 - 1) // 2 exactly. Peak memory depends on the window, not on T.
    """
    total = int(subsampled_lengths(torch.tensor(feats.size(0))))
    chunk = max(1, int(chunk_s / (FRAME_SHIFT_S * SUBSAMPLING)))
    context = int(context_s / (FRAME_SHIFT_S * SUBSAMPLING))
    pieces = []
    for start in range(0, total, chunk):
        end = min(total, start + chunk)
        lo, hi = max(0, start - context), min(total, end + context)
        window = feats[SUBSAMPLING * lo: min(feats.size(0), SUBSAMPLING * hi + 3)]  # (n, D)
        n = torch.tensor([window.size(0)], device=feats.device)
        enc, _ = model.encode(window[None], n)  # (1, hi - lo, d)
        pieces.append(model.ctc_log_probs(enc)[0, start - lo: end - lo])
    return torch.cat(pieces)  # (T', V)


def encode_ctc_chunked(model: Any, feats: torch.Tensor, feat_lens: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch's CTC log-probabilities (B, T'max, V) and lengths, each utterance encoded in windows."""
    rows = [chunked_ctc_log_probs(model, feats[b, : int(n)]) for b, n in enumerate(feat_lens.tolist())]
    lens = torch.tensor([r.size(0) for r in rows], device=feats.device)
    out = rows[0].new_zeros(len(rows), int(lens.max()), rows[0].size(1))
    for b, r in enumerate(rows):
        out[b, : r.size(0)] = r
    return out, lens


def decode(
    model: Any, batch: dict, methods: list[str], timings: dict[str, float] | None = None, **opts: Any
) -> dict[str, list[list[int]]]:
    """Encode ``batch`` once and decode it with every method in ``methods``.

    ``opts`` are :class:`DecodeOptions` fields (beam, ctc_weight, p_thr, K, maxlen_ratio, end_rule). If ``timings``
    is given, seconds are added under ``"encoder"`` and under each method name.
    Returns ``{method: [token ids per utterance]}`` in batch order. An utterance longer than a method's
    :data:`MAX_SECONDS` is a :class:`LongAudioError`; CTC-only batches of long audio are chunked.
    """
    options = DecodeOptions(**opts)
    check_methods(model, methods)
    check_lengths(batch, methods)
    dev = next(model.parameters()).device
    with torch.inference_mode():
        t0 = time.perf_counter()
        feats, feat_lens = batch["feats"].to(dev), batch["feat_lens"].to(dev)
        if needs_chunking(batch, methods):
            enc = None
            ctc_logp, enc_lens = encode_ctc_chunked(model, feats, feat_lens)  # (B, T', V)
        else:
            enc, enc_lens = model.encode(feats, feat_lens)  # (B, T', D)
            ctc_logp = model.ctc_log_probs(enc) if hasattr(model, "ctc") else None  # (B, T', V)
        _add(timings, "encoder", t0)
        out = {}
        for name in methods:
            t0 = time.perf_counter()
            out[name] = run_method(name, model, enc, enc_lens, ctc_logp, options)
            _add(timings, name, t0)
    return out


def _add(timings: dict[str, float] | None, key: str, t0: float) -> None:
    if timings is not None:
        timings[key] = timings.get(key, 0.0) + time.perf_counter() - t0
