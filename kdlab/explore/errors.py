"""Error analysis over whole test sets: decode a set with several models (the Table 1 methods: the teacher's
joint CTC/attention beam 10, the students' Mask-CTC beam 10 of Algorithm 1), then per-utterance S/I/D, totals
per model, confusion pairs, worst utterances and filters, as pandas tables.

Sets are the shipped check sets (``source="check"``, 20 utterances each) or the full test sets of the corpus
the model was trained on (``"full"``, when that corpus exists under ``data/cache/corpora/``; ``"auto"`` takes
them when present). Decodings go through :func:`kdlab.search.decode.decode` on the batches of
``kdlab decode`` and are cached in memory per (model, set, method, source, limit).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from kdlab.evaluate.metrics import DEL, INS, SUB, AlignOp, align, stats_from_alignment, tokens_for_unit
from kdlab.explore.model import load_model
from kdlab.explore.utterance import Utterance

# set name -> corpus manifest (test-unseen: held-out voices of every synthesizer, mini-en only)
SET_FILES = {"test-clean": "test.jsonl", "test-other": "test-other.jsonl", "test-unseen": "test-unseen.jsonl"}
SOURCES = ("check", "full", "auto")
DEFAULT_MODELS = ("mini-en/teacher", "mini-en/student-same-ljca", "mini-en/student-same-skd")
ERROR_TYPES = ("any", "S", "I", "D", "I+D")
ALL = "all"


def short_name(spec: str) -> str:
    """``mini-en/student-same-skd`` -> ``student-same-skd``."""
    return spec.rstrip("/").split("/")[-1]


def model_corpus(spec: str) -> Path | None:
    """The corpus folder a shipped model was trained on (its stored config's ``data.corpus``), or None."""
    from kdlab.checkpoint import load_checkpoint
    from kdlab.pretrained.store import MODEL_FILE, REPO_ROOT, path

    corpus = (load_checkpoint(path(spec) / MODEL_FILE).get("config") or {}).get("data", {}).get("corpus")
    if not corpus:
        return None
    return Path(corpus) if Path(corpus).is_absolute() else REPO_ROOT / corpus


def full_manifest(spec: str, set_name: str) -> Path | None:
    """The full test set ``set_name`` of the model's corpus, when it exists here."""
    corpus = model_corpus(spec)
    manifest = corpus / SET_FILES[set_name] if corpus is not None else None
    return manifest if manifest is not None and manifest.is_file() else None


def set_manifest(spec: str, set_name: str, source: str = "check") -> Path:
    """Manifest of ``set_name`` (test-clean | test-other | test-unseen): the check set, or the full set
    (``full``; ``auto`` falls back to the check set when the corpus is absent)."""
    from kdlab.pretrained.check import check_manifest
    from kdlab.pretrained.store import parse_spec

    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; expected one of {SOURCES}")
    if set_name not in SET_FILES:
        raise ValueError(f"unknown set {set_name!r}; expected one of {tuple(SET_FILES)}")
    if source != "check":
        full = full_manifest(spec, set_name)
        if full is not None:
            return full
        if source == "full":
            raise FileNotFoundError(f"{spec}: the full {set_name} set of its corpus is not here "
                                    f"({model_corpus(spec)}); use source='check' or 'auto'")
    return check_manifest(parse_spec(spec)[0], set_name)


def set_manifests(spec: str, sets: Sequence[str] = tuple(SET_FILES), source: str = "check") -> dict[str, str]:
    """{set name: manifest path} of :func:`set_manifest` for several sets."""
    return {s: str(set_manifest(spec, s, source)) for s in sets}


def table1_method(kind: str) -> str:
    """Table 1: the AR teacher's joint CTC/attention beam 10, the students' Mask-CTC beam 10 (the KD
    families' models: :data:`kdlab.reproduce.eval.KIND_METHOD`)."""
    from kdlab.reproduce.eval import table1_method as method

    return method(kind)


@dataclass
class Decoding:
    """One model's transcripts of one set (references normalised as in ``kdlab decode``)."""

    model: str  # short name, e.g. student-same-skd
    set: str
    method: str
    unit: str  # word (WER) | char (CER)
    ids: list[str] = field(default_factory=list)
    refs: list[str] = field(default_factory=list)
    hyps: list[str] = field(default_factory=list)
    seconds: float = 0.0
    manifest: str = ""


_CACHE: dict[tuple, Decoding] = {}


def decode_set(spec: str, set_name: str, source: str = "check", method: str | None = None,
               limit: int | None = None, max_frames: int = 20000) -> Decoding:
    """Decode ``set_name`` with the shipped model ``spec`` (default: its Table 1 method); cached."""
    manifest = set_manifest(spec, set_name, source)
    m = load_model(spec)
    method = method or table1_method(m.kind)
    key = (spec, str(manifest), method, limit)
    if key not in _CACHE:
        _CACHE[key] = _decode(spec, set_name, manifest, method, limit, max_frames)
    return _CACHE[key]


def _decode(spec: str, set_name: str, manifest: Path, method: str, limit: int | None, max_frames: int) -> Decoding:
    from kdlab.evaluate.sets import load_records, make_batches
    from kdlab.search.decode import decode

    m = load_model(spec)
    out = Decoding(short_name(spec), set_name, method, m.unit, manifest=str(manifest))
    started = time.perf_counter()
    for batch in make_batches(load_records(manifest, limit=limit), m.tokenizer, m.cmvn, max_frames):
        found = decode(m.model, batch, [method])[method]
        out.ids += batch["ids"]
        out.refs += batch["texts"]
        out.hyps += [m.text(tokens) for tokens in found]
    out.seconds = time.perf_counter() - started
    return out


def decode_utterance(specs: Sequence[str], utt: Utterance) -> list[Decoding]:
    """Every model's Table 1 transcript of one utterance held in memory (a user's own recording), each as a
    one-utterance set named after the utterance's condition ("your audio"); its reference must be known."""
    from kdlab.explore.families import decode_utterance as best_tokens
    from kdlab.explore.scoring import reference_text

    if not utt.text.strip():
        raise ValueError(f"{utt.id}: error analysis needs what is said: type it in 'reference'")
    found = []
    for spec in specs:
        m = load_model(spec)
        method, started = table1_method(m.kind), time.perf_counter()
        tokens = best_tokens(m, utt, [method])[method]
        found.append(Decoding(short_name(spec), utt.condition or "your audio", method, m.unit, [utt.id],
                              [reference_text(m, utt)], [m.text(tokens)], time.perf_counter() - started,
                              str(utt.path)))
    return found


def decode_all(specs: Sequence[str] = DEFAULT_MODELS, sets: Sequence[str] = tuple(SET_FILES),
               source: str = "check", limit: int | None = None) -> list[Decoding]:
    """Every model on every set (cached)."""
    return [decode_set(spec, s, source, limit=limit) for spec in specs for s in sets]


# ----------------------------------------------------------------------------- tables


def decoding_table(decodings: Sequence[Decoding]) -> pd.DataFrame:
    """What was decoded: model, set, method, utterances, seconds and the manifest."""
    return pd.DataFrame([{"model": d.model, "set": d.set, "method": d.method, "utterances": len(d.ids),
                          "seconds": round(d.seconds, 1), "manifest": d.manifest} for d in decodings])


def utterance_table(decodings: Sequence[Decoding]) -> pd.DataFrame:
    """One row per model × utterance: reference, hypothesis, S/I/D counts, errors, rate (%), scoring unit
    (word | char) and the alignment ops."""
    rows = []
    for d in decodings:
        for uid, ref, hyp in zip(d.ids, d.refs, d.hyps, strict=True):
            ops = align(tokens_for_unit(ref, d.unit), tokens_for_unit(hyp, d.unit))
            st = stats_from_alignment(ops)
            rows.append({"model": d.model, "set": d.set, "id": uid, "ref": ref, "hyp": hyp, "N": st.n_ref,
                         "S": st.sub, "I": st.ins, "D": st.dele, "errors": st.errors, "rate": round(st.rate, 2),
                         "unit": d.unit, "ops": ops})
    return pd.DataFrame(rows, columns=["model", "set", "id", "ref", "hyp", "N", "S", "I", "D", "errors", "rate",
                                       "unit", "ops"])


def summary_table(utts: pd.DataFrame) -> pd.DataFrame:
    """Per model × set: utterances, reference units N, S/I/D counts, error rate, S and I+D rates (percent of N)."""
    g = utts.groupby(["model", "set"], sort=False)[["N", "S", "I", "D", "errors"]].sum()
    g.insert(0, "utts", utts.groupby(["model", "set"], sort=False).size())
    n = g["N"].where(g["N"] > 0)
    g["rate"] = (100 * g["errors"] / n).round(2)
    g["S %"] = (100 * g["S"] / n).round(2)
    g["I+D %"] = (100 * (g["I"] + g["D"]) / n).round(2)
    return g.reset_index()


def edit_pairs(ops: Sequence[AlignOp], kinds: Sequence[str] = (SUB,)) -> list[tuple[str, str, str]]:
    """``(kind, ref, hyp)`` of the errors of one alignment (``*`` for the missing side of I and D)."""
    return [(op, r if r is not None else "*", h if h is not None else "*") for op, r, h in ops
            if op in kinds and op in (SUB, INS, DEL)]


def confusion_pairs(utts: pd.DataFrame, kinds: Sequence[str] = (SUB,), top: int | None = 20) -> pd.DataFrame:
    """Counts of (ref unit → hyp unit) per model, most frequent first: substitutions by default; ``kinds``
    may add D (ref → *) and I (* → hyp)."""
    rows = [(model, *pair) for model, ops in zip(utts["model"], utts["ops"], strict=True)
            for pair in edit_pairs(ops, kinds)]
    df = pd.DataFrame(rows, columns=["model", "kind", "ref", "hyp"])
    counts = df.groupby(["model", "kind", "ref", "hyp"], sort=False).size().rename("count").reset_index()
    order = {m: i for i, m in enumerate(dict.fromkeys(utts["model"]))}  # models in decoding order
    counts = counts.assign(_m=counts["model"].map(order)).sort_values(
        ["_m", "count", "ref", "hyp"], ascending=[True, False, True, True], kind="stable").drop(columns="_m")
    counts = counts.reset_index(drop=True)
    return counts.groupby("model", sort=False).head(top).reset_index(drop=True) if top else counts


def worst_utterances(utts: pd.DataFrame, n: int = 10, by: str = "errors") -> pd.DataFrame:
    """The ``n`` utterances with the most errors (or highest ``rate``) per model."""
    ranked = utts.sort_values([by, "rate" if by == "errors" else "errors"], ascending=False, kind="stable")
    return ranked.groupby("model", sort=False).head(n).drop(columns=["ops", "unit"])


def side_by_side(utts: pd.DataFrame, value: str = "errors") -> pd.DataFrame:
    """One row per (set, utterance): the reference, then ``value`` (errors, rate, hyp …) of every model."""
    wide = utts.pivot(index=["set", "id"], columns="model", values=value)
    wide = wide[list(dict.fromkeys(utts["model"]))]  # models in decoding order
    refs = utts.drop_duplicates(["set", "id"]).set_index(["set", "id"])["ref"]
    return wide.join(refs).reindex(columns=["ref", *wide.columns]).rename_axis(columns=None)


def error_count(utts: pd.DataFrame, error_type: str) -> pd.Series:
    """Per row: the count of ``error_type`` (any = S + I + D, S, I, D, or I+D)."""
    if error_type not in ERROR_TYPES:
        raise ValueError(f"unknown error type {error_type!r}; expected one of {ERROR_TYPES}")
    if error_type == "any":
        return utts["errors"]
    if error_type == "I+D":
        return utts["I"] + utts["D"]
    return utts[error_type]


def filter_utterances(utts: pd.DataFrame, model: str = ALL, set_name: str = ALL, error_type: str = "any",
                      min_errors: int = 0, text: str = "") -> pd.DataFrame:
    """Rows of ``model`` and ``set_name`` (``"all"``: any) with at least ``min_errors`` errors of
    ``error_type`` (at least one when a type is chosen) whose id, reference or hypothesis contains ``text``."""
    keep = error_count(utts, error_type) >= max(min_errors, 0 if error_type == "any" else 1)
    if model != ALL:
        keep &= utts["model"] == model
    if set_name != ALL:
        keep &= utts["set"] == set_name
    needle = text.strip().lower()
    if needle:
        hay = utts["id"].str.lower() + "\n" + utts["ref"].str.lower() + "\n" + utts["hyp"].str.lower()
        keep &= hay.str.contains(needle, regex=False)
    return utts[keep]


def ordered_ids(filtered: pd.DataFrame, error_type: str = "any") -> list[tuple[str, str]]:
    """(set, id) of the filtered rows, most errors of ``error_type`` first (each utterance once)."""
    ranked = filtered.assign(_n=error_count(filtered, error_type)).sort_values("_n", ascending=False, kind="stable")
    return list(dict.fromkeys(zip(ranked["set"], ranked["id"], strict=True)))


def utterance_alignments(utts: pd.DataFrame, set_name: str, uid: str) -> tuple[str, dict[str, list[AlignOp]]]:
    """The reference of one utterance and every model's alignment ops of it."""
    same = utts[(utts["set"] == set_name) & (utts["id"] == uid)]
    if same.empty:
        raise KeyError(f"no decoded utterance {uid!r} in {set_name!r}")
    return str(same["ref"].iloc[0]), dict(zip(same["model"], same["ops"], strict=True))


def pair_models(utts: pd.DataFrame, x: str, y: str, value: str = "errors", set_name: str = ALL) -> pd.DataFrame:
    """One row per (set, id) decoded by both models: ``<value>_x``, ``<value>_y``, the reference, both
    alignments (``ops_x``, ``ops_y``) and ``diff`` = y − x (negative: ``y`` does better)."""
    part = utts if set_name == ALL else utts[utts["set"] == set_name]
    xs = part[part["model"] == x].set_index(["set", "id"])[[value, "ref", "ops"]]
    ys = part[part["model"] == y].set_index(["set", "id"])[[value, "ops"]]
    both = xs.merge(ys, left_index=True, right_index=True, how="inner", suffixes=("_x", "_y"))
    both["diff"] = both[f"{value}_y"] - both[f"{value}_x"]
    return both


# ----------------------------------------------------------------------------- does KD help the smaller student more?

SIZE_PAIRS = {"same": ("student-same-ljca", "student-same-skd"),
              "smaller": ("student-smaller-ljca", "student-smaller-skd")}  # size -> (L_jca, KD) short names


@dataclass(frozen=True)
class KDGain:
    """One size's L_jca and KD student on one set and method: error rates (%) and Table 1's relative reduction."""

    size: str  # same | smaller
    set: str
    method: str
    ljca: float
    kd: float

    @property
    def reduction(self) -> float:
        """Relative error reduction of KD against L_jca in % (positive: the KD student makes fewer errors)."""
        return 100.0 * (self.ljca - self.kd) / self.ljca if self.ljca > 0 else 0.0


def gains_from_summary(summary: pd.DataFrame, pairs: dict[str, tuple[str, str]] = SIZE_PAIRS) -> list[KDGain]:
    """KD gains per size and set from :func:`summary_table` (the students' Table 1 method, decoded here);
    sizes whose two students were not both decoded are left out."""
    rates = {(r["model"], r["set"]): float(r["rate"]) for _, r in summary.iterrows()}
    sets = list(dict.fromkeys(summary["set"]))
    return [KDGain(size, s, table1_method("maskctc"), rates[(base, s)], rates[(kd, s)])
            for size, (base, kd) in pairs.items() for s in sets if (base, s) in rates and (kd, s) in rates]


def gains_from_cards(corpus: str = "mini-en", sets: Sequence[str] = tuple(SET_FILES),
                     methods: Sequence[str] = ("maskctc_beam10", "ctc_greedy"),
                     pairs: dict[str, tuple[str, str]] = SIZE_PAIRS) -> list[KDGain]:
    """KD gains on the full test sets, from the shipped models' cards (measured by ``kdlab reproduce``), for
    Mask-CTC beam 10 (Table 1) and greedy CTC (eq 3: the branch that fixes the length)."""
    from kdlab.pretrained.store import card, parse_spec

    def rate(name: str, s: str, method: str) -> float | None:
        found = card(*parse_spec(f"{corpus}/{name}")).get("results", {}).get(s, {}).get(method)
        return None if found is None else float(found["rate"])

    out = []
    for method in methods:
        for size, (base, kd) in pairs.items():
            for s in sets:
                a, b = rate(base, s, method), rate(kd, s, method)
                if a is not None and b is not None:
                    out.append(KDGain(size, s, method, a, b))
    return out


def gain_table(gains: Sequence[KDGain]) -> pd.DataFrame:
    """One row per gain: size, set, method, L_jca and KD error rates, relative reduction (%)."""
    return pd.DataFrame([{"size": g.size, "set": g.set, "method": g.method, "L_jca %": round(g.ljca, 2),
                          "KD %": round(g.kd, 2), "rel. red. %": round(g.reduction, 1)} for g in gains])


def smaller_gain_verdicts(gains: Sequence[KDGain]) -> list[str]:
    """Per (set, method) with both sizes: does KD reduce the ~9x smaller student's error more (relatively)
    than the same-size one's? The paper (Table 1) reports relative reductions for both sizes."""
    by = {(g.set, g.method, g.size): g for g in gains}
    lines = []
    for s, method in dict.fromkeys((g.set, g.method) for g in gains):
        same, small = by.get((s, method, "same")), by.get((s, method, "smaller"))
        if same is None or small is None:
            continue
        more = small.reduction > same.reduction
        lines.append(f"{s}, {method}: KD's relative reduction same size {same.reduction:+.1f} % "
                     f"({same.ljca:.2f} → {same.kd:.2f}), smaller {small.reduction:+.1f} % "
                     f"({small.ljca:.2f} → {small.kd:.2f}); does KD help the smaller student more? "
                     f"{'yes' if more else 'no'}; does it help the smaller one at all? "
                     f"{'yes' if small.reduction > 0 else 'no'}")
    return lines


def pair_verdict(utts: pd.DataFrame, x: str, y: str, value: str = "errors") -> str:
    """One line from :func:`pair_models`: on how many utterances ``y`` has fewer, more or as many ``value``
    as ``x`` (the points under, above and on the diagonal of the comparison scatter)."""
    diff = pair_models(utts, x, y, value)["diff"]
    return (f"{y} against {x}, {value} per utterance: fewer on {int((diff < 0).sum())}, more on "
            f"{int((diff > 0).sum())}, as many on {int((diff == 0).sum())} of {len(diff)} utterances")


def size_gains(pairs: dict[str, Sequence[str]], sets: Sequence[str] = tuple(SET_FILES), source: str = "check",
               limit: int | None = None) -> list[KDGain]:
    """Decode each size's (L_jca, KD) pair of shipped students (``{"same": [ljca spec, kd spec], …}``; cached)
    and return their KD gains per set (:func:`gains_from_summary`)."""
    specs = [spec for pair in pairs.values() for spec in pair]
    summary = summary_table(utterance_table(decode_all(specs, sets, source, limit)))
    return gains_from_summary(summary, {size: (short_name(a), short_name(b)) for size, (a, b) in pairs.items()})


# The paper's Table 1 (Gong et al. 2022), error rate A in %: (size, set) -> (L_jca, ++L_S-KD)
PAPER_TABLE1 = {
    ("same", "AISHELL-1 dev"): (5.4, 5.0), ("same", "AISHELL-1 test"): (6.4, 5.4),
    ("same", "LibriSpeech test-clean"): (4.1, 3.3), ("same", "LibriSpeech test-other"): (10.2, 7.8),
    ("smaller", "AISHELL-1 dev"): (7.2, 6.0), ("smaller", "AISHELL-1 test"): (8.5, 6.5),
    ("smaller", "LibriSpeech test-clean"): (5.1, 3.7), ("smaller", "LibriSpeech test-other"): (12.4, 9.2),
}


def paper_gains() -> list[KDGain]:
    """The paper's Table 1 as :class:`KDGain` rows (L_jca against ++L_S-KD, Mask-CTC beam 10), so that
    :func:`smaller_gain_verdicts` answers the same question for the paper's models."""
    return [KDGain(size, s, "paper Table 1", a, b) for (size, s), (a, b) in PAPER_TABLE1.items()]
