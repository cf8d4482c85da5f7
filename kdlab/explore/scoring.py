"""Scoring transcripts against references the way ``kdlab decode`` scores them: normalised reference (lower
case, no punctuation), words for WER or characters for CER; corpus counts or one utterance's edit operations."""

from __future__ import annotations

from collections.abc import Sequence

from kdlab.data.tokenizer import normalize_text
from kdlab.evaluate.metrics import AlignOp, ErrorStats, align, error_rate, tokens_for_unit
from kdlab.explore.model import LoadedModel
from kdlab.explore.utterance import Utterance


def normalized(m: LoadedModel, text: str) -> str:
    """A transcript as the model's tokenizer sees it (lower case, no punctuation)."""
    return normalize_text(text, m.tokenizer.lang)


def reference_text(m: LoadedModel, utt: Utterance) -> str:
    """The utterance's normalised reference transcript."""
    return normalized(m, utt.text)


def score(m: LoadedModel, utts: Sequence[Utterance], hyps: Sequence[str], unit: str | None = None) -> ErrorStats:
    """Corpus error counts of ``hyps`` against the normalised references, in ``unit`` (default: the model's)."""
    return error_rate([reference_text(m, u) for u in utts], hyps, unit or m.unit)


def reference_units(m: LoadedModel, text: str) -> list[str]:
    """The scoring units of a reference transcript."""
    return tokens_for_unit(normalized(m, text), m.unit)


def hypothesis_units(m: LoadedModel, tokens: Sequence[int]) -> list[str]:
    """The scoring units of a decoded token sequence."""
    return tokens_for_unit(m.text(list(tokens)), m.unit)


def reference_alignment(m: LoadedModel, text: str, tokens: Sequence[int]) -> list[AlignOp]:
    """Minimum-edit alignment (C/S/I/D) of decoded ``tokens`` against the reference ``text``."""
    return align(reference_units(m, text), hypothesis_units(m, tokens))
