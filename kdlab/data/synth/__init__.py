"""Embedded speech corpora synthesized with espeak-ng: mini-en (LibriSpeech-like), mini-zh (AISHELL-like)."""

from kdlab.data.synth.corpus import (
    DEFAULT_DEV,
    DEFAULT_TEST,
    DEFAULT_TRAIN_HOURS,
    grammar_for,
    pronounceable,
    synthesize_corpus,
)

__all__ = [
    "DEFAULT_DEV",
    "DEFAULT_TEST",
    "DEFAULT_TRAIN_HOURS",
    "grammar_for",
    "pronounceable",
    "synthesize_corpus",
]
