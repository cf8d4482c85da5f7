"""The shipped pretrained models (``data/pretrained/``): each loads by name and reproduces the figures its
card records on the shipped check sets (first test utterances of the embedded corpora)."""

from __future__ import annotations

import pytest
import torch

from kdlab import pretrained
from kdlab.pretrained.check import verify

SHIPPED = pretrained.available(pretrained.DEFAULT_ROOT)


@pytest.mark.parametrize("spec", SHIPPED)
def test_shipped_model_loads_by_name(spec: str):
    corpus, name = spec.split("/")
    model, tokenizer, cmvn, cfg = pretrained.load(corpus, name)
    card = pretrained.card(corpus, name)
    assert not model.training and cmvn is not None
    assert sum(p.numel() for p in model.parameters()) == card["params"]["total"]
    assert tokenizer.vocab_size == card["vocab_size"] and cfg.model.kind == card["kind"]


@pytest.mark.parametrize("spec", SHIPPED)
def test_shipped_model_reproduces_its_card(spec: str):
    torch.set_num_threads(1)
    rows = verify(spec, root=pretrained.DEFAULT_ROOT)
    assert rows, f"{spec}: the card records no check/<set> figure"
    for r in rows:
        assert r.agrees(0.01), f"{spec} {r.set} {r.method}: card {r.card_errors} errors, measured {r.errors}"
