"""Two-process DDP training on CPU (gloo): both ranks end with identical weights; only rank 0 writes."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, corpus: str, tmp: str) -> None:
    """One torchrun-like process: environment variables, then the normal ``fit``."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    from kdlab.config import config_from_dict
    from kdlab.training.fit import fit

    cfg = config_from_dict({
        "data": {"corpus": corpus, "tokenizer": "char", "feature_cache": f"{tmp}/cache"},
        "model": {"kind": "maskctc", "preset": None,
                  "config": {"d_model": 32, "heads": 2, "ffn_dim": 64, "enc_blocks": 1, "dec_blocks": 1,
                             "cnn_kernel": 3}},
        "train": {"epochs": 1, "lr": 4e-3, "warmup_steps": 2, "max_frames": 1500, "accum_grad": 2,
                  "num_threads": 1, "device": "cpu", "progress": False, "average_last": 1, "keep_last": 1},
    })

    def dump(epoch, state, metrics) -> None:
        torch.save({"weights": state.module.state_dict(), "step": state.step, "metrics": metrics},
                   f"{tmp}/rank{rank}.pt")

    fit(cfg, f"{tmp}/run", on_epoch_end=dump)


def test_two_process_gloo_ddp(tiny_corpus_en: Path, tmp_path: Path) -> None:
    mp.spawn(_worker, args=(2, _free_port(), str(tiny_corpus_en), str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0["step"] == r1["step"] > 0
    assert all(torch.equal(r0["weights"][k], r1["weights"][k]) for k in r0["weights"])
    r0["metrics"].pop("train_s"), r1["metrics"].pop("train_s")
    assert r0["metrics"] == r1["metrics"]  # epoch metrics are all-reduced over both ranks
    run = tmp_path / "run"
    assert sorted(p.name for p in run.glob("*.pt")) == ["avg-1.pt", "epoch-1.pt"]
    saved = torch.load(run / "epoch-1.pt", weights_only=True)
    assert len(saved["rng"]) == 2  # every rank's RNG state, for an exact resume
    assert all(torch.equal(saved["model"][k], r0["weights"][k]) for k in r0["weights"])
