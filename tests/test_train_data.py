"""Training validates its manifests: unusable utterances are skipped and counted by reason (printed at the
start, written to <run>/data_report.json), or refused under data.strict; bad audio found only when decoding
(a truncated FLAC with a valid header) is caught per utterance."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from kdlab.config import config_from_dict
from kdlab.data.manifest import ManifestError, read_manifest, write_manifest

TINY = {"d_model": 32, "heads": 2, "ffn_dim": 64, "enc_blocks": 1, "dec_blocks": 1, "cnn_kernel": 3}


def cfg_for(corpus: Path, cache: Path, **data):
    return config_from_dict({
        "data": {"corpus": str(corpus), "tokenizer": "char", "feature_cache": str(cache), **data},
        "model": {"kind": "ar", "preset": None, "config": TINY},
        "train": {"epochs": 1, "lr": 4e-3, "warmup_steps": 4, "max_frames": 1500, "average_last": 1,
                  "num_threads": 1, "progress": False},
    })


def truncated_flac(src: Path, dst: Path) -> None:
    """A FLAC whose header promises all samples but whose data stops a third of the way in."""
    data, sr = sf.read(src, dtype="float32")
    sf.write(dst, data, sr)
    raw = dst.read_bytes()
    dst.write_bytes(raw[: len(raw) // 3])


@pytest.fixture(scope="module")
def bad_corpus(tiny_corpus_en: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny corpus plus one training utterance per bad case and an out-of-vocabulary dev transcript."""
    out = tmp_path_factory.mktemp("bad-corpus")
    shutil.copy(tiny_corpus_en / "info.json", out / "info.json")
    train, dev = read_manifest(tiny_corpus_en / "train.jsonl"), read_manifest(tiny_corpus_en / "dev.jsonl")
    good = train[0]
    (out / "garbage.wav").write_bytes(b"RIFF\x00\x01garbage" * 20)
    (out / "empty.wav").write_bytes(b"")
    sf.write(out / "short.wav", np.zeros(1600, np.float32), 16000)  # 0.1 s
    truncated_flac(Path(good["path"]), out / "truncated.flac")

    def rec(uid: str, path: Path | str, text: str) -> dict:
        return {**good, "id": uid, "path": str(path), "text": text}

    bad = [rec("bad-unreadable", out / "garbage.wav", good["text"]), rec("bad-empty", out / "empty.wav", "A B"),
           rec("bad-short", out / "short.wav", good["text"]), rec("bad-notext", good["path"], ""),
           rec("bad-punct", good["path"], "?! ..."), rec("bad-truncated", out / "truncated.flac", good["text"])]
    write_manifest(out / "train.jsonl", train + bad)
    write_manifest(out / "dev.jsonl", dev + [rec("dev-oov", good["path"], "HELLO 7 THERE")])
    return out


def test_train_skips_and_counts_bad_utterances(bad_corpus: Path, tmp_path: Path, capsys) -> None:
    from kdlab.training.fit import fit

    run = tmp_path / "run"
    result = fit(cfg_for(bad_corpus, tmp_path / "cache"), run)
    assert result["averaged"] and (run / "avg-1.pt").is_file()
    report = json.loads((run / "data_report.json").read_text(encoding="utf-8"))
    train, dev = report["train"], report["dev"]
    assert train["counts"] == {"unreadable_audio": 2, "empty_audio": 1, "empty_transcript": 2, "too_short": 1}
    reasons = {s["id"]: s["reason"] for s in train["skips"]}
    assert reasons["bad-truncated"] == "unreadable_audio"  # found while decoding (CMVN), not from the header
    assert reasons["bad-punct"] == "empty_transcript" and reasons["bad-short"] == "too_short"
    assert train["total"] == 30 and train["kept"] == 24
    assert dev["counts"] == {"oov": 1} and "7" in dev["skips"][0]["detail"]
    out = capsys.readouterr().out
    assert "data train: 30 utterances, kept 24, skipped 6" in out and "data dev:" in out


