"""A model for inspection: network, tokenizer and CMVN under one name."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch

from kdlab.tokens import BLANK, MASK, SOS_EOS


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """``kind`` is the run's ``model.kind``: ``"ar"`` (teacher: joint CTC/attention), ``"maskctc"`` (student:
    CTC + CMLM), ``"ctc"`` or ``"transducer"`` (the KD families' models)."""

    name: str
    model: torch.nn.Module
    tokenizer: Any
    cmvn: Any
    kind: str

    def piece(self, token: int) -> str:
        """Readable unit of a token id (``∅`` blank, ``<eos>``, ``<mask>``, BPE pieces with ``▁``)."""
        if token == BLANK:
            return "∅"
        if token == SOS_EOS:
            return "<eos>"
        if token == MASK:
            return "<mask>"
        return self.tokenizer.id_to_piece(int(token))

    def pieces(self, tokens: list[int]) -> list[str]:
        return [self.piece(t) for t in tokens]

    def text(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens)

    @property
    def unit(self) -> str:
        """``"word"`` (WER) or ``"char"`` (CER)."""
        return self.tokenizer.unit


@lru_cache(maxsize=16)
def load_model(spec: str) -> LoadedModel:
    """``"mini-en/teacher"`` (a shipped model), ``"pretrained:mini-en/teacher"`` or a checkpoint path of a
    run folder. Loaded once per process (float32, CPU, eval mode, one thread is enough)."""
    from kdlab.checkpoint import PRETRAINED_PREFIX, load_model_from_checkpoint

    source = spec
    if not spec.startswith(PRETRAINED_PREFIX) and not spec.endswith(".pt") and spec.count("/") == 1:
        source = PRETRAINED_PREFIX + spec
    model, tokenizer, cmvn, exp = load_model_from_checkpoint(source, device="cpu")
    return LoadedModel(spec.removeprefix(PRETRAINED_PREFIX), model, tokenizer, cmvn, exp.model.kind)


TRAINING_DATA = {
    "mini-en": "English sentences",
    "mini-zh": "Mandarin sentences",
}
ENGINE_NAMES = {"espeak": "espeak-ng", "flite": "flite", "festival": "festival"}


def trained_on(name: str) -> str:
    """One line saying what a model (``"mini-en/teacher"`` or a checkpoint path) learned from and, from its
    card, how it fares on voices it never heard (test-unseen) against test-clean, for a reader who brings
    other audio."""
    corpus = name.split("/")[0] if name.count("/") == 1 and not name.endswith(".pt") else None
    if corpus not in TRAINING_DATA:
        return f"{name} is a model of your own run: what it recognises depends on the corpus it was trained on."
    from kdlab.pretrained.store import card

    data = card(*name.split("/"))
    engines = [ENGINE_NAMES[e] for e in data.get("corpus_engines", ["espeak"])]
    voices = engines[0] if len(engines) == 1 else ", ".join(engines[:-1]) + " and " + engines[-1]
    line = f"{name} was trained on {TRAINING_DATA[corpus]} spoken by {voices} voices"
    unseen, clean = (_card_rate(data, s) for s in ("test-unseen", "test-clean"))
    if unseen is None or clean is None:
        return line + (" only: other voices and recorded speech lie outside what it learned, so expect far more "
                       "errors than on the check sets.")
    unit = "WER" if data.get("unit", "word") == "word" else "CER"
    return (line + f". On voices it never heard (test-unseen) its {unit} is {unseen:.1f} % against {clean:.1f} % "
            "on test-clean; a recording of a person lies further outside what it learned.")


def _card_rate(data: dict, set_name: str) -> float | None:
    """The card's error rate on ``set_name`` with the model kind's Table 1 search (AR beam 10, Mask-CTC beam 10,
    …: ``reproduce.eval.KIND_METHOD``)."""
    from kdlab.reproduce.eval import KIND_METHOD

    row = (data.get("results") or {}).get(set_name, {}).get(KIND_METHOD.get(data.get("kind"), ""))
    return None if row is None else float(row["rate"])
