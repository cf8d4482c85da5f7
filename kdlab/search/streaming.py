"""Chunk-by-chunk streaming decoding of a CTC student with a streaming encoder (Shim et al. 2023's setup).

:class:`StreamingCTC` takes the features as they arrive (any number of frames per call), runs the encoder
one chunk at a time with per-block caches (``ConformerEncoder.forward_chunk``) and emits greedy CTC tokens
per chunk: a token is emitted in the chunk holding the first frame of its run, so tokens once emitted never
change. The outputs equal the masked full-utterance forward (``tests/test_streaming.py``), which is why
whole test sets are scored with the batched masked forward (:func:`greedy_at_chunk`) instead.

Latency (:func:`latency_ms`): the first frame of a chunk waits for the whole chunk (C encoder frames × 4
input frames × 10 ms) plus the subsampling's look-ahead: encoder frame t sees input frames 4t … 4t+6, three
frames (30 ms) beyond its own 4-frame block. Feature-window (25 ms) and compute time are not counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from kdlab.data.features import FRAME_SHIFT_S
from kdlab.nn.subsampling import SUBSAMPLING
from kdlab.search.ctc import ctc_greedy
from kdlab.tokens import BLANK

FRAME_SHIFT_MS = FRAME_SHIFT_S * 1000.0  # feature frame shift, 10 ms
LOOKAHEAD_FRAMES = 3  # input frames the Conv2d x4 subsampling reads past an encoder frame's own block
MIN_FRAMES = 7  # input frames for one encoder frame


def latency_ms(chunk_size: int) -> float:
    """Algorithmic latency of a chunk of ``chunk_size`` encoder frames: chunk duration + 30 ms look-ahead."""
    if chunk_size < 1:
        raise ValueError(f"latency needs a chunk size >= 1 (0 = full context waits for the utterance's end), "
                         f"got {chunk_size}")
    return chunk_size * SUBSAMPLING * FRAME_SHIFT_MS + LOOKAHEAD_FRAMES * FRAME_SHIFT_MS


@contextmanager
def chunk_context(model: Any, chunk_size: int, left_chunks: int | None = None) -> Iterator[Any]:
    """Temporarily run ``model``'s streaming encoder with another attention chunk size (0: full context)
    and, when given, another left context; the convolutions stay causal."""
    enc = model.encoder
    if not getattr(enc, "causal", False):
        raise ValueError("chunk sizes apply to a streaming encoder (model.config chunk_size > 0)")
    saved = (enc.chunk_size, enc.left_chunks)
    enc.chunk_size = chunk_size
    enc.left_chunks = saved[1] if left_chunks is None else left_chunks
    try:
        yield model
    finally:
        enc.chunk_size, enc.left_chunks = saved


class StreamingCTC:
    """Greedy CTC decoding of one utterance fed incrementally; ``accept`` returns the tokens emitted so far
    in this call, ``finish`` flushes the last (partial) chunk. ``logp`` holds each chunk's (C, V) posteriors.
    """

    def __init__(self, model: Any, chunk_size: int | None = None, left_chunks: int | None = None) -> None:
        enc = model.encoder
        if not getattr(enc, "causal", False):
            raise ValueError("streaming decoding needs a streaming encoder (model.config chunk_size > 0)")
        self.model = model.eval()
        self.chunk = enc.chunk_size if chunk_size is None else chunk_size
        self.left_chunks = enc.left_chunks if left_chunks is None else left_chunks
        if self.chunk < 1:
            raise ValueError(f"streaming decoding needs chunk_size >= 1, got {self.chunk}")
        self.reset()

    def reset(self) -> None:
        """Start a new utterance."""
        self.buffer: torch.Tensor | None = None  # (M, F) input frames not yet consumed
        self.cache = self.model.encoder.init_cache(1)
        self.prev = BLANK  # the last frame's best id (repeats merge across chunks)
        self.tokens: list[int] = []
        self.logp: list[torch.Tensor] = []

    @torch.no_grad()
    def accept(self, feats: torch.Tensor) -> list[int]:
        """feats (N, F) new input frames -> tokens emitted by the chunks they completed."""
        self.buffer = feats if self.buffer is None else torch.cat([self.buffer, feats], dim=0)
        window = SUBSAMPLING * self.chunk + LOOKAHEAD_FRAMES  # input frames of one full chunk
        emitted: list[int] = []
        while self.buffer.size(0) >= window:
            emitted += self._step(self.buffer[:window])
            self.buffer = self.buffer[SUBSAMPLING * self.chunk:]  # keep the 3-frame overlap
        return emitted

    @torch.no_grad()
    def finish(self) -> list[int]:
        """Decode the remaining frames (a last chunk shorter than C) and end the utterance."""
        emitted: list[int] = []
        if self.buffer is not None and self.buffer.size(0) >= MIN_FRAMES:
            emitted = self._step(self.buffer)
        self.buffer = None
        return emitted

    def _step(self, window: torch.Tensor) -> list[int]:
        """Encode one chunk's input window (n, F) and emit its greedy CTC tokens."""
        enc = self.model.encoder
        saved = (enc.chunk_size, enc.left_chunks)
        enc.chunk_size, enc.left_chunks = self.chunk, self.left_chunks
        try:
            out, self.cache = enc.forward_chunk(window.unsqueeze(0), self.cache)  # (1, C, D)
        finally:
            enc.chunk_size, enc.left_chunks = saved
        logp = self.model.ctc_log_probs(out)[0]  # (C, V)
        self.logp.append(logp)
        emitted = []
        for idx in logp.argmax(dim=-1).tolist():
            if idx != BLANK and idx != self.prev:
                emitted.append(idx)
            self.prev = idx
        self.tokens += emitted
        return emitted


def stream_utterance(model: Any, feats: torch.Tensor, piece: int = 40, chunk_size: int | None = None,
                     left_chunks: int | None = None) -> tuple[list[int], list[list[int]]]:
    """Feed feats (T, F) ``piece`` frames at a time; returns (tokens, tokens emitted after each piece)."""
    decoder = StreamingCTC(model, chunk_size, left_chunks)
    per_piece = [decoder.accept(feats[start:start + piece]) for start in range(0, feats.size(0), piece)]
    per_piece.append(decoder.finish())
    return decoder.tokens, per_piece


@torch.no_grad()
def greedy_at_chunk(model: Any, batches: Iterable[dict], chunk_size: int, left_chunks: int | None = None
                    ) -> tuple[list[str], list[str], list[list[int]]]:
    """Greedy CTC over batches with the streaming encoder at ``chunk_size`` (0: full attention context),
    using the batched masked forward (equal to :class:`StreamingCTC`); returns (ids, reference texts,
    token ids)."""
    ids: list[str] = []
    refs: list[str] = []
    hyps: list[list[int]] = []
    with chunk_context(model.eval(), chunk_size, left_chunks):
        for batch in batches:
            enc, enc_lens = model.encode(batch["feats"], batch["feat_lens"])  # (B, T', D), (B,)
            hyps += [r.tokens for r in ctc_greedy(model.ctc_log_probs(enc), enc_lens)]
            ids += list(batch["ids"])
            refs += list(batch["texts"])
    return ids, refs, hyps
