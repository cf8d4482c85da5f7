"""The frozen AR teacher's outputs: live posteriors (eq 7, eq 11) and the cached N-best lists Ω (eq 8–9, 12).

Live vs cached. Frame posteriors are computed live, in the same step as the student: the teacher then sees
exactly the student's features (SpecAugment, speed perturbation and all), so eq 7 compares posteriors of the
same input frame by frame, and eq 11 reads the teacher decoder under teacher forcing on the same reference.
Caching them would need one (T', V) tensor per utterance and augmentation draw, far more disk than a mini
teacher's forward pass costs. N-best lists are different: a joint CTC/attention beam search runs one batched
decoder step per output token plus the CTC prefix scoring, far more than one forward pass, and its result is
a set of token sequences (targets for the whole utterance, whatever the augmentation). So Ω is searched once
on clean features (teacher in eval mode, no SpecAugment, no speed perturbation) and cached by utterance id;
speed-perturbed copies keep their id and reuse it.

Cache format (JSON lines): a header line ``{"format": "kdlab-nbest-1", "teacher_sha256",
"tokenizer_sha256", "beam", "nbest", "ctc_weight", "end_rule"}``, then one line per utterance
``{"id": ..., "hyps": [[tokens, log_score], ...]}``, best first (log_score = the joint search score).
On reuse the teacher checkpoint's sha256, the tokenizer's hash and the search settings must match (a cache
without ``end_rule`` was searched with the "exact" rule).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from kdlab.checkpoint import sha256_file  # noqa: F401 (re-exported)
from kdlab.data.files import atomic_file
from kdlab.data.tokenizer import sha256_dir, tokenizer_sha256  # noqa: F401 (re-exported)
from kdlab.errors import UserError
from kdlab.models.ar import add_sos_eos
from kdlab.tokens import IGNORE_ID

CACHE_FORMAT = "kdlab-nbest-1"
Entries = dict[str, list[tuple[list[int], float]]]


class NBestCacheMismatch(UserError, ValueError):
    """A cached N-best list was made by another teacher, tokenizer or search setting."""


# ----------------------------------------------------------------------------- the cache


@dataclass
class NBestCache:
    """Teacher N-best lists: utterance id → [(tokens, log score)] best first, plus the identities."""

    teacher_sha256: str
    tokenizer_sha256: str
    beam: int
    nbest: int
    ctc_weight: float
    end_rule: str = "beam"  # of the joint beam search (kdlab.search.joint_beam.END_RULES)
    entries: Entries = field(default_factory=dict)

    def header(self) -> dict[str, Any]:
        return {"format": CACHE_FORMAT, "teacher_sha256": self.teacher_sha256,
                "tokenizer_sha256": self.tokenizer_sha256, "beam": self.beam, "nbest": self.nbest,
                "ctc_weight": self.ctc_weight, "end_rule": self.end_rule}

    def save(self, path: str | Path) -> Path:
        """Write atomically (temp file + rename): a crash never leaves a half-written cache."""
        with atomic_file(path) as f:
            f.write(json.dumps(self.header()) + "\n")
            for utt_id, hyps in self.entries.items():
                rows = [[list(map(int, toks)), float(score)] for toks, score in hyps]
                f.write(json.dumps({"id": utt_id, "hyps": rows}, ensure_ascii=False) + "\n")
        return Path(path)

    def mismatches(self, expected: dict[str, Any]) -> list[str]:
        """Header fields that differ from ``expected`` (same keys as `header`), as readable strings."""
        mine = self.header()
        return [f"{k}: cache has {mine.get(k)!r}, expected {v!r}" for k, v in expected.items()
                if mine.get(k) != v]

    def lookup(self, utt_id: str) -> list[tuple[list[int], float]]:
        """The N-best list of one utterance; a missing id raises KeyError naming it."""
        try:
            return self.entries[utt_id]
        except KeyError:
            raise KeyError(f"utterance {utt_id!r} has no teacher N-best list in the cache "
                           f"({len(self.entries)} utterances cached)") from None


def load_nbest_cache(path: str | Path) -> NBestCache:
    """Read a cache written by `NBestCache.save`; malformed lines raise ValueError naming file and line."""
    path = Path(path)
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    if not lines:
        raise ValueError(f"{path}: empty N-best cache")
    try:
        head = json.loads(lines[0])
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:1: bad N-best cache header ({err})") from err
    if not isinstance(head, dict) or head.get("format") != CACHE_FORMAT:
        raise ValueError(f"{path}:1: not a kdlab N-best cache (format {CACHE_FORMAT!r} expected)")
    cache = NBestCache(head["teacher_sha256"], head["tokenizer_sha256"], int(head["beam"]),
                       int(head["nbest"]), float(head["ctc_weight"]), str(head.get("end_rule", "exact")))
    for n, line in enumerate(lines[1:], start=2):
        cache.entries.update([_parse_entry(line, f"{path}:{n}")])
    return cache


def _parse_entry(line: str, where: str) -> tuple[str, list[tuple[list[int], float]]]:
    try:
        row = json.loads(line)
        hyps = [([int(t) for t in toks], float(score)) for toks, score in row["hyps"]]
        utt_id = str(row["id"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{where}: bad N-best entry ({err})") from err
    if not hyps:
        raise ValueError(f"{where}: utterance {utt_id!r} has an empty N-best list")
    return utt_id, hyps


# ----------------------------------------------------------------------------- batches of hypotheses


@dataclass
class NBestBatch:
    """The N-best lists of a batch, flattened: M hypotheses in all.

    tokens (M, S) int64 padded with IGNORE_ID; lens (M,); utt (M,) index of the utterance in the batch;
    scores (M,) teacher log-scores (turned into P′ by eq 9).
    """

    tokens: torch.Tensor
    lens: torch.Tensor
    utt: torch.Tensor
    scores: torch.Tensor

    @property
    def size(self) -> int:
        return int(self.lens.numel())


def make_nbest_batch(cache: NBestCache, ids: list[str], device: torch.device | str = "cpu",
                     nbest: int | None = None) -> NBestBatch:
    """Collect the cached N-best lists (the first ``nbest`` of each) of the utterances ``ids``."""
    rows: list[list[int]] = []
    utt: list[int] = []
    scores: list[float] = []
    for b, utt_id in enumerate(ids):
        for toks, score in cache.lookup(utt_id)[:nbest]:
            rows.append(toks)
            utt.append(b)
            scores.append(score)
    width = max((len(r) for r in rows), default=0)
    tokens = torch.full((len(rows), max(width, 1)), IGNORE_ID, dtype=torch.long)  # (M, S)
    for m, r in enumerate(rows):
        tokens[m, : len(r)] = torch.tensor(r, dtype=torch.long)
    lens = torch.tensor([len(r) for r in rows], dtype=torch.long)  # (M,)
    return NBestBatch(tokens.to(device), lens.to(device), torch.tensor(utt, dtype=torch.long, device=device),
                      torch.tensor(scores, dtype=torch.float64, device=device))


# ----------------------------------------------------------------------------- live teacher outputs


@torch.no_grad()
def teacher_posteriors(teacher: torch.nn.Module, feats: torch.Tensor, feat_lens: torch.Tensor,
                       tokens: torch.Tensor | None = None, token_lens: torch.Tensor | None = None) -> dict:
    """Frozen-teacher outputs for one batch: ``ctc_logp`` (B, T', V), ``enc_lens`` (B,), and, when the
    reference is given, ``dec_logits`` (B, L, V) with position t = P_t(·|y<t, H) under teacher forcing."""
    enc, enc_lens = teacher.encode(feats, feat_lens)  # (B, T', D), (B,)
    out = {"ctc_logp": teacher.ctc_log_probs(enc), "enc_lens": enc_lens}  # (B, T', V)
    if tokens is not None and token_lens is not None:
        ys_in, _ = add_sos_eos(tokens, token_lens)  # [<sos>] + y, as in the teacher's training
        logits = teacher.decoder_logits(enc, enc_lens, ys_in, token_lens + 1)  # (B, L+1, V)
        out["dec_logits"] = logits[:, : tokens.size(1)]  # drop the <eos> prediction: (B, L, V)
    return out


# ----------------------------------------------------------------------------- building the N-best lists


@torch.no_grad()
def search_nbest(teacher: torch.nn.Module, feats: torch.Tensor, feat_lens: torch.Tensor, beam: int,
                 nbest: int, ctc_weight: float, end_rule: str = "beam") -> list[list[tuple[list[int], float]]]:
    """Batched joint CTC/attention beam search of the teacher: per utterance [(tokens, joint log score)]."""
    from kdlab.search.joint_beam import joint_beam_search

    enc, enc_lens = teacher.encode(feats, feat_lens)  # (B, T', D), (B,)
    ctc_logp = teacher.ctc_log_probs(enc)  # (B, T', V)

    def step_fn(ys: torch.Tensor, rows: torch.Tensor, cache: Any) -> tuple[torch.Tensor, Any]:
        return teacher.decoder_step(ys, enc[rows], enc_lens[rows], cache)

    found = joint_beam_search(ctc_logp, enc_lens, step_fn, beam=beam, ctc_weight=ctc_weight, nbest=nbest,
                              end_rule=end_rule)
    return [[(list(h.tokens), float(h.score)) for h in hyps] for hyps in found]


def compute_nbest(teacher: torch.nn.Module, batches: Iterable[dict], beam: int, nbest: int,
                  ctc_weight: float, device: torch.device | str = "cpu", end_rule: str = "beam") -> Entries:
    """N-best lists for every utterance of ``batches`` (clean features: no SpecAugment / speed perturbation).

    The teacher is put in eval mode; batches are dicts with ``ids``, ``feats`` (B, T, 80), ``feat_lens`` (B,).
    """
    teacher.eval()
    entries: Entries = {}
    for batch in batches:
        feats, lens = batch["feats"].to(device), batch["feat_lens"].to(device)
        found = search_nbest(teacher, feats, lens, beam, nbest, ctc_weight, end_rule)
        for utt_id, hyps in zip(batch["ids"], found, strict=True):
            if not hyps:
                raise RuntimeError(f"utterance {utt_id!r}: the teacher's beam search returned no hypothesis")
            entries[utt_id] = hyps
    return entries


def build_or_load_nbest(path: str | Path, expected: NBestCache, ids: list[str],
                        batches: Callable[[], Iterable[dict]], teacher: torch.nn.Module,
                        on_mismatch: str = "error", device: torch.device | str = "cpu",
                        log: Callable[[str], None] = print) -> NBestCache:
    """Reuse the cache at ``path`` when its identities and settings equal ``expected``'s header and it
    covers every utterance in ``ids``; otherwise raise NBestCacheMismatch (``on_mismatch="error"``) or
    search again and overwrite (``"recompute"``).

    ``expected`` carries the identities and settings (its entries are ignored); ``batches()`` yields the
    clean training batches and is called only when a search is needed.
    """
    path = Path(path)
    if path.is_file():
        cached = load_nbest_cache(path)
        problems = cached.mismatches({k: v for k, v in expected.header().items() if k != "format"})
        missing = [i for i in ids if i not in cached.entries]
        if missing:
            problems.append(f"{len(missing)} training utterance(s) not cached (e.g. {missing[0]!r})")
        if not problems:
            log(f"kd: reusing teacher N-best lists {path} ({len(cached.entries)} utterances)")
            return cached
        if on_mismatch != "recompute":
            raise NBestCacheMismatch(f"{path}: N-best cache does not fit this teacher/tokenizer/data: "
                                     + "; ".join(problems) + " (delete it or set kd.on_mismatch=recompute)")
        log(f"kd: {path} is stale ({'; '.join(problems)}); searching again")
    fresh = NBestCache(expected.teacher_sha256, expected.tokenizer_sha256, expected.beam, expected.nbest,
                       expected.ctc_weight, expected.end_rule)
    fresh.entries = compute_nbest(teacher, batches(), expected.beam, expected.nbest, expected.ctc_weight,
                                  device, expected.end_rule)
    missing = [i for i in ids if i not in fresh.entries]
    if missing:
        raise RuntimeError(f"kd: the N-best search skipped {len(missing)} utterance(s), e.g. {missing[0]!r}")
    fresh.save(path)
    log(f"kd: wrote teacher N-best lists for {len(fresh.entries)} utterances to {path}")
    return fresh
