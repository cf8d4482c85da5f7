"""Trainer: Noam schedule, NaN skipping, accumulation, clipping, bf16 autocast, and end-to-end runs on the
tiny synthesized corpus (loss decreases for AR and Mask-CTC; resume after a kill equals an uninterrupted run;
KD terms of eq 13)."""

from __future__ import annotations

import csv
import math
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from kdlab.config import TrainConfig, config_from_dict
from kdlab.models.config import ModelConfig
from kdlab.training.loop import TrainingDiverged, TrainState, compute_loss, train_one_epoch
from kdlab.training.runtime import Runtime, autocast_dtype, make_scaler
from kdlab.training.schedule import NoamSchedule, build_optimizer, noam_lr

CPU = Runtime(torch.device("cpu"))
TINY_MODEL = ModelConfig(d_model=32, heads=2, ffn_dim=64, enc_blocks=1, dec_blocks=1, cnn_kernel=3)


# ----------------------------------------------------------------------------- schedule


def test_noam_schedule_values() -> None:
    assert noam_lr(100, 1e-3, 100) == pytest.approx(1e-3)  # the peak at the end of warm-up
    assert noam_lr(50, 1e-3, 100) == pytest.approx(5e-4)  # linear warm-up
    assert noam_lr(400, 1e-3, 100) == pytest.approx(5e-4)  # ∝ step^-0.5 afterwards
    assert noam_lr(7, 1e-3, 0) == 1e-3
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.0)
    sched = NoamSchedule(opt, 1e-3, 4)
    assert sched.lr == pytest.approx(2.5e-4)  # the first step's rate
    sched.step(), sched.step()
    other = NoamSchedule(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.0), 1e-3, 4)
    other.load_state_dict(sched.state_dict())
    assert other.lr == sched.lr == pytest.approx(7.5e-4)


# ----------------------------------------------------------------------------- toy model loop


class Toy(nn.Module):
    """Linear regression of the batch's first token from the mean feature; NaN for utterance ids 'nan*'."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 1)
        self.poison = False

    def forward(self, feats, feat_lens, tokens, token_lens) -> dict:
        pred = self.lin(feats.mean(1)).squeeze(-1)  # (B,)
        err = (pred - tokens[:, 0].float()) ** 2  # (B,)
        loss = err.mean()
        if self.poison:
            loss = loss * float("nan")
        return {"loss": loss, "loss_ctc": loss, "loss_att": loss, "acc": 0.5}


def _batch(uid: str, seed: int, b: int = 2) -> dict:
    gen = torch.Generator().manual_seed(seed)
    return {"ids": [f"{uid}{i}" for i in range(b)], "texts": ["x"] * b,
            "feats": torch.randn(b, 4, 3, generator=gen),
            "feat_lens": torch.full((b,), 4), "tokens": torch.randint(0, 5, (b, 2), generator=gen),
            "token_lens": torch.full((b,), 2)}


class PoisonLoader(list):
    """Batches whose first id starts with 'nan' make the toy loss NaN."""

    def __init__(self, batches: list[dict], model: Toy) -> None:
        super().__init__(batches)
        self.model = model

    def __iter__(self):
        for batch in super().__iter__():
            self.model.poison = batch["ids"][0].startswith("nan")
            yield batch


def _state(model: nn.Module, optimizer: torch.optim.Optimizer | None = None, **train) -> TrainState:
    cfg = TrainConfig(**{"progress": False, "warmup_steps": 0, "lr": 0.1, "grad_clip": 0.0, **train})
    optimizer = optimizer or build_optimizer(model.parameters(), cfg)
    return TrainState(model=model, module=model, optimizer=optimizer,
                      scheduler=NoamSchedule(optimizer, cfg.lr, 0),
                      scaler=make_scaler(CPU.device, None), rt=CPU, cfg=cfg)


def test_nan_batches_are_skipped_and_counted() -> None:
    torch.manual_seed(0)
    model = Toy()
    batches = [_batch("a", 1), _batch("nan", 2), _batch("b", 3), _batch("nan", 4), _batch("c", 5)]
    state = _state(model, max_bad_steps=2)
    metrics = train_one_epoch(state, PoisonLoader(batches, model), epoch=1)
    assert metrics["skipped"] == 2 and state.step == 3
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert math.isfinite(metrics["loss"])


def test_progress_bar_only_on_a_terminal(capsys: pytest.CaptureFixture) -> None:
    """Off a terminal (a log file) tqdm draws nothing: no carriage-return redraws in the log."""
    torch.manual_seed(0)
    model = Toy()
    state = _state(model, progress=True)
    train_one_epoch(state, [_batch("a", 1), _batch("b", 2)], epoch=1)
    err = capsys.readouterr().err
    assert "\r" not in err and "epoch 1" not in err


class NormToy(Toy):
    """The toy with a BatchNorm in front: a train-mode forward updates its running statistics."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(3)

    def forward(self, feats, feat_lens, tokens, token_lens) -> dict:
        return super().forward(self.norm(feats.transpose(1, 2)).transpose(1, 2), feat_lens, tokens, token_lens)


