"""Error rates per synthesizer: a set read by several engines (mini-en's -unseen sets) scored engine by engine."""

from __future__ import annotations

from collections.abc import Sequence

from kdlab.data.synth.engines import engine_of
from kdlab.evaluate.metrics import error_rate


def engine_groups(records: Sequence[dict]) -> dict[str, str] | None:
    """Utterance id → engine of its ``voice``; None unless the set holds voices of two or more engines."""
    groups = {}
    for rec in records:
        voice = rec.get("voice")
        if not isinstance(voice, str):
            return None
        try:
            groups[rec["id"]] = engine_of(voice)
        except ValueError:
            return None
    return groups if len(set(groups.values())) > 1 else None


def rates_by_group(ids: Sequence[str], refs: Sequence[str], hyps: Sequence[str], unit: str,
                   groups: dict[str, str]) -> dict[str, float]:
    """Error rate (%) of each group's utterances, groups in first-seen order."""
    out: dict[str, float] = {}
    for name in dict.fromkeys(groups[i] for i in ids):
        keep = [k for k, i in enumerate(ids) if groups[i] == name]
        out[name] = round(error_rate([refs[k] for k in keep], [hyps[k] for k in keep], unit).rate, 2)
    return out
