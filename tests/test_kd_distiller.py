"""The Distiller (eq 13 KD part) on tiny models, and a short distillation run on the tiny Mandarin corpus."""

import math
from pathlib import Path

import pytest
import torch

from kdlab.kd.config import KDConfig
from kdlab.kd.distiller import Distiller, build_distiller, cmvn_bridge
from kdlab.kd.losses import dec_frame_kd, enc_frame_kd, enc_seq_kd, nbest_weights, teacher_token_dist
from kdlab.kd.teacher import NBestCache, make_nbest_batch
from kdlab.models import ModelConfig, build_model, ctc_loss_per_utt
from kdlab.models.ar import add_sos_eos
from kdlab.tokens import NUM_SPECIAL

V = 12


def tiny(kind: str, vocab: int = V, seed: int = 0, d_model: int = 16):
    torch.manual_seed(seed)
    cfg = ModelConfig(d_model=d_model, heads=2, ffn_dim=2 * d_model, enc_blocks=1, dec_blocks=1, cnn_kernel=3,
                      dropout=0.0, pos_dropout=0.0)
    return build_model(cfg, vocab, kind)


def random_batch(vocab: int = V) -> dict:
    gen = torch.Generator().manual_seed(3)
    tokens = torch.randint(NUM_SPECIAL, vocab, (2, 4), generator=gen)
    tokens[1, 3] = -1
    return {"ids": ["a", "b"], "feats": torch.randn(2, 44, 80, generator=gen),
            "feat_lens": torch.tensor([44, 37]), "tokens": tokens, "token_lens": torch.tensor([4, 3])}


def student_out(student, batch, seed: int = 5) -> dict:
    gen = torch.Generator().manual_seed(seed)
    return student(batch["feats"], batch["feat_lens"], batch["tokens"], batch["token_lens"], generator=gen)


def test_distiller_stage1_is_eq13_of_frame_terms():
    teacher, student, batch = tiny("ar").eval(), tiny("maskctc", seed=1), random_batch()
    out = student_out(student, batch)
    loss, metrics = Distiller(teacher, KDConfig.stage1("t.pt"))(student, batch, out)
    with torch.no_grad():  # the teacher's outputs, computed independently
        enc, enc_lens = teacher.encode(batch["feats"], batch["feat_lens"])
        ys_in, _ = add_sos_eos(batch["tokens"], batch["token_lens"])
        t_dec = teacher.decoder_logits(enc, enc_lens, ys_in, batch["token_lens"] + 1)[:, :4]
        enc_f = enc_frame_kd(out["ctc_logp"], teacher.ctc_log_probs(enc), out["enc_lens"])
        dec_f = dec_frame_kd(out["dec_logits"], teacher_token_dist(t_dec), out["mask"])
    assert set(metrics) == {"kd", "kd_enc_f", "kd_dec_f"}
    assert metrics["kd_enc_f"] == pytest.approx(float(enc_f), rel=1e-5)
    assert metrics["kd_dec_f"] == pytest.approx(float(dec_f), rel=1e-5)
    assert loss.item() == pytest.approx(0.5 * float(enc_f) + 0.3 * float(dec_f), rel=1e-5)
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert student.ctc.ctc_lo.weight.grad.abs().sum() > 0
    assert student.decoder.parameters().__next__().grad is not None