def test_skipped_batch_leaves_parameters_and_buffers_untouched() -> None:
    torch.manual_seed(0)
    model = NormToy()
    good = _batch("a", 1)
    bad = _batch("b", 2)
    bad["feats"] = bad["feats"] * 1e30 * 1e30  # huge audio level: non-finite features and loss
    state = _state(model, max_bad_steps=5)
    train_one_epoch(state, [good], epoch=1)
    params = [p.detach().clone() for p in model.parameters()]
    buffers = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    metrics = train_one_epoch(state, [bad], epoch=2)
    assert metrics["skipped"] == 1
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in buffers.items())  # running mean/var as before
    assert all(torch.equal(a, b) for a, b in zip(params, model.parameters(), strict=True))


def test_too_many_nan_in_a_row_stops_with_message() -> None:
    model = Toy()
    batches = [_batch("a", 1)] + [_batch(f"nan{i}-", i) for i in range(3)]
    with pytest.raises(TrainingDiverged, match=r"epoch 4: 3 non-finite losses in a row.*nan2-0"):
        train_one_epoch(_state(model, max_bad_steps=3), PoisonLoader(batches, model), epoch=4)


def test_gradient_accumulation_equals_one_big_batch() -> None:
    b1, b2 = _batch("a", 1), _batch("b", 2)
    merged = {k: (b1[k] + b2[k]) if isinstance(b1[k], list) else torch.cat([b1[k], b2[k]]) for k in b1}
    results = []
    for batches, accum in (([b1, b2], 2), ([merged], 1)):
        torch.manual_seed(0)
        model = Toy()
        state = _state(model, torch.optim.SGD(model.parameters(), lr=0.1), accum_grad=accum)
        train_one_epoch(state, batches, epoch=1)
        assert state.step == 1
        results.append([p.detach().clone() for p in model.parameters()])
    for a, b in zip(*results, strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_gradient_clipping_bounds_the_update() -> None:
    torch.manual_seed(0)
    model = Toy()
    with torch.no_grad():
        model.lin.weight.fill_(50.0)  # a huge error → a huge gradient
    before = torch.cat([p.detach().flatten() for p in model.parameters()])
    state = _state(model, torch.optim.SGD(model.parameters(), lr=0.0), grad_clip=0.5, lr=1.0)
    train_one_epoch(state, [_batch("a", 1)], epoch=1)
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert (after - before).norm() == pytest.approx(0.5, rel=1e-4)  # SGD, lr 1: update norm = clip


def test_compute_loss_adds_kd_terms() -> None:
    model = Toy()
    batch = _batch("a", 1)

    def distiller(student, batch, out):  # eq 13: L = L_jca + KD terms
        assert student is model
        return out["loss"] * 0 + 2.0, {"kd_enc": 1.5}

    loss, m = compute_loss(model, batch, distiller)
    assert m["loss"] == pytest.approx(m["loss_jca"] + 2.0) and m["loss_kd"] == 2.0 and m["kd_enc"] == 1.5
    assert loss.requires_grad


def test_precision_falls_back_on_cpu_and_bf16_autocast_runs() -> None:
    cpu = torch.device("cpu")
    with pytest.warns(UserWarning, match="needs a GPU"):
        assert autocast_dtype("fp16", cpu) is None
    with pytest.warns(UserWarning, match="needs a GPU"):
        assert autocast_dtype("bf16", cpu) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert autocast_dtype("bf16", cpu, allow_cpu=True) is torch.bfloat16
        assert autocast_dtype("fp32", cpu) is None
    from kdlab.models import build_model

    torch.manual_seed(0)
    model = build_model(TINY_MODEL, 12, "maskctc")
    feats = torch.randn(2, 40, 80)
    batch = {"ids": ["u0", "u1"], "texts": ["", ""], "feats": feats, "feat_lens": torch.tensor([40, 33]),
             "tokens": torch.tensor([[4, 5, 6], [7, 8, -1]]), "token_lens": torch.tensor([3, 2])}
    state = _state(model)
    state.amp_dtype = torch.bfloat16
    metrics = train_one_epoch(state, [batch, batch], epoch=1)
    assert state.step == 2 and math.isfinite(metrics["loss"])
    assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast keeps fp32 master weights


# ----------------------------------------------------------------------------- end to end, tiny corpus


def _cfg(corpus: Path, cache: Path, kind: str, **train):
    return config_from_dict({
        "data": {"corpus": str(corpus), "tokenizer": "char", "feature_cache": str(cache)},
        "model": {"kind": kind, "preset": None, "config": {k: getattr(TINY_MODEL, k) for k in (
            "d_model", "heads", "ffn_dim", "enc_blocks", "dec_blocks", "cnn_kernel")}},
        "train": {"epochs": 2, "lr": 4e-3, "warmup_steps": 4, "max_frames": 1500, "log_interval": 2,
                  "average_last": 2, "keep_last": 3, "num_threads": 1, "progress": False, **train},
    })


def _rows(run: Path, kind: str) -> list[dict]:
    """metrics.csv rows of one kind, without the wall-clock column."""
    with (run / "metrics.csv").open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["kind"] == kind]
    return [{k: v for k, v in r.items() if k != "train_s"} for r in rows]


