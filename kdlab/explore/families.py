"""Notebook 07's data layer: the KD families' shipped models on one utterance and on one test set.

The model names are the run names of ``kdlab reproduce --family`` (:data:`kdlab.reproduce.families.FAMILY_RUNS`),
shipped as ``<corpus>/<run>``; each decodes with its run's methods (CTC greedy for the CTC students, greedy
and beam-4 search for the transducers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from kdlab.evaluate.metrics import ErrorStats, error_rate, stats_from_alignment
from kdlab.explore.compare import kl_rows
from kdlab.explore.model import LoadedModel, load_model
from kdlab.explore.outputs import model_features, run_encoder
from kdlab.explore.scoring import normalized, reference_alignment
from kdlab.explore.utterance import Utterance
from kdlab.reproduce.families import FAMILY_RUNS, FamilyRun


def family_models(corpus: str = "mini-en", families: Sequence[str] = tuple(FAMILY_RUNS)) -> list[tuple[FamilyRun, str]]:
    """``(run, spec)`` of every shipped family model of ``corpus``, in table order (missing ones skipped)."""
    from kdlab.pretrained.store import available

    shipped = set(available())
    return [(run, f"{corpus}/{run.name}") for family in families for run in FAMILY_RUNS[family]
            if f"{corpus}/{run.name}" in shipped]


def _features(m: LoadedModel, utt: Utterance) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's input as a batch of one: (1, T, 80) and its length (1,)."""
    feats = model_features(m, utt).unsqueeze(0)
    return feats, torch.tensor([feats.size(1)])


def decode_utterance(m: LoadedModel, utt: Utterance, methods: Sequence[str]) -> dict[str, list[int]]:
    """Token ids of each method's best hypothesis for one utterance."""
    from kdlab.search.decode import decode

    feats, lens = _features(m, utt)
    found = decode(m.model, {"feats": feats, "feat_lens": lens}, list(methods))
    return {method: hyps[0] for method, hyps in found.items()}


def errors_of(m: LoadedModel, utt: Utterance, tokens: Sequence[int]) -> ErrorStats:
    """Errors of one hypothesis against the normalised reference (words or characters)."""
    return stats_from_alignment(reference_alignment(m, utt.text, tokens))


def utterance_rows(utt: Utterance, models: Sequence[tuple[FamilyRun, str]]) -> list[dict[str, object]]:
    """One row per model × method: family, model, method, hypothesis, errors and error rate on ``utt``."""
    rows = []
    for run, spec in models:
        m = load_model(spec)
        for method, tokens in decode_utterance(m, utt, run.methods).items():
            stats = errors_of(m, utt, tokens)
            rows.append({"family": run.family, "model": run.label, "method": method, "hypothesis": m.text(tokens),
                         "errors": stats.errors, "rate %": round(stats.rate, 1)})
    return rows


def test_set_rows(models: Sequence[tuple[FamilyRun, str]], set_name: str = "test-clean", source: str = "check",
                  limit: int | None = None) -> list[dict[str, object]]:
    """Error rate of every model × method on one set (the shipped check set by default)."""
    from kdlab.explore.errors import decode_set

    rows = []
    for run, spec in models:
        m = load_model(spec)
        for method in run.methods:
            d = decode_set(spec, set_name, source, method=method, limit=limit)
            stats = error_rate([normalized(m, r) for r in d.refs], d.hyps, m.unit)
            rows.append({"family": run.family, "model": run.label, "method": method, "utterances": len(d.ids),
                         "rate %": round(stats.rate, 2), "I+D %": round(stats.i_plus_d, 2)})
    return rows


# ----------------------------------------------------------------------------- Inter-KD: heads vs teacher


@dataclass
class HeadView:
    """One CTC head of a student on one utterance: its greedy transcript and per-frame KL to the teacher."""

    model: str
    head: str  # "block k" (intermediate) or "final"
    text: str
    kl: torch.Tensor  # (T',) KL(teacher ‖ head) per encoder frame

    @property
    def mean_kl(self) -> float:
        return float(self.kl.mean())


def head_log_probs(m: LoadedModel, utt: Utterance) -> dict[str, torch.Tensor]:
    """Every CTC head of a CTC student on ``utt``: ``{"block k": (T', V), …, "final": (T', V)}``."""
    if m.kind != "ctc":
        raise ValueError(f"{m.name}: CTC heads belong to a CTC student (kind ctc), this is a {m.kind} model")
    feats, lens = _features(m, utt)
    with torch.inference_mode():
        enc, enc_lens, hidden = m.model.encoder.forward_hidden(feats, lens)
        heads = {f"block {k}": lp[0] for k, lp in zip(m.model.inter_layers, m.model.inter_log_probs(hidden),
                                                      strict=True)}
        heads["final"] = m.model.ctc_log_probs(enc)[0]
    n = int(enc_lens[0])
    return {name: lp[:n] for name, lp in heads.items()}


def head_views(teacher: LoadedModel, students: Sequence[LoadedModel], utt: Utterance) -> list[HeadView]:
    """Each student's heads against the teacher's CTC posteriors (eq 7's summand, per frame)."""
    from kdlab.search.ctc import ctc_greedy

    t_logp = run_encoder(teacher, utt).ctc_logp  # (T', V)
    views = []
    for s in students:
        for head, logp in head_log_probs(s, utt).items():
            tokens = ctc_greedy(logp.unsqueeze(0), torch.tensor([logp.size(0)]))[0].tokens
            views.append(HeadView(s.name, head, s.text(tokens), kl_rows(t_logp, logp)))
    return views


