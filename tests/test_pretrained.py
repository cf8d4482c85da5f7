"""Shipped pretrained models: export of a tiny trained run, loading by name (API, ``pretrained:`` spec in
``--ckpt``), identical hypotheses to the original checkpoint, sha256 and unknown-name errors, the CLI."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from kdlab.checkpoint import load_checkpoint, load_model_from_checkpoint
from kdlab.cli import main as cli
from kdlab.pretrained import store as pretrained
from kdlab.pretrained.store import PretrainedError

TINY = {"d_model": 32, "heads": 2, "ffn_dim": 64, "enc_blocks": 1, "dec_blocks": 1, "cnn_kernel": 3}
SPEC = "pretrained:tiny-en/student"
METHODS = ["ctc_greedy", "maskctc_greedy"]


@pytest.fixture(scope="module")
def run_ckpt(tiny_corpus_en: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``avg-1.pt`` of a tiny Mask-CTC run, one epoch on the tiny English corpus at a low learning rate: a
    real run folder whose model, still near its initialisation, emits tokens (a briefly trained one emits
    only blanks, which would make the hypothesis comparisons empty)."""
    from kdlab.config import config_from_dict
    from kdlab.training.fit import fit

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("pretrained-run")
    cfg = config_from_dict({
        "data": {"corpus": str(tiny_corpus_en), "tokenizer": "char", "feature_cache": str(root / "fbank")},
        "model": {"kind": "maskctc", "preset": None, "config": dict(TINY)},
        "train": {"epochs": 1, "lr": 1e-5, "warmup_steps": 4, "max_frames": 1500, "average_last": 1,
                  "keep_last": 1, "num_threads": 1, "progress": False},
    })
    fit(cfg, root / "run")
    return root / "run" / "avg-1.pt"