def test_decode_failure_in_an_epoch_is_skipped_and_recorded(bad_corpus: Path, tmp_path: Path) -> None:
    """The CMVN comes from elsewhere, so the truncated file is first decoded inside an epoch."""
    from kdlab.training.fit import fit

    donor = tmp_path / "donor"
    donor.mkdir()
    (donor / "cmvn.json").write_text(json.dumps({"mean": [0.0] * 80, "std": [10.0] * 80}))
    run = tmp_path / "run"
    fit(cfg_for(bad_corpus, tmp_path / "cache", cmvn_from=str(donor / "cmvn.json")), run)
    report = json.loads((run / "data_report.json").read_text(encoding="utf-8"))
    skips = {s["id"]: s for s in report["train"]["skips"]}
    assert skips["bad-truncated"]["reason"] == "unreadable_audio"
    assert "decoding failed" in skips["bad-truncated"]["detail"]


def test_strict_mode_refuses_bad_data(bad_corpus: Path, tmp_path: Path) -> None:
    from kdlab.training.fit import fit

    with pytest.raises(ManifestError, match=r"train.jsonl: 5 unusable utterance\(s\).*data.strict"):
        fit(cfg_for(bad_corpus, tmp_path / "cache", strict=True), tmp_path / "run")
    assert not list((tmp_path / "run").glob("*.pt"))


def test_user_errors_are_one_line_with_exit_code_2(bad_corpus: Path, tiny_corpus_en: Path, tmp_path: Path,
                                                    capsys) -> None:
    """A missing manifest, data.strict with bad data, a KD teacher with another vocabulary: one line on
    stderr, exit code 2; ``--debug`` shows the traceback instead."""
    from kdlab.cli import main
    from kdlab.config import save_config
    from kdlab.data.tokenizer import CharTokenizer

    cache = tmp_path / "cache"
    save_config(cfg_for(bad_corpus, cache), tmp_path / "bad.yaml")
    save_config(cfg_for(tiny_corpus_en, cache), tmp_path / "good.yaml")

    def one_line_error(argv: list[str], expected: str) -> None:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and expected in err and "Traceback" not in err

    train = ["train", "--config", str(tmp_path / "good.yaml")]
    one_line_error(train + ["--out", str(tmp_path / "r1"), "--set", "data.train=missing.jsonl"],
                   "kdlab train: error: missing.jsonl: manifest not found")
    one_line_error(["train", "--config", str(tmp_path / "bad.yaml"), "--out", str(tmp_path / "r2"), "--strict"],
                   "unusable utterance(s)")
    nan_cmvn = tmp_path / "nan-cmvn.json"
    nan_cmvn.write_text(json.dumps({"mean": [float("nan")] * 80, "std": [1.0] * 80}))
    one_line_error(train + ["--out", str(tmp_path / "r4"), "--set", f"data.cmvn_from={nan_cmvn}"],
                   "nan-cmvn.json: not a CMVN file (CMVN mean/std are not finite")
    assert main(train + ["--out", str(tmp_path / "teacher")]) == 0
    other = tmp_path / "other-tokenizer"
    texts = [r["text"] for r in read_manifest(tiny_corpus_en / "train.jsonl")]
    CharTokenizer.train(texts + ["7"], lang="en").save(other)  # one character more than the teacher's
    kd = ["--set", "model.kind=maskctc", "--set", "kd.enabled=true",
          "--set", f"kd.teacher={tmp_path / 'teacher' / 'avg-1.pt'}", "--set", f"data.tokenizer_from={other}",
          "--set", f"data.cmvn_from={tmp_path / 'teacher'}"]
    one_line_error(train + ["--out", str(tmp_path / "student"), *kd], "the student's tokenizer differs")
    with pytest.raises(ManifestError):
        main(["--debug", *train, "--out", str(tmp_path / "r3"), "--set", "data.train=missing.jsonl"])