@pytest.mark.parametrize("kind", ["ar", "maskctc"])
def test_loss_decreases_and_run_folder_is_complete(kind: str, tiny_corpus_en: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from kdlab.checkpoint import load_model_from_checkpoint
    from kdlab.training.fit import fit

    run = tmp_path / "run"
    fit(_cfg(tiny_corpus_en, tmp_path.parent / "fbank-cache", kind, epochs=5), run)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in lines] == [f"epoch {e}/5" for e in range(1, 6)]  # one line per epoch
    assert "dev_acc" in lines[-1] and "\r" not in "".join(lines)
    epochs = _rows(run, "epoch")
    assert [int(r["epoch"]) for r in epochs] == [1, 2, 3, 4, 5]
    first, last = epochs[0], epochs[-1]
    assert float(last["loss"]) < 0.95 * float(first["loss"])  # training loss drops (e.g. 69.4 → 64.1)
    assert float(last["acc"]) > float(first["acc"])
    assert float(last["dev_loss"]) < float(first["dev_loss"])  # and so does the dev loss
    assert _rows(run, "step") and all(float(r["lr"]) > 0 for r in _rows(run, "step"))
    assert sorted(p.name for p in run.glob("*.pt")) == ["avg-2.pt", "epoch-3.pt", "epoch-4.pt", "epoch-5.pt"]
    model, tokenizer, cmvn, exp_cfg = load_model_from_checkpoint(run / "avg-2.pt")
    assert exp_cfg.model.kind == kind and not model.training and cmvn.dim == 80
    assert (run / "config.yaml").is_file() and tokenizer.vocab_size == model.ctc_log_probs(
        torch.zeros(1, 1, TINY_MODEL.d_model)).shape[-1]