@pytest.fixture(scope="module")
def shipped(run_ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder holding ``tiny-en/student`` exported from ``run_ckpt``."""
    root = tmp_path_factory.mktemp("shipped")
    fields = {"recipe": "tests/test_pretrained.py", "command": "fit(1 epoch)", "corpus_seed": 0,
              "sha256": "overridden?", "kind": "ar"}  # facts of the export win over given fields
    pretrained.export(run_ckpt, "tiny-en", "student", fields, root=root)
    return root


@pytest.fixture()
def env(shipped: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(pretrained.ENV_ROOT, str(shipped))
    return shipped


def _batch(model_cfg, tokenizer, cmvn, n: int = 2) -> dict:
    from kdlab.evaluate.sets import load_records, make_batches, resolve_set

    records = load_records(resolve_set("test", model_cfg), limit=n)
    return next(iter(make_batches(records, tokenizer, cmvn, max_frames=10**6)))


def test_export_layout_and_card(run_ckpt: Path, env: Path):
    folder = env / "tiny-en" / "student"
    assert sorted(p.name for p in folder.iterdir()) == ["card.json", "cmvn.json", "model.pt", "tokenizer"]
    assert pretrained.available() == ["tiny-en/student"] and pretrained.path(SPEC) == folder
    card = pretrained.card("tiny-en", "student")
    assert card["sha256"] == pretrained.sha256_of(folder / "model.pt")
    assert card["files"] == pretrained.file_hashes(folder)  # every file the model depends on
    assert set(card["files"]) == {"model.pt", "cmvn.json", "tokenizer/tokenizer.json", "tokenizer/tokens.txt"}
    assert card["kind"] == "maskctc" and card["recipe"] == "tests/test_pretrained.py" and card["seed"] == 0
    assert card["source"] == "run/avg-1.pt" and card["epoch"] == 1 and card["averaged"] == ["epoch-1.pt"]
    original = load_model_from_checkpoint(run_ckpt)[0]
    assert card["params"]["total"] == sum(p.numel() for p in original.parameters())
    state = load_checkpoint(SPEC)["model"]  # the spec also works where a raw checkpoint is read (init_from)
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    assert (folder / "model.pt").stat().st_size < 0.7 * run_ckpt.stat().st_size
    assert not [p for p in (env / "tiny-en").iterdir() if p.name.startswith(".")]  # no temp folders left


def test_load_by_name_decodes_like_the_original(run_ckpt: Path, env: Path):
    from kdlab.search.decode import decode

    model, tokenizer, cmvn, cfg = pretrained.load("tiny-en", "student")
    assert not model.training and all(p.dtype == torch.float32 for p in model.parameters())
    ref_model, ref_tok, ref_cmvn, ref_cfg = load_model_from_checkpoint(run_ckpt)
    assert tokenizer.vocab_size == ref_tok.vocab_size and cfg.model == ref_cfg.model
    batch = _batch(cfg, tokenizer, cmvn)
    hyps = decode(model, batch, METHODS)
    assert all(hyps[m][0] for m in METHODS)  # non-empty: the comparison means something
    assert hyps == decode(ref_model, batch, METHODS)
    by_spec = load_model_from_checkpoint(SPEC)[0]  # the one place every --ckpt goes through
    assert decode(by_spec, batch, METHODS) == decode(model, batch, METHODS)


def test_decode_command_takes_a_pretrained_spec(run_ckpt: Path, env: Path, tmp_path: Path):
    for name, ckpt in (("spec", SPEC), ("orig", str(run_ckpt))):
        args = ["decode", "--ckpt", ckpt, "--methods", ",".join(METHODS), "--set", "test", "--limit", "2"]
        assert cli([*args, "--out", str(tmp_path / name)]) == 0
    for m in METHODS:
        recogs = [(tmp_path / d / f"recogs-{m}.txt").read_text() for d in ("spec", "orig")]
        assert recogs[0] == recogs[1] and recogs[0].count("ref=") == 2


def test_sha256_mismatch_is_a_one_line_error(shipped: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture):
    root = tmp_path / "models"
    shutil.copytree(shipped, root)
    monkeypatch.setenv(pretrained.ENV_ROOT, str(root))
    model_pt = root / "tiny-en" / "student" / "model.pt"
    model_pt.write_bytes(model_pt.read_bytes() + b"\0")
    with pytest.raises(PretrainedError, match=r"model\.pt: sha256 .* does not match card\.json"):
        pretrained.load("tiny-en", "student")
    assert cli(["decode", "--ckpt", SPEC, "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "sha256" in err and str(model_pt) in err and err.count("\n") == 1


def test_unknown_names_list_the_available_models(env: Path, capsys: pytest.CaptureFixture):
    with pytest.raises(PretrainedError, match=r"unknown pretrained model .tiny-en/nope. \(available: tiny-en/student"):
        pretrained.load("tiny-en", "nope")
    with pytest.raises(PretrainedError, match="expected pretrained:<corpus>/<name>"):
        pretrained.path("pretrained:../x")
    assert cli(["align", "--ckpt", "pretrained:mini-zh/teacher", "--utt", "u0"]) == 2
    assert "available: tiny-en/student" in capsys.readouterr().err
    assert pretrained.available(env / "empty") == []
    with pytest.raises(PretrainedError, match="none are installed"):
        pretrained.path("a/b", root=env / "empty")


def test_pretrained_cli_list_card_and_export(run_ckpt: Path, env: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture):
    assert cli(["pretrained", "list"]) == 0
    assert capsys.readouterr().out.startswith("tiny-en/student\tmaskctc\t")
    assert cli(["pretrained", "card", SPEC]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "student"
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"ctc_greedy": {"rate": 95.0, "unit": "char", "n_ref": 10, "rtf": 0.1}}))
    args = ["pretrained", "export", str(run_ckpt), "--as", "tiny-en/student2", "--field", "corpus_seed=7",
            "--field", "recipe=cli test", "--results", f"test={summary}"]
    assert cli(args) == 0
    card = pretrained.card("tiny-en", "student2")
    assert card["corpus_seed"] == 7 and card["recipe"] == "cli test"
    assert card["results"] == {"test": {"ctc_greedy": {"rate": 95.0, "unit": "char", "n_ref": 10}}}
    assert "note: the card has no command" in capsys.readouterr().out
    assert cli(args) == 2 and "already exists" in capsys.readouterr().err
    assert cli([*args, "--force"]) == 0 and pretrained.available() == ["tiny-en/student", "tiny-en/student2"]


def test_export_refuses_a_model_whose_fp16_outputs_differ(run_ckpt: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch):
    calls = iter([torch.tensor([0.52, 0.1]), torch.tensor([0.50, 0.1])])  # reloaded, original
    monkeypatch.setattr(pretrained, "_dummy_ctc_posteriors", lambda model: next(calls))
    with pytest.raises(PretrainedError, match=r"changes the CTC posteriors on a dummy input by 0\.0200"):
        pretrained.export(run_ckpt, "tiny-en", "bad", {}, root=tmp_path)
    assert list((tmp_path / "tiny-en").iterdir()) == []  # nothing half-written is left


def test_data_paths_are_stored_relative_to_the_repository():
    inside = str(pretrained.REPO_ROOT / "data" / "cache" / "corpora" / "mini-en")
    data = {"corpus": inside, "train": "/elsewhere/train.jsonl", "dev": None}
    stored = pretrained._rebase_data_paths(data, pretrained.REPO_ROOT, to_relative=True)
    assert stored == {"corpus": "data/cache/corpora/mini-en", "train": "/elsewhere/train.jsonl", "dev": None}
    assert pretrained._rebase_data_paths(stored, pretrained.REPO_ROOT, to_relative=False)["corpus"] == inside


def test_check_set_figures_are_reverified_and_a_changed_figure_is_reported(
        env: Path, tiny_corpus_en: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    from kdlab.pretrained.check import check_manifest, verify

    assert cli(["pretrained", "checkset", str(tiny_corpus_en / "test.jsonl"), "--as", "tiny-en/test", "--n", "3"]) == 0
    manifest = check_manifest("tiny-en", "test")
    assert len(manifest.read_text().splitlines()) == 3
    assert len(list((env / "tiny-en" / "check" / "test").iterdir())) == 3
    assert not any(s.startswith("tiny-en/check") for s in pretrained.available())  # not a model
    out = tmp_path / "dec"
    assert cli(["decode", "--ckpt", SPEC, "--methods", "ctc_greedy", "--set", str(manifest), "--out", str(out)]) == 0
    folder = env / "tiny-en" / "student"
    card_file = folder / "card.json"
    saved = card_file.read_text()
    try:
        data = json.loads(saved)
        data["results"] = {"check/test": json.loads((out / "summary.json").read_text())}
        card_file.write_text(json.dumps(data))
        [row] = verify(SPEC)
        assert row.set == "check/test" and row.errors == row.card_errors and row.n_ref > 0
        capsys.readouterr()
        assert cli(["pretrained", "verify", SPEC]) == 0 and "\tok" in capsys.readouterr().out
        data["results"]["check/test"]["ctc_greedy"]["sub"] += row.n_ref  # a figure the model does not give
        card_file.write_text(json.dumps(data))
        assert cli(["pretrained", "verify", SPEC]) == 1 and "DIFFERS" in capsys.readouterr().out
    finally:
        card_file.write_text(saved)


def test_models_of_a_corpus_share_one_tokenizer(run_ckpt: Path, tmp_path: Path):
    """The first model of a corpus keeps its own tokenizer/; ``share_tokenizer`` makes it the corpus's one
    copy, and every later export with the same files links to it (and loads, hashes and verifies as before)."""
    first = pretrained.export(run_ckpt, "tiny-en", "a", root=tmp_path)
    assert not (first / "tokenizer").is_symlink() and not (tmp_path / "tiny-en" / "tokenizer").exists()
    assert pretrained.share_tokenizer(first) and (first / "tokenizer").is_symlink()
    second = pretrained.export(run_ckpt, "tiny-en", "b", root=tmp_path)
    assert (second / "tokenizer").is_symlink() and os.readlink(second / "tokenizer") == os.path.join("..", "tokenizer")
    for folder in (first, second):
        data = pretrained.read_card(folder)
        pretrained.check_files(folder, data)
        assert data["files"] == pretrained.file_hashes(folder) and "tokenizer/tokens.txt" in data["files"]
    assert pretrained.available(tmp_path) == ["tiny-en/a", "tiny-en/b"]  # the shared folder is not a model
    data = pretrained.read_card(second)
    data["files"]["../tokenizer/tokens.txt"] = data["files"].pop("tokenizer/tokens.txt")
    with pytest.raises(pretrained.PretrainedError, match="outside the model folder"):
        pretrained.check_files(second, data)