def test_run_folder_refuses_artefacts_made_from_another_config(tiny_corpus_en: Path, tmp_path: Path,
                                                                capsys) -> None:
    """A run that fails after writing tokenizer/ and cmvn.json; a later run in the same folder with another
    tokenizer config is refused instead of reusing them."""
    from kdlab.cli import main
    from kdlab.config import save_config

    save_config(cfg_for(tiny_corpus_en, tmp_path / "cache"), tmp_path / "c.yaml")
    run = ["train", "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run")]
    assert main(run + ["--set", "model.config.heads=3"]) == 2  # d_model 32 is not a multiple of 3 heads
    capsys.readouterr()
    assert (tmp_path / "run" / "tokenizer").is_dir() and (tmp_path / "run" / "cmvn.json").is_file()
    recorded = json.loads((tmp_path / "run" / "artefacts.json").read_text())
    assert recorded["tokenizer"]["kind"] == "char" and "fitted_on" in recorded["cmvn.json"]
    assert main(run + ["--set", "data.tokenizer=bpe", "--set", "data.vocab_size=40"]) == 2
    err = capsys.readouterr().err
    assert "tokenizer: made from something else" in err and "kind: char → bpe" in err
    assert "tokenizer: char" in (tmp_path / "run" / "config.yaml").read_text()  # config.yaml left as it was
    orphan = tmp_path / "run" / ".epoch-1.pt.k1ll3d.tmp"  # left by a kill during a save
    orphan.write_bytes(b"half a checkpoint")
    assert main(run) == 0  # the same config again reuses them, and the start removes the orphan
    assert not orphan.exists()


def test_checkpoints_carry_the_tokenizer_fingerprint(tiny_corpus_en: Path, tmp_path: Path, capsys) -> None:
    """A checkpoint meeting another tokenizer of the same size (decode, align, KD teacher, init_from) is
    refused instead of giving garbage."""
    from kdlab.checkpoint import CheckpointError, load_checkpoint, load_model_from_checkpoint
    from kdlab.cli import main
    from kdlab.config import save_config
    from kdlab.data.tokenizer import CharTokenizer, load_tokenizer, tokenizer_sha256

    save_config(cfg_for(tiny_corpus_en, tmp_path / "cache"), tmp_path / "c.yaml")
    run = tmp_path / "run"
    assert main(["train", "--config", str(tmp_path / "c.yaml"), "--out", str(run)]) == 0
    own = load_tokenizer(run / "tokenizer")
    for name in ("epoch-1.pt", "avg-1.pt"):
        assert load_checkpoint(run / name)["tokenizer_sha256"] == tokenizer_sha256(own)
    swapped = tmp_path / "swapped"  # the same run folder with the same characters in another order
    shutil.copytree(run, swapped)
    shutil.rmtree(swapped / "tokenizer")
    other = CharTokenizer(list(reversed(own.chars)), lang=own.lang)
    other.save(swapped / "tokenizer")
    assert other.vocab_size == own.vocab_size
    capsys.readouterr()
    ckpt = str(swapped / "avg-1.pt")
    assert main(["decode", "--ckpt", ckpt, "--set", "dev", "--out", str(tmp_path / "dec")]) == 2
    assert "made with another tokenizer" in capsys.readouterr().err
    utt = read_manifest(tiny_corpus_en / "dev.jsonl")[0]["id"]
    assert main(["align", "--ckpt", ckpt, "--set", "dev", "--utt", utt]) == 2
    assert "made with another tokenizer" in capsys.readouterr().err
    with pytest.raises(CheckpointError, match="made with another tokenizer"):  # how a KD teacher is loaded
        load_model_from_checkpoint(ckpt)
    assert main(["decode", "--ckpt", str(run / "avg-1.pt"), "--set", "dev", "--out", str(tmp_path / "d")]) == 0
    init = ["--set", f"data.tokenizer_from={swapped}", "--set", f"train.init_from={run / 'avg-1.pt'}"]
    assert main(["train", "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "init"), *init]) == 2
    assert "made with another tokenizer" in capsys.readouterr().err
