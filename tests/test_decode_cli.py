"""``decode(model, batch, methods)`` on real (tiny, untrained) models and the decode/align/bench commands."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from kdlab.cli import main as cli
from kdlab.config import ExperimentConfig, save_config
from kdlab.data.features import GlobalCMVN
from kdlab.data.manifest import write_manifest
from kdlab.data.tokenizer import CharTokenizer
from kdlab.models import build_model
from kdlab.models.config import ModelConfig
from kdlab.search import decode, parse_method

TINY = {"d_model": 32, "heads": 2, "ffn_dim": 64, "enc_blocks": 1, "dec_blocks": 1, "cnn_kernel": 3}
TEXTS = ["今天天气很好", "我们去公园", "好"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-utterance corpus (noise audio) and two run folders (AR, Mask-CTC) with untrained weights."""
    root = tmp_path_factory.mktemp("decode")
    rng = np.random.default_rng(0)
    records = []
    for i, (text, dur) in enumerate(zip(TEXTS, [1.2, 0.9, 0.5], strict=True)):
        sf.write(root / f"u{i}.wav", (rng.standard_normal(int(16000 * dur)) * 0.1).astype("float32"), 16000)
        records.append({"id": f"u{i}", "path": f"u{i}.wav", "duration": dur, "text": text, "speaker": "s"})
    write_manifest(root / "test.jsonl", records)
    tok = CharTokenizer.train(TEXTS, lang="zh")
    for name, kind, extra in (("ar", "ar", {}), ("maskctc", "maskctc", {}), ("stream", "ctc", {"chunk_size": 4})):
        run = root / name
        run.mkdir()
        cfg = ExperimentConfig(name=name)
        cfg.data.corpus, cfg.data.lang = str(root), "zh"
        cfg.model.kind, cfg.model.preset, cfg.model.config = kind, None, {**TINY, **extra}
        save_config(cfg, run / "config.yaml")
        tok.save(run / "tokenizer")
        GlobalCMVN(torch.zeros(80), torch.ones(80)).save(run / "cmvn.json")
        torch.manual_seed(0)
        model = build_model(ModelConfig(**TINY, **extra), tok.vocab_size, kind)
        torch.save({"model": model.state_dict()}, run / "epoch-1.pt")
    return root


def tiny_models(V: int = 20):
    torch.manual_seed(0)
    cfg = ModelConfig(**TINY)
    return build_model(cfg, V, "ar").eval(), build_model(cfg, V, "maskctc").eval()


def test_parse_method():
    assert parse_method("maskctc_beam5") == ("maskctc_beam", 5)
    assert parse_method("ctc_greedy") == ("ctc_greedy", None)
    for bad in ("ctc_greedy3", "beam", "maskctc_beam0"):
        with pytest.raises(ValueError, match="method"):
            parse_method(bad)


def test_decode_runs_encoder_once_and_matches_single_utterances():
    ar, nar = tiny_models()
    batch = {"feats": torch.randn(3, 100, 80), "feat_lens": torch.tensor([100, 70, 40])}
    calls = []
    nar.encode = (lambda f, fl, enc=nar.encode: calls.append(1) or enc(f, fl))
    timings: dict[str, float] = {}
    out = decode(nar, batch, ["ctc_greedy", "maskctc_greedy", "maskctc_beam1", "maskctc_beam3"],
                 timings=timings, p_thr=0.999)
    assert len(calls) == 1 and set(timings) == {"encoder", "ctc_greedy", "maskctc_greedy", "maskctc_beam1",
                                                 "maskctc_beam3"}
    assert out["maskctc_beam1"] == out["maskctc_greedy"]
    assert [len(y) for y in out["maskctc_greedy"]] == [len(y) for y in out["ctc_greedy"]]
    ar_out = decode(ar, batch, ["attention_beam3", "ctc_prefix_beam3"])
    for i, n in enumerate([100, 70, 40]):
        one = {"feats": batch["feats"][i : i + 1, :n], "feat_lens": batch["feat_lens"][i : i + 1]}
        assert decode(nar, one, ["maskctc_beam3"], p_thr=0.999)["maskctc_beam3"][0] == out["maskctc_beam3"][i]
        assert decode(ar, one, ["attention_beam3"])["attention_beam3"][0] == ar_out["attention_beam3"][i]
    assert all(len(y) >= 1 for y in ar_out["attention_beam3"])
    with pytest.raises(ValueError, match="AR model"):
        decode(nar, batch, ["attention_beam"])
    with pytest.raises(ValueError, match="Mask-CTC model"):
        decode(ar, batch, ["maskctc_greedy"])


