"""Issue 31, defects 1, 2 and 8: one writer per run / decode output folder (a second one refused with the
holder's pid, a killed holder's lock taken over); decode results published all at once, ``summary.json`` last
(a full disk or a kill never leaves new or empty result files beside an old summary); every item of a decode
set checked before the first utterance is decoded. Everything is written under pytest's tmp folders."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from lock_holder import hold_lock, kill

from kdlab.cli import main as cli
from kdlab.config import ExperimentConfig, config_from_dict, save_config
from kdlab.data.features import GlobalCMVN
from kdlab.data.manifest import write_manifest
from kdlab.data.tokenizer import CharTokenizer
from kdlab.models import build_model
from kdlab.models.config import ModelConfig

TINY = {"d_model": 32, "heads": 2, "ffn_dim": 64, "enc_blocks": 1, "dec_blocks": 1, "cnn_kernel": 3}
TEXTS = ["今天天气很好", "我们去公园", "好", "天气"]
METHODS = "ctc_greedy,maskctc_greedy"

def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ----------------------------------------------------------------------------- defect 1: train


def _train_config(corpus: Path, cache: Path) -> dict:
    return {
        "data": {"corpus": str(corpus), "tokenizer": "char", "feature_cache": str(cache)},
        "model": {"kind": "ar", "preset": None, "config": TINY},
        "train": {"epochs": 1, "lr": 4e-3, "warmup_steps": 4, "max_frames": 2500, "average_last": 1,
                  "num_threads": 1, "progress": False},
    }


def test_a_second_training_in_a_run_folder_is_refused_and_a_killed_ones_lock_taken_over(
        tiny_corpus_en: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    save_config(config_from_dict(_train_config(tiny_corpus_en, tmp_path / "cache")), tmp_path / "c.yaml")
    run = tmp_path / "run"
    holder = hold_lock(run)  # a live training in the folder
    try:
        assert cli(["train", "--config", str(tmp_path / "c.yaml"), "--out", str(run)]) == 2
        line = _one_error_line(capsys.readouterr().err)
        assert f"pid {holder.pid}" in line and "trains in this folder" in line
        assert sorted(p.name for p in run.iterdir()) == [".kdlab.lock"]  # nothing written, nothing removed
    finally:
        kill(holder)  # killed -9: its lock is stale and taken over
    assert cli(["train", "--config", str(tmp_path / "c.yaml"), "--out", str(run)]) == 0
    assert (run / "epoch-1.pt").is_file() and (run / "avg-1.pt").is_file()


# ----------------------------------------------------------------------------- decode workspace


def _run_folder(root: Path, name: str, tok: CharTokenizer, seed: int) -> Path:
    """A Mask-CTC run folder with untrained weights (``seed``: which ones)."""
    run = root / name
    run.mkdir()
    cfg = ExperimentConfig(name=name)
    cfg.data.corpus, cfg.data.lang = str(root), "zh"
    cfg.model.kind, cfg.model.preset, cfg.model.config = "maskctc", None, dict(TINY)
    save_config(cfg, run / "config.yaml")
    tok.save(run / "tokenizer")
    GlobalCMVN(torch.zeros(80), torch.ones(80)).save(run / "cmvn.json")
    torch.manual_seed(seed)
    model = build_model(ModelConfig(**TINY), tok.vocab_size, "maskctc")
    torch.save({"model": model.state_dict()}, run / "epoch-1.pt")
    return run / "epoch-1.pt"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-utterance corpus (noise audio) and two Mask-CTC models (``m1``, ``m2``) with different weights."""
    root = tmp_path_factory.mktemp("hardening")
    rng = np.random.default_rng(0)
    records = []
    for i, (text, dur) in enumerate(zip(TEXTS, [1.2, 0.9, 0.5, 0.7], strict=True)):
        sf.write(root / f"u{i}.wav", (rng.standard_normal(int(16000 * dur)) * 0.1).astype("float32"), 16000)
        records.append({"id": f"u{i}", "path": f"u{i}.wav", "duration": dur, "text": text, "speaker": "s"})
    write_manifest(root / "test.jsonl", records)
    tok = CharTokenizer.train(TEXTS, lang="zh")
    for name, seed in (("m1", 0), ("m2", 1)):
        _run_folder(root, name, tok, seed)
    return root


def _decode(workspace: Path, model: str, out: Path, *extra: str) -> int:
    return cli(["decode", "--ckpt", str(workspace / model / "epoch-1.pt"), "--methods", METHODS, "--set", "test",
                "--out", str(out), "--max-frames", "150", *extra])


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


# ----------------------------------------------------------------------------- defect 1: decode


