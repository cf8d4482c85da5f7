"""Shared fixtures: tiny synthesized corpora, built once per test session."""

from pathlib import Path

import pytest

TINY_SIZES = {"n_train": 24, "n_dev": 6, "n_test": 6}


def _build(tmp_path_factory: pytest.TempPathFactory, lang: str) -> Path:
    from kdlab.data.synth import synthesize_corpus

    out = tmp_path_factory.mktemp(f"tiny-{lang}") / "corpus"
    synthesize_corpus(out, lang, seed=0, **TINY_SIZES)
    return out


@pytest.fixture(scope="session")
def tiny_corpus_en(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 24/6/6-utterance English corpus folder (train/dev/test.jsonl + audio)."""
    return _build(tmp_path_factory, "en")


@pytest.fixture(scope="session")
def tiny_corpus_zh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 24/6/6-utterance Mandarin corpus folder (train/dev/test.jsonl + audio)."""
    return _build(tmp_path_factory, "zh")


@pytest.fixture(scope="session")
def teacher():
    """The shipped mini-en AR teacher (kdlab.explore.LoadedModel), loaded once per test process."""
    from kdlab.explore import load_model

    return load_model("mini-en/teacher")


@pytest.fixture(scope="session")
def student():
    """The shipped same-size ++S-KD Mask-CTC student (kdlab.explore.LoadedModel), loaded once per process."""
    from kdlab.explore import load_model

    return load_model("mini-en/student-same-skd")
