"""Issue #31, defects 3 and 4: a shipped model's integrity covers every file it depends on (``card.json``'s
``files``: model.pt, cmvn.json, each tokenizer file), card result keys stay inside the model's check folder,
and a killed ``kdlab pretrained ship`` leaves no model that looks finished.

Every test copies a shipped model into a temporary folder before changing anything; nothing under
``data/`` is written."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kdlab.checkpoint import load_checkpoint
from kdlab.cli import main as cli
from kdlab.pretrained import store
from kdlab.pretrained.store import DEFAULT_ROOT, PretrainedError

SPEC = "pretrained:mini-en/teacher"
CHECK = "check/test-clean"


@pytest.fixture()
def models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A models root holding a copy of the shipped ``mini-en/teacher`` and the mini-en check sets; the
    ``pretrained:`` specs resolve there."""
    root = tmp_path / "models"
    for part in ("teacher", "check"):
        shutil.copytree(DEFAULT_ROOT / "mini-en" / part, root / "mini-en" / part)
    monkeypatch.setenv(store.ENV_ROOT, str(root))
    return root


def _teacher(root: Path) -> Path:
    return root / "mini-en" / "teacher"


def _one_line_exit_2(argv: list[str], capsys: pytest.CaptureFixture, *needles: str) -> str:
    """Run ``kdlab argv``: exit 2 with one stderr line holding every needle; returns that line."""
    capsys.readouterr()
    assert cli(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


def test_every_shipped_card_hashes_every_file_its_model_depends_on():
    """The 21 shipped cards list model.pt, cmvn.json and each tokenizer file, and the files match."""
    names = store.available(DEFAULT_ROOT)
    assert len(names) >= 21
    for spec in names:
        folder = store.path(spec, DEFAULT_ROOT)
        card = store.read_card(folder)
        assert sorted(card["files"]) == sorted(store.dependency_files(folder)), spec
        assert card["files"]["model.pt"] == card["sha256"]
        assert any(rel.startswith("tokenizer/") for rel in card["files"]), spec
        store.check_files(folder, card)


def test_an_edited_cmvn_is_refused_naming_the_file(models: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    """One number of cmvn.json changed: before, decoding ran at rc 0 with a silently wrong WER."""
    cmvn = _teacher(models) / "cmvn.json"
    text = cmvn.read_text()
    number = re.search(r"-?\d+\.\d+", text)
    cmvn.write_text(text[:number.start()] + str(float(number.group()) + 50.0) + text[number.end():])
    with pytest.raises(PretrainedError, match=r"cmvn\.json: sha256 .* does not match card\.json"):
        store.load("mini-en", "teacher")
    manifest = models / "mini-en" / "check" / "test-clean.jsonl"
    argv = ["decode", "--ckpt", SPEC, "--methods", "ctc_greedy", "--set", str(manifest), "--out", str(tmp_path / "d")]
    _one_line_exit_2(argv, capsys, str(cmvn), "sha256")
    assert not (tmp_path / "d" / "summary.json").exists()


def test_a_corrupt_bpe_model_is_one_line_not_a_traceback(models: Path, capsys: pytest.CaptureFixture):
    """A few bytes of tokenizer/bpe.model overwritten: before, sentencepiece's RuntimeError traceback."""
    bpe = _teacher(models) / "tokenizer" / "bpe.model"
    data = bytearray(bpe.read_bytes())
    data[100:107] = b"garbage"
    bpe.write_bytes(bytes(data))
    with pytest.raises(PretrainedError, match=r"tokenizer/bpe\.model: sha256 .* does not match card\.json"):
        store.load("mini-en", "teacher")
    with pytest.raises(PretrainedError, match=r"bpe\.model"):
        load_checkpoint(SPEC)  # init_from / teacher_from read model.pt through the same check
    _one_line_exit_2(["align", "--ckpt", SPEC, "--utt", "u0"], capsys, str(bpe), "sha256")


def test_tokenizer_files_added_or_removed_are_refused(models: Path):
    tokenizer = _teacher(models) / "tokenizer"
    (tokenizer / "extra.txt").write_text("x\n")
    with pytest.raises(PretrainedError, match=r"tokenizer/extra\.txt: not listed in card\.json"):
        store.load("mini-en", "teacher")
    (tokenizer / "extra.txt").unlink()
    (tokenizer / "tokens.txt").unlink()
    with pytest.raises(PretrainedError, match=r"tokenizer/tokens\.txt: missing"):
        store.load("mini-en", "teacher")


def test_a_card_without_per_file_hashes_is_refused_and_seal_records_them(models: Path,
                                                                         capsys: pytest.CaptureFixture):
    folder = _teacher(models)
    card = store.read_card(folder)
    hashes = card.pop("files")
    store.write_card(folder, card)
    with pytest.raises(PretrainedError, match=r"records no sha256 of cmvn\.json .* kdlab pretrained seal"):
        store.load("mini-en", "teacher")
    assert cli(["pretrained", "seal", "mini-en/teacher"]) == 0
    assert "per-file sha256 recorded" in capsys.readouterr().out
    assert store.read_card(folder)["files"] == hashes
    store.load("mini-en", "teacher")
    (folder / "cmvn.json").write_text((folder / "cmvn.json").read_text().replace("1", "2", 1))
    _one_line_exit_2(["pretrained", "seal", "--all"], capsys, "cmvn.json", "does not match")  # never re-blessed
    assert store.read_card(folder)["files"] == hashes


def test_a_files_entry_outside_the_model_folder_is_refused(models: Path):
    folder = _teacher(models)
    card = store.read_card(folder)
    card["files"]["../check/test-clean.jsonl"] = "0" * 64
    store.write_card(folder, card)
    with pytest.raises(PretrainedError, match=r"files entry '\.\./check/test-clean\.jsonl' is outside"):
        store.load("mini-en", "teacher")


@pytest.mark.parametrize("key", ["check/../../../outside/x", "check/a/b", "check/..", "check/"])
def test_card_result_keys_cannot_leave_the_check_folder(models: Path, tmp_path: Path, key: str,
                                                        capsys: pytest.CaptureFixture,
                                                        monkeypatch: pytest.MonkeyPatch):
    """Before, ``check/../../../x`` made ``verify`` decode a manifest outside the models folder."""
    from kdlab.pretrained import check

    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(models / "mini-en" / "check" / "test-clean.jsonl", outside / "x.jsonl")
    folder = _teacher(models)
    card = store.read_card(folder)
    card["results"] = {key: card["results"][CHECK]}
    store.write_card(folder, card)
    decoded: list[Path] = []
    monkeypatch.setattr(check, "decode_row", lambda spec, manifest, *a: decoded.append(manifest) or {})
    _one_line_exit_2(["pretrained", "verify", "mini-en/teacher"], capsys, repr(key), "no '/' or '..'")
    assert decoded == []


def test_export_refuses_a_result_key_that_leaves_the_check_folder():
    with pytest.raises(PretrainedError, match="no '/' or '..'"):
        store.check_result_keys({"test": {}, "check/../x": {}})
    store.check_result_keys({"test": {}, CHECK: {}, "check/test-other": {}})


# ----------------------------------------------------------------------------- defect 4: ship


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished ``kdlab reproduce`` run holding only its teacher stage: the shipped mini-en teacher as the
    run checkpoint ``ar/avg-1.pt`` (float32) beside config.yaml, tokenizer/, cmvn.json and DONE; its corpus
    is two check-set utterances as ``test.jsonl``."""
    from kdlab.config import config_from_dict, save_config
    from kdlab.data.manifest import read_manifest, write_manifest

    root = tmp_path_factory.mktemp("reproduce")
    src, ar, corpus = DEFAULT_ROOT / "mini-en" / "teacher", root / "ar", root / "corpus"
    shutil.copytree(src / "tokenizer", ar / "tokenizer")
    shutil.copy2(src / "cmvn.json", ar / "cmvn.json")
    corpus.mkdir()
    write_manifest(corpus / "test.jsonl", read_manifest(DEFAULT_ROOT / "mini-en" / "check" / "test-clean.jsonl")[:2])
    ckpt = load_checkpoint(src / "model.pt")
    config = {**ckpt["config"], "data": {**ckpt["config"]["data"], "corpus": str(corpus)}}
    save_config(config_from_dict(config), ar / "config.yaml")
    torch.save({"model": store.float_state(ckpt["model"]), "epoch": 1}, ar / "avg-1.pt")
    (ar / "DONE").write_text(json.dumps({"checkpoint": str(ar / "avg-1.pt")}))
    return root


def _ship_argv(run: Path, models: Path) -> list[str]:
    return ["pretrained", "ship", str(run), "--preset", "mini-en", "--teacher-only", "--n", "2", "--root", str(models)]


KILLED_SHIP = """
import os, signal, sys
import kdlab.pretrained.ship as ship
def killed(*args, **kwargs):  # kill -9 once the model is exported, before its card has its check figures
    os.kill(os.getpid(), signal.SIGKILL)
ship._check_results = killed
from kdlab.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_killed_ship_leaves_no_model_and_the_next_ship_needs_no_force(teacher_run: Path, tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture):
    """Before, the killed ship left ``mini-en/teacher`` listed, ``verify`` said rc 0 with nothing to verify,
    and shipping again needed ``--force``."""
    from kdlab.pretrained.check import verify

    models = tmp_path / "models"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", KILLED_SHIP, *_ship_argv(teacher_run, models)], env=env,
                          cwd=store.REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr
    assert store.available(models) == []
    assert not (models / "mini-en" / "teacher").exists()
    assert [p.name.startswith(".ship-") for p in models.iterdir() if p.name.startswith(".")] == [True]
    _one_line_exit_2(["pretrained", "verify", "mini-en/teacher", "--root", str(models)], capsys,
                     "unknown pretrained model")
    assert cli(_ship_argv(teacher_run, models)) == 0  # no --force needed
    assert store.available(models) == ["mini-en/teacher"]
    assert not [p for p in models.rglob(".*")]  # the dead ship's staging folder is gone
    card = store.card("mini-en", "teacher", root=models)
    assert set(card["results"]) == {"check/test"} and "tokenizer/bpe.model" in card["files"]
    rows = verify("mini-en/teacher", root=models)
    assert rows and all(r.agrees(0.0) for r in rows)
    _one_line_exit_2(_ship_argv(teacher_run, models), capsys, "already shipped", "--force")