def test_distiller_stage2_sequence_terms_from_cache():
    teacher, student, batch = tiny("ar").eval(), tiny("maskctc", seed=1), random_batch()
    cache = NBestCache("t" * 64, "k" * 64, beam=3, nbest=3, ctc_weight=0.3)
    cache.entries = {"a": [([5, 6, 7], -1.0), ([5, 6], -2.0), ([], -9.0)], "b": [([8, 9], -0.5), ([8], -1.5)]}
    cfg = KDConfig.stage2("t.pt", nbest=3, beam=3, seed=7)
    out = student_out(student, batch)
    loss, metrics = Distiller(teacher, cfg, cache)(student, batch, out)
    assert set(metrics) == {"kd", "kd_enc_f", "kd_dec_f", "kd_enc_s", "kd_dec_s"}
    nb = make_nbest_batch(cache, ["a", "b"])
    w = nbest_weights(nb.scores, nb.utt, 2)
    za, zb = 1 + math.exp(-1) + math.exp(-8), 1 + math.exp(-1)  # eq 9 denominators
    expected_w = [1 / za, math.exp(-1) / za, math.exp(-8) / za, 1 / zb, math.exp(-1) / zb]
    assert w.tolist() == pytest.approx(expected_w, rel=1e-5)
    enc_s = enc_seq_kd(out["ctc_logp"], out["enc_lens"], nb.tokens, nb.lens, nb.utt, w, ctc_loss_per_utt)
    assert metrics["kd_enc_s"] == pytest.approx(float(enc_s.detach()), rel=1e-5)
    assert metrics["kd_dec_s"] > 0
    m = metrics
    expected = 0.5 * (m["kd_enc_f"] + m["kd_enc_s"]) + 0.5 * (m["kd_dec_f"] + m["kd_dec_s"])  # eq 13
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    again = Distiller(teacher, cfg, cache)(student, batch, out)[1]  # same seed → same eq 12 masks
    assert again["kd_dec_s"] == pytest.approx(metrics["kd_dec_s"], rel=1e-6)
    with pytest.raises(KeyError, match="'b'"):
        del cache.entries["b"]
        Distiller(teacher, cfg, cache)(student, batch, out)
    with pytest.raises(ValueError, match="N-best cache"):
        Distiller(teacher, cfg, None)


def test_distiller_state_resumes_the_eq12_masking_rng():
    teacher, student, batch = tiny("ar").eval(), tiny("maskctc", seed=1), random_batch()
    cache = NBestCache("t" * 64, "k" * 64, beam=2, nbest=2, ctc_weight=0.3)
    cache.entries = {"a": [([5, 6, 7, 8], -1.0), ([5, 6], -2.0)], "b": [([8, 9, 10], -0.5), ([8], -1.5)]}
    cfg = KDConfig.stage2("t.pt", nbest=2, beam=2, seed=7)
    out = student_out(student, batch)
    straight = Distiller(teacher, cfg, cache)
    straight(student, batch, out)  # first batch
    saved = straight.state_dict()
    second = straight(student, batch, out)[1]["kd_dec_s"]
    resumed = Distiller(teacher, cfg, cache)
    resumed.load_state_dict(saved)
    assert resumed(student, batch, out)[1]["kd_dec_s"] == pytest.approx(second, rel=1e-6)
    assert Distiller(teacher, cfg, cache).state_dict() == {}


def test_distiller_rejects_incompatible_students():
    teacher, batch = tiny("ar").eval(), random_batch()
    wrong_vocab = tiny("maskctc", vocab=V + 1)
    with pytest.raises(ValueError, match="vocabulary"):
        Distiller(teacher, KDConfig.stage1("t.pt"))(wrong_vocab, batch, student_out(wrong_vocab, batch))
    ar_student = tiny("ar", seed=2)
    out = ar_student(batch["feats"], batch["feat_lens"], batch["tokens"], batch["token_lens"])
    with pytest.raises(ValueError, match="Mask-CTC student"):
        Distiller(teacher, KDConfig.stage1("t.pt", gamma_dec=0.3, beta_f=1.0))(ar_student, batch, out)
    student = tiny("maskctc", seed=1)
    out = student_out(student, batch)
    out["enc_lens"] = out["enc_lens"] - 1  # as if the student subsampled differently
    with pytest.raises(ValueError, match="subsampling"):
        Distiller(teacher, KDConfig.stage1("t.pt"))(student, batch, out)
    out = student_out(student, batch)
    out["ctc_logp"] = out["ctc_logp"][:, :-1]
    with pytest.raises(ValueError, match="frame rate"):
        Distiller(teacher, KDConfig.stage1("t.pt"))(student, batch, out)


def test_cmvn_bridge_hand_case():
    from kdlab.data.features import GlobalCMVN

    teacher_cmvn = GlobalCMVN(torch.tensor([1.0, 0.0]), torch.tensor([2.0, 1.0]))
    assert cmvn_bridge(teacher_cmvn, teacher_cmvn) is None
    student_cmvn = GlobalCMVN(torch.tensor([3.0, 0.0]), torch.tensor([4.0, 1.0]))
    raw = torch.tensor([[[7.0, 5.0]]])  # (1, 1, 2)
    to_teacher = cmvn_bridge(student_cmvn, teacher_cmvn)
    assert torch.allclose(to_teacher(student_cmvn(raw)), teacher_cmvn(raw))


# ----------------------------------------------------------------------------- end to end, tiny corpus


