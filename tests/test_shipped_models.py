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


def test_shipped_student_decode_arithmetic():
    """The arithmetic behind ``kdlab bench decode`` on the shipped same-size student (first check
    utterances): beam 1 runs exactly greedy's CMLM passes, and the CMLM passes alone put Mask-CTC greedy
    above 1.3x the encoder's operations and beam 10 above 1.25x beam 1 (docs/RESULTS.md, "The arithmetic
    of a decode")."""
    from kdlab.evaluate.bench_cli import _single_batches, decode_jobs
    from kdlab.evaluate.flops import flops_per_method
    from kdlab.evaluate.sets import load_records

    torch.set_num_threads(1)
    nar, tok, cmvn, _ = pretrained.load("mini-en", "student-same-skd")
    records = load_records(pretrained.DEFAULT_ROOT / "mini-en" / "check" / "test-clean.jsonl", limit=4)
    batches = _single_batches(records, tok, cmvn)
    jobs = {m: job for m, (_, job) in decode_jobs(nar, None).items() if m.startswith(("encoder", "maskctc"))}
    ops = flops_per_method(jobs, dict.fromkeys(jobs, batches))
    assert ops["maskctc_beam1"] == ops["maskctc_greedy"]
    assert ops["maskctc_greedy"] / ops["encoder"] > 1.3
    assert ops["maskctc_beam10"] / ops["maskctc_beam1"] > 1.25


MULTI_ENGINE = ("teacher", "student-same-ljca", "student-same-skd", "student-smaller-ljca", "student-smaller-skd")


@pytest.mark.parametrize("name", MULTI_ENGINE)
def test_multi_engine_models_carry_unseen_figures(name: str):
    """The mini-en teacher and Table 1 students learned from every synthesizer: their cards hold the full
    test-unseen figure and a test-unseen check-set figure (re-decoded by the test above), and the teacher keeps
    the floor of issue 30 (test-unseen WER below 40 %)."""
    data = pretrained.card("mini-en", name)
    assert data["corpus_engines"] == ["espeak", "flite", "festival"]
    assert set(data["corpus_engine_versions"]) == set(data["corpus_engines"])
    method = "attention_beam10" if name == "teacher" else "maskctc_beam10"
    for key in ("test-unseen", "dev-unseen", "check/test-unseen", "test-clean"):
        assert data["results"][key][method]["utts"] > 0, key
    assert set(data["results"]["test-unseen"][method]["by_engine"]) == {"espeak", "flite", "festival"}
    if name == "teacher":
        assert data["results"]["test-unseen"][method]["rate"] < 40.0