def test_resume_after_kill_equals_uninterrupted_run(tiny_corpus_en: Path, tmp_path: Path) -> None:
    from kdlab.checkpoint import load_checkpoint
    from kdlab.training.fit import fit

    cache = tmp_path.parent / "fbank-cache"
    cfg = _cfg(tiny_corpus_en, cache, "maskctc")  # random masks, SpecAugment and dropout all in play
    fit(cfg, tmp_path / "straight")

    class Killed(Exception):
        pass

    def kill_after_first(epoch, state, metrics) -> None:
        if epoch == 1:
            raise Killed

    with pytest.raises(Killed):
        fit(cfg, tmp_path / "killed", on_epoch_end=kill_after_first)
    assert sorted(p.name for p in (tmp_path / "killed").glob("*.pt")) == ["epoch-1.pt"]
    with pytest.raises(FileExistsError, match="--resume"):
        fit(cfg, tmp_path / "killed")
    fit(cfg, tmp_path / "killed", resume=True)

    straight, resumed = _rows(tmp_path / "straight", "epoch"), _rows(tmp_path / "killed", "epoch")
    assert [r["epoch"] for r in resumed] == ["1", "2"]  # no duplicated rows after the resume
    assert resumed == straight  # identical losses, accuracies, dev metrics, lr, step counts
    assert _rows(tmp_path / "straight", "step") == _rows(tmp_path / "killed", "step")
    a = load_checkpoint(tmp_path / "straight" / "epoch-2.pt")
    b = load_checkpoint(tmp_path / "killed" / "epoch-2.pt")
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_train_cli_and_overrides(tiny_corpus_en: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from kdlab.cli import main
    from kdlab.config import save_config

    cfg = _cfg(tiny_corpus_en, tmp_path.parent / "fbank-cache", "ar", epochs=1)
    save_config(cfg, tmp_path / "c.yaml")
    out = tmp_path / "run"
    assert main(["train", "--config", str(tmp_path / "c.yaml"), "--out", str(out),
                 "--set", "train.max_frames=2500", "--set", "train.average_last=1"]) == 0
    assert "dev_loss=" in capsys.readouterr().out
    assert "max_frames: 2500" in (out / "config.yaml").read_text()
    assert (out / "avg-1.pt").is_file()
    # extend the finished run by one epoch from its own config
    assert main(["train", "--out", str(out), "--resume", "--set", "train.epochs=2"]) == 0
    assert [r["epoch"] for r in _rows(out, "epoch")] == ["1", "2"]
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--resume"]) == 0  # finished: reports the last epoch again
    assert "dev_loss=" in capsys.readouterr().out
    typo = ["--set", "train.epohcs=1"]
    assert main(["train", "--config", str(tmp_path / "c.yaml"), "--out", str(out), *typo]) == 2
    assert "unknown config key 'train.epohcs'" in capsys.readouterr().err


def test_benchmark_throughput(tiny_corpus_en: Path) -> None:
    from kdlab.training.fit import benchmark_throughput

    result = benchmark_throughput(TINY_MODEL, "maskctc", tiny_corpus_en / "train.jsonl", steps=2,
                                  device="cpu", max_frames=1500, warmup=1)
    assert result["steps"] == 2 and result["frames"] > 0
    assert result["utt_sec_per_sec"] == pytest.approx(result["frames"] * 0.01 / result["wall_s"])
    assert result["frames_per_sec"] > 0 and result["params"] > 0


def test_kd_student_trains_with_teacher_terms(tiny_corpus_en: Path, tmp_path: Path) -> None:
    """Eq 13 end to end: an AR teacher run, then a Mask-CTC student with frame- and sequence-level KD
    that takes the teacher's tokenizer and CMVN from the teacher's run folder."""
    from kdlab.training.fit import fit

    cache = tmp_path.parent / "fbank-cache"
    fit(_cfg(tiny_corpus_en, cache, "ar", epochs=1, average_last=1), tmp_path / "teacher")
    from kdlab.kd.config import KDConfig

    cfg = _cfg(tiny_corpus_en, cache, "maskctc", epochs=1, average_last=1)
    cfg.kd = KDConfig.stage2(str(tmp_path / "teacher" / "avg-1.pt"), nbest=2, beam=2)
    fit(cfg, tmp_path / "student")
    row = _rows(tmp_path / "student", "epoch")[0]
    assert float(row["loss"]) == pytest.approx(float(row["loss_jca"]) + float(row["loss_kd"]), rel=1e-4)
    assert float(row["loss_kd"]) > 0 and float(row["kd_enc_s"]) > 0 and float(row["kd_dec_f"]) > 0
    teacher_tok = (tmp_path / "teacher" / "tokenizer" / "tokenizer.json").read_text()
    assert (tmp_path / "student" / "tokenizer" / "tokenizer.json").read_text() == teacher_tok
    teacher_cmvn = (tmp_path / "teacher" / "cmvn.json").read_text()
    assert (tmp_path / "student" / "cmvn.json").read_text() == teacher_cmvn
    _check_bench_run(tmp_path / "student")


def _check_bench_run(run_dir: Path) -> None:
    """``kdlab bench train --run`` times the folder's own step: here eq 13 with every KD term active."""
    from kdlab.training.bench_run import benchmark_run

    before = sorted(p.name for p in run_dir.iterdir())
    result = benchmark_run(run_dir, steps=1, warmup=1)
    assert result["kind"] == "maskctc" and result["steps"] == 1 and result["frames"] > 0
    assert result["kd_terms"] == ["dec_f", "dec_s", "enc_f", "enc_s"]
    assert result["utt_sec_per_sec"] == pytest.approx(result["frames"] * 0.01 / result["wall_s"])
    assert sorted(p.name for p in run_dir.iterdir()) == before  # nothing written


def test_bench_train_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from kdlab.cli import main

    assert main(["bench", "train", "--run", str(tmp_path)]) != 0
    err = capsys.readouterr().err
    assert f"{tmp_path}: not a prepared run folder (missing config.yaml, cmvn.json, tokenizer)" in err
    assert main(["bench", "train"]) != 0
    assert "give --manifest (a model preset on a manifest) or --run (a run folder)" in capsys.readouterr().err


@pytest.mark.parametrize("poison", ["train", "dev"])
def test_run_without_finite_losses_fails_and_writes_no_model(poison: str, tiny_corpus_en: Path,
                                                             tmp_path: Path, monkeypatch) -> None:
    """Every training batch skipped, or a non-finite dev loss: the run stops before any checkpoint."""
    import kdlab.training.loop as loop
    from kdlab.training.fit import fit

    real = loop.compute_loss

    def nan_loss(model, batch, *args, **kwargs):
        loss, metrics = real(model, batch, *args, **kwargs)
        return loss * float("nan"), {**metrics, "loss": math.nan}

    poisoned_train = poison == "train"
    monkeypatch.setattr(loop, "compute_loss", lambda model, batch, *a, **k: (
        nan_loss if model.training == poisoned_train else real)(model, batch, *a, **k))
    run = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match="every training batch" if poisoned_train else "dev loss is nan"):
        fit(_cfg(tiny_corpus_en, tmp_path.parent / "fbank-cache", "ar", epochs=1, average_last=1), run)
    assert not list(run.glob("*.pt"))