def test_a_second_decode_into_an_output_folder_is_refused(workspace: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "d"
    holder = hold_lock(out)
    try:
        assert _decode(workspace, "m1", out) == 2
        line = _one_error_line(capsys.readouterr().err)
        assert f"pid {holder.pid}" in line and "decodes into this folder" in line
        assert sorted(p.name for p in out.iterdir()) == [".kdlab.lock"]
    finally:
        kill(holder)
    assert _decode(workspace, "m1", out) == 0 and (out / "summary.json").is_file()


# ----------------------------------------------------------------------------- defect 2


def _failing_writer(monkeypatch: pytest.MonkeyPatch, fail_on: int, error: BaseException) -> None:
    """Make the ``fail_on``-th call of ``write_results`` write its files, leave its ``errs-*`` file empty (as a
    full disk does) and raise ``error``: whatever folder the decode writes into gets the damage."""
    from kdlab.evaluate import results

    real, calls = results.write_results, []

    def write_results(out_dir, name, *args, **kwargs):
        stats = real(out_dir, name, *args, **kwargs)
        calls.append(name)
        if len(calls) == fail_on:
            (Path(out_dir) / f"errs-{name}.txt").write_bytes(b"")
            raise error
        return stats

    monkeypatch.setattr(results, "write_results", write_results)


@pytest.mark.parametrize("fail_on", [1, 2])
def test_a_full_disk_leaves_the_previous_results_as_they_were(
        workspace: Path, tmp_path: Path, fail_on: int, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "d"
    assert _decode(workspace, "m1", out) == 0
    before = _snapshot(out)
    capsys.readouterr()
    _failing_writer(monkeypatch, fail_on, OSError(errno.ENOSPC, "No space left on device"))
    assert _decode(workspace, "m2", out) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "No space left on device" in line and "unchanged" in line
    assert _snapshot(out) == before  # model 1's results, whole: no empty errs-*, nothing of model 2
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == []  # no staging folder left


def test_a_kill_while_writing_leaves_no_new_file_beside_the_old_summary(
        workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "d"
    assert _decode(workspace, "m1", out) == 0
    before = _snapshot(out)
    _failing_writer(monkeypatch, 2, KeyboardInterrupt())  # dies after the first method's files are written
    with pytest.raises(KeyboardInterrupt):
        _decode(workspace, "m2", out)
    assert _snapshot(out) == before


def test_a_kill_while_publishing_leaves_no_summary(workspace: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed between moving the first file into place and the last: the folder has no summary.json (an
    incomplete decode, visibly), not model 2's files beside model 1's summary; the next decode completes it."""
    from kdlab.evaluate import results

    out = tmp_path / "d"
    assert _decode(workspace, "m1", out) == 0
    real_replace, moved = os.replace, []

    def replace(src, dst):
        if moved:
            raise KeyboardInterrupt
        moved.append(dst)
        real_replace(src, dst)

    monkeypatch.setattr(results.os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        _decode(workspace, "m2", out)
    monkeypatch.setattr(results.os, "replace", real_replace)
    assert moved and not (out / "summary.json").exists()
    (out / ".decode-left-by-a-kill.tmp").mkdir()  # a staging folder a kill -9 leaves: removed by the next decode
    assert _decode(workspace, "m2", out) == 0
    summary = json.loads((out / "summary.json").read_text())
    for method, row in summary.items():
        assert f"\t{row['rate']:.2f}\t" in (out / f"wer-summary-{method}.txt").read_text()
        assert (out / f"errs-{method}.txt").stat().st_size > 0
    assert not [p for p in out.iterdir() if p.is_dir()]


# ----------------------------------------------------------------------------- defect 8


def _count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    import importlib

    decode_module = importlib.import_module("kdlab.search.decode")

    real, calls = decode_module.decode, []

    def decode(model, batch, *args, **kwargs):
        calls.append(len(batch["ids"]))
        return real(model, batch, *args, **kwargs)

    monkeypatch.setattr(decode_module, "decode", decode)
    return calls


@pytest.mark.parametrize("bad, reason", [
    ({"path": "missing.wav"}, "audio file not found"),
    ({"path": "empty.wav"}, "empty file"),
    ({"text": "  "}, "transcript is empty"),
])
def test_a_late_bad_item_is_refused_before_anything_is_decoded(
        workspace: Path, tmp_path: Path, bad: dict, reason: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    (workspace / "empty.wav").write_bytes(b"")
    good = [json.loads(line) for line in (workspace / "test.jsonl").read_text().splitlines()]
    late = {**good[2], "id": "late", "duration": 9.0, **bad}  # the longest: decoded last
    manifest = workspace / f"late-{reason.split()[0]}.jsonl"
    write_manifest(manifest, [*good, late])
    calls, out = _count_decodes(monkeypatch), tmp_path / "d"
    rc = cli(["decode", "--ckpt", str(workspace / "m1" / "epoch-1.pt"), "--methods", METHODS, "--set",
              str(manifest), "--out", str(out), "--max-frames", "150"])
    line = _one_error_line(capsys.readouterr().err)
    assert rc == 2 and calls == [] and not out.exists()
    assert f"{manifest}:5: utterance 'late'" in line and reason in line and "1 of 5 utterances" in line


def test_limit_checks_only_the_items_it_decodes(workspace: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    good = [{**json.loads(line), "path": str(workspace / json.loads(line)["path"])}
            for line in (workspace / "test.jsonl").read_text().splitlines()]
    manifest = tmp_path / "set.jsonl"
    write_manifest(manifest, [*good, {**good[0], "id": "late", "path": str(tmp_path / "missing.wav")}])
    rc = cli(["decode", "--ckpt", str(workspace / "m1" / "epoch-1.pt"), "--methods", "ctc_greedy", "--set",
              str(manifest), "--out", str(tmp_path / "d"), "--limit", "4"])
    assert rc == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "d" / "summary.json").read_text())["ctc_greedy"]["utts"] == 4


def test_a_negative_limit_is_one_line_not_a_dropped_utterance(tmp_path) -> None:
    """``--limit -1`` used to slice ``records[:-1]``: every utterance but the last, silently."""
    from kdlab.data.manifest import LimitError
    from kdlab.evaluate.sets import load_records
    from kdlab.pretrained.check import check_manifest

    manifest = check_manifest("mini-en", "test-clean")
    assert len(load_records(manifest, limit=3)) == 3
    with pytest.raises(LimitError, match="--limit -1: must be >= 0"):
        load_records(manifest, limit=-1)