def test_decode_command_writes_results(workspace: Path, capsys: pytest.CaptureFixture):
    out = workspace / "out"
    rc = cli(["decode", "--ckpt", str(workspace / "maskctc" / "epoch-1.pt"), "--methods",
              "ctc_greedy,maskctc_beam2", "--set", "test", "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "maskctc_beam2: CER" in printed and "I+D" in printed and "RTF" in printed
    for m in ("ctc_greedy", "maskctc_beam2"):
        assert (out / f"recogs-{m}.txt").read_text().count("ref=") == 3
        assert (out / f"errs-{m}.txt").is_file() and (out / f"wer-summary-{m}.txt").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ctc_greedy"]["n_ref"] == sum(len(t) for t in TEXTS) and summary["ctc_greedy"]["rtf"] > 0


def test_decode_command_errors(workspace: Path, capsys: pytest.CaptureFixture):
    ckpt = str(workspace / "maskctc" / "epoch-1.pt")
    assert cli(["decode", "--ckpt", ckpt, "--methods", "attention_beam", "--out", str(workspace / "x")]) == 2
    assert "AR model" in capsys.readouterr().err
    assert cli(["decode", "--ckpt", ckpt, "--set", str(workspace / "nope.jsonl"), "--out", "x"]) == 2
    assert "nope.jsonl" in capsys.readouterr().err
    for empty in ("", " , "):  # nothing to decode is an error, and no result files are written
        out = workspace / f"empty{len(empty)}"
        assert cli(["decode", "--ckpt", ckpt, "--methods", empty, "--out", str(out)]) == 2
        assert "no decoding method given" in capsys.readouterr().err and not out.exists()


def test_align_command(workspace: Path, capsys: pytest.CaptureFixture):
    js = workspace / "align.json"
    rc = cli(["align", "--ckpt", str(workspace / "ar" / "epoch-1.pt"), "--utt", "u1", "--json", str(js)])
    assert rc == 0
    segs = json.loads(js.read_text())
    assert [s["piece"] for s in segs] == list(TEXTS[1])
    assert all(a["end_frame"] <= b["start_frame"] for a, b in zip(segs, segs[1:], strict=False))
    assert cli(["align", "--ckpt", str(workspace / "ar" / "epoch-1.pt"), "--utt", "zz"]) == 2
    assert "zz" in capsys.readouterr().err


def test_bench_decode_json(workspace: Path, capsys: pytest.CaptureFixture):
    js = workspace / "bench.json"
    threads = torch.get_num_threads()
    rc = cli(["bench", "decode", "--ar", str(workspace / "ar" / "epoch-1.pt"), "--nar",
              str(workspace / "maskctc" / "epoch-1.pt"), "--n", "2", "--json", str(js)])
    assert rc == 0
    res = json.loads(js.read_text())
    for key in ("maskctc_greedy_over_encoder", "maskctc_beam10_over_beam1", "ar_beam10_over_maskctc_greedy",
                "ar_exact_over_beam_rule"):
        assert res[key] > 0
    assert set(res["rtf"]) >= {"encoder", "maskctc_greedy", "maskctc_beam10", "attention_beam10",
                               "attention_beam10_exact"}
    assert "maskctc_beam10 / maskctc_beam1" in capsys.readouterr().out
    assert res["threads"] == 1 and torch.get_num_threads() == threads  # restored afterwards
    ops = res["gflops"]
    assert set(ops) == set(res["seconds"]) and ops["encoder"] > 0
    assert ops["maskctc_beam1"] == ops["maskctc_greedy"]  # Algorithm 1 with B = 1 runs greedy's CMLM passes
    assert ops["maskctc_beam10"] >= ops["maskctc_beam1"] >= ops["encoder"]
    assert res["flops_ratios"]["maskctc_greedy_over_encoder"] == pytest.approx(ops["maskctc_greedy"] / ops["encoder"])


def test_count_flops_of_known_products():
    """A linear layer (2, 4) -> (2, 3) is 2·2·4·3 = 48 operations; a (5, 6) x (6, 7) product 420."""
    from kdlab.evaluate.flops import count_flops, flops_per_method

    lin = torch.nn.Linear(4, 3)
    assert count_flops(lin, [torch.zeros(2, 4)]) == 48
    assert count_flops(lambda b: b @ torch.ones(6, 7), [torch.ones(5, 6)] * 2) == 840
    assert flops_per_method({"lin": lin}, {"lin": [torch.zeros(2, 4)]}) == {"lin": 48e-9}


def test_decode_end_rule_option(workspace: Path, capsys: pytest.CaptureFixture):
    ckpt = str(workspace / "ar" / "epoch-1.pt")
    for rule in ("beam", "exact"):
        assert cli(["decode", "--ckpt", ckpt, "--methods", "attention_beam3", "--end-rule", rule, "--limit", "2",
                    "--out", str(workspace / f"dec-{rule}")]) == 0
        assert (workspace / f"dec-{rule}" / "recogs-attention_beam3.txt").read_text().count("ref=") == 2
    with pytest.raises(SystemExit):
        cli(["decode", "--ckpt", ckpt, "--end-rule", "espnet", "--out", str(workspace / "dec-x")])
    assert "invalid choice" in capsys.readouterr().err


def test_decode_chunk_size_option(workspace: Path, capsys: pytest.CaptureFixture):
    """A streaming model decodes with its own chunk or another one; the summary records chunk and latency;
    a chunk option for a non-streaming model is a one-line error."""
    ckpt = str(workspace / "stream" / "epoch-1.pt")
    for chunk, out in ((None, "own"), (2, "c2"), (0, "full")):
        argv = ["decode", "--ckpt", ckpt, "--methods", "ctc_greedy", "--out", str(workspace / out)]
        assert cli(argv + ([] if chunk is None else ["--chunk-size", str(chunk)])) == 0
    summary = {out: json.loads((workspace / out / "summary.json").read_text())["ctc_greedy"] for out in ("own", "c2")}
    assert (summary["own"]["chunk_size"], summary["own"]["latency_ms"]) == (4, 190.0)
    assert (summary["c2"]["chunk_size"], summary["c2"]["latency_ms"]) == (2, 110.0)
    assert "chunk_size" not in json.loads((workspace / "full" / "summary.json").read_text())["ctc_greedy"]
    capsys.readouterr()
    ar = str(workspace / "ar" / "epoch-1.pt")
    assert cli(["decode", "--ckpt", ar, "--chunk-size", "4", "--out", str(workspace / "y")]) == 2
    assert "not a streaming model" in capsys.readouterr().err