def write_run(run: Path, kind: str, model, tokenizer, cmvn, d_model: int) -> Path:
    """A run folder as the trainer writes it: config.yaml, tokenizer/, cmvn.json, epoch-1.pt."""
    from kdlab.checkpoint import save_atomic
    from kdlab.config import ExperimentConfig, ModelSection, save_config

    cfg = {"d_model": d_model, "heads": 2, "ffn_dim": 2 * d_model, "enc_blocks": 1, "dec_blocks": 1,
           "cnn_kernel": 3, "dropout": 0.0, "pos_dropout": 0.0}
    run.mkdir(parents=True, exist_ok=True)
    save_config(ExperimentConfig(model=ModelSection(kind=kind, preset=None, config=cfg)), run / "config.yaml")
    tokenizer.save(run / "tokenizer")
    cmvn.save(run / "cmvn.json")
    save_atomic({"model": model.state_dict(), "kind": kind}, run / "epoch-1.pt")
    return run / "epoch-1.pt"


def train_steps(model, batch, steps: int, lr: float, distiller=None) -> list[dict]:
    from kdlab.training.loop import compute_loss

    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    model.train()
    for _ in range(steps):
        loss, metrics = compute_loss(model, batch, distiller)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(metrics)
    return history


@pytest.mark.slow
def test_distillation_run_on_tiny_corpus(tiny_corpus_zh, tmp_path):
    from kdlab.data.dataset import fit_cmvn, make_loader
    from kdlab.data.manifest import read_manifest
    from kdlab.data.tokenizer import CharTokenizer

    torch.manual_seed(0)
    manifest = str(tiny_corpus_zh / "train.jsonl")
    tokenizer = CharTokenizer.train([r["text"] for r in read_manifest(manifest)], lang="zh")
    cmvn = fit_cmvn(manifest)
    batch = next(iter(make_loader(manifest, tokenizer, cmvn, max_frames=10**7)))  # all 24 utterances

    teacher = build_model(ModelConfig(d_model=32, heads=2, ffn_dim=64, enc_blocks=1, dec_blocks=1,
                                      cnn_kernel=3, dropout=0.0, pos_dropout=0.0), tokenizer.vocab_size, "ar")
    teacher_hist = train_steps(teacher, batch, steps=20, lr=3e-3)
    assert teacher_hist[-1]["loss"] < teacher_hist[0]["loss"]
    teacher_ckpt = write_run(tmp_path / "teacher", "ar", teacher, tokenizer, cmvn, d_model=32)

    student_run = tmp_path / "student"
    tokenizer.save(student_run / "tokenizer")
    cmvn.save(student_run / "cmvn.json")
    cfg = KDConfig.stage2(str(teacher_ckpt), nbest=3, beam=3)
    logs: list[str] = []
    distiller = build_distiller(cfg, student_run, manifest, "cpu", log=logs.append)
    assert (student_run / "nbest.jsonl").is_file() and "wrote" in logs[-1]
    assert len(distiller.nbest.entries) == 24 and distiller.feat_map is None
    build_distiller(cfg, student_run, manifest, "cpu", log=logs.append)
    assert "reusing" in logs[-1]

    student = tiny("maskctc", vocab=tokenizer.vocab_size, seed=1)
    hist = train_steps(student, batch, steps=10, lr=3e-3, distiller=distiller)
    first, last = [h["kd"] for h in hist[:3]], [h["kd"] for h in hist[-3:]]
    assert sum(last) < 0.8 * sum(first), (first, last)
    for term in ("kd_enc_f", "kd_enc_s", "kd_dec_f", "kd_dec_s"):
        assert all(math.isfinite(h[term]) for h in hist)
    assert hist[-1]["kd_enc_f"] < hist[0]["kd_enc_f"]

    CharTokenizer.train(["别的字"], lang="zh").save(tmp_path / "other" / "tokenizer")
    with pytest.raises(ValueError, match="differs from the teacher's"):
        build_distiller(cfg, tmp_path / "other", manifest, "cpu", log=logs.append)

    # the KD families take this teacher where its kind fits, and name the mismatch where it does not
    inter = KDConfig(enabled=True, teacher=str(teacher_ckpt), method="inter")
    assert type(build_distiller(inter, student_run, manifest, "cpu")).__name__ == "InterKD"
    with pytest.raises(ValueError, match="kd.method 'onebest' needs a teacher of kind transducer, got 'ar'"):
        build_distiller(KDConfig(enabled=True, teacher=str(teacher_ckpt), method="onebest"), student_run, manifest)
