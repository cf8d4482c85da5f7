"""Notebook 07, streaming students: when each token is emitted, chunk by chunk, against full context.

A streaming CTC student (``kdlab.search.streaming.StreamingCTC``) emits a token in the chunk that holds the
first frame of its CTC run, once the chunk's input (plus the subsampling's look-ahead) has arrived. The
emission delay of a token is that arrival time minus the time of its first frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kdlab.data.features import FRAME_SHIFT_S
from kdlab.explore.model import LoadedModel
from kdlab.explore.outputs import model_features
from kdlab.explore.utterance import Utterance
from kdlab.nn.subsampling import SUBSAMPLING
from kdlab.search.streaming import LOOKAHEAD_FRAMES, StreamingCTC, latency_ms
from kdlab.tokens import BLANK

FRAME_S = FRAME_SHIFT_S * SUBSAMPLING  # seconds per encoder frame (40 ms)


@dataclass
class Emission:
    """One emitted token: its id and piece, the encoder frame where its CTC run starts, and when it is out (s)."""

    token: int
    piece: str
    frame: int
    chunk: int
    emitted_s: float

    @property
    def delay_s(self) -> float:
        """Seconds from the token's first frame to its emission."""
        return self.emitted_s - self.frame * FRAME_S


def _run_starts(logp: torch.Tensor, prev: int) -> list[tuple[int, int]]:
    """(frame, token) of every CTC run start in a (C, V) chunk, ``prev`` = last id of the chunk before."""
    starts = []
    for i, idx in enumerate(logp.argmax(dim=-1).tolist()):
        if idx != BLANK and idx != prev:
            starts.append((i, idx))
        prev = idx
    return starts


def emissions(m: LoadedModel, utt: Utterance, chunk_size: int | None = None) -> list[Emission]:
    """Decode ``utt`` chunk by chunk with the streaming student ``m``; one :class:`Emission` per token."""
    decoder = StreamingCTC(m.model, chunk_size)
    feats = model_features(m, utt)  # (T, 80)
    decoder.accept(feats)
    decoder.finish()
    out, prev, offset = [], BLANK, 0
    total_s = feats.size(0) * FRAME_SHIFT_S
    for c, logp in enumerate(decoder.logp):
        arrival = min(((offset + logp.size(0)) * SUBSAMPLING + LOOKAHEAD_FRAMES) * FRAME_SHIFT_S, total_s)
        out += [Emission(tok, m.piece(tok), offset + i, c, arrival) for i, tok in _run_starts(logp, prev)]
        prev = int(logp[-1].argmax()) if logp.size(0) else prev
        offset += logp.size(0)
    return out


def emission_summary(name: str, chunk_size: int, found: list[Emission]) -> dict[str, object]:
    """One row: model, chunk, algorithmic latency (ms), tokens, mean and max emission delay (ms)."""
    delays = [e.delay_s * 1000 for e in found]
    return {"model": name, "chunk": chunk_size, "latency ms": latency_ms(chunk_size), "tokens": len(found),
            "mean delay ms": round(sum(delays) / len(delays), 1) if delays else None,
            "max delay ms": round(max(delays), 1) if delays else None}


def timeline_rows(found: dict[str, list[Emission]]) -> dict[str, list[tuple[str, float, float]]]:
    """{model: [(piece, first-frame time s, emission time s), …]} for ``kdlab.viz.families.emission_timeline``."""
    return {name: [(e.piece, e.frame * FRAME_S, e.emitted_s) for e in ems] for name, ems in found.items()}


def delays_within_latency(found: list[Emission], chunk_size: int) -> bool:
    """Whether every token's emission delay is at most the chunk's algorithmic latency (chunk duration + the
    subsampling look-ahead, :func:`kdlab.search.streaming.latency_ms`): a token waits at most for the rest of
    its own chunk."""
    bound = latency_ms(chunk_size) + 1e-6
    return all(e.delay_s * 1000 <= bound for e in found)