# ----------------------------------------------------------------------------- whole test sets


def card_rows(models: Sequence[tuple[FamilyRun, str]], sets: Sequence[str] = ("test-clean", "test-other")
              ) -> list[dict[str, object]]:
    """The full-test-set error rates on each model's card (measured by ``kdlab reproduce --family``)."""
    from kdlab.pretrained.store import card, parse_spec

    rows = []
    for run, spec in models:
        results = card(*parse_spec(spec)).get("results", {})
        for method in run.methods:
            row: dict[str, object] = {"family": run.family, "model": run.label, "method": method}
            for s in sets:
                found = results.get(s, {}).get(method)
                row[f"{s} %"] = None if found is None else round(found["rate"], 2)
            rows.append(row)
    return rows


# the abstracts' claims, per family: (model that should be better, model it should beat)
CLAIMS = {"inter": [("inter-kd", "inter-final"), ("inter-final", "inter-none")],
          "stream": [("stream-layer", "stream-token"), ("stream-layer-token", "stream-token"),
                     ("stream-token", "stream-none")],
          "rnnt": [("rnnt-onebest", "rnnt-none"), ("rnnt-onebest", "rnnt-lattice")]}


# the kit's reading of a claim that does not show at this scale, by (better, worse) run (docs/KD_FAMILIES.md)
_ONE_HOT = ("the transducer teacher is nearly one-hot on the training utterances' paths (its encoder has seen "
            "them), so its targets add little beyond the labels; the paper's gains come with 860 h of unlabelled "
            "speech this corpus lacks")
KIT_READING = {
    ("inter-kd", "inter-final"): "on 150 utterances a paired bootstrap does not separate the two; Inter-KD's "
                                 "clearest effect is on the intermediate head it distils into (Step 2)",
    ("stream-layer", "stream-token"): "layer-to-layer KD + APC alone beats token KD on test-other only (down-"
                                      "weighting its terms did not change that); added to the token term it "
                                      "gives the best streaming student",
    ("rnnt-onebest", "rnnt-none"): _ONE_HOT,
    ("rnnt-onebest", "rnnt-lattice"): "the KD students fit the references worse than the student without KD "
                                      "(dev RNN-T loss), the full-lattice one most; " + _ONE_HOT,
}
OTHER_READING = "see the measured tables in docs/KD_FAMILIES.md"


@dataclass(frozen=True)
class Claim:
    """One abstract's claim measured: ``better`` should have a lower error rate than ``worse``."""

    family: str
    better: str  # model labels
    worse: str
    a: float  # better's error rate (%)
    b: float  # worse's error rate (%)
    runs: tuple[str, str] = ("", "")  # (better, worse) run names

    @property
    def reading(self) -> str:
        """The kit's reading when the claim does not hold (:data:`KIT_READING`)."""
        return KIT_READING.get(self.runs, OTHER_READING)

    @property
    def holds(self) -> bool:
        return self.a < self.b

    def line(self) -> str:
        return f"{self.family}: {self.better} ({self.a}) below {self.worse} ({self.b})? {'yes' if self.holds else 'no'}"


def claim_results(rows: Sequence[dict[str, object]], models: Sequence[tuple[FamilyRun, str]], column: str
                  ) -> list[Claim]:
    """Every claim of :data:`CLAIMS` whose two models are in ``rows``, measured on ``column`` (first method
    of each model: greedy search)."""
    label = {run.name: run.label for run, _ in models}
    first: dict[object, object] = {}
    for r in rows:
        first.setdefault(r["model"], r.get(column))
    out = []
    for family, claims in CLAIMS.items():
        for better, worse in claims:
            a, b = first.get(label.get(better)), first.get(label.get(worse))
            if a is not None and b is not None:
                out.append(Claim(family, label[better], label[worse], float(a), float(b), (better, worse)))
    return out


def verdicts(rows: Sequence[dict[str, object]], models: Sequence[tuple[FamilyRun, str]], column: str
             ) -> list[str]:
    """One line per claim whose two models are in ``rows``: does the first beat the second on ``column``
    (first method of each model)?"""
    return [c.line() for c in claim_results(rows, models, column)]


def family_tally(claims: Sequence[Claim], column: str) -> list[str]:
    """Per family: how many of its abstract's claims hold on ``column``; then one line per claim that does
    not, with the kit's reading of why (:attr:`Claim.reading`)."""
    lines = []
    for family in dict.fromkeys(c.family for c in claims):
        mine = [c for c in claims if c.family == family]
        lines.append(f"{family}: {sum(c.holds for c in mine)} of {len(mine)} of the abstract's claims hold on "
                     f"{column}")
        lines += [f"  not: {c.better} {c.a} vs {c.worse} {c.b} — kit's reading: {c.reading}"
                  for c in mine if not c.holds]
    return lines


def head_kl_wins(teacher: LoadedModel, better: LoadedModel, worse: LoadedModel, utts: Sequence[Utterance],
                 head: str) -> tuple[int, int]:
    """On how many of ``utts`` ``better``'s ``head`` has a lower mean KL to the teacher's CTC posteriors (eq 7's
    summand) than ``worse``'s same head; returns (wins, utterances)."""
    wins = 0
    for utt in utts:
        kl = {v.model: v.mean_kl for v in head_views(teacher, [better, worse], utt) if v.head == head}
        wins += kl[better.name] < kl[worse.name]
    return wins, len(utts)
