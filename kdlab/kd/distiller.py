"""The Distiller: the KD part of eq 13 for one training batch of a Mask-CTC student.

The trainer calls ``kd_loss, metrics = distiller(student, batch, student_out)`` inside ``compute_loss`` and
adds ``kd_loss`` to the student's eq 6 loss. The frozen AR teacher runs live on the very features the
student saw (same SpecAugment / speed perturbation draw); its N-best lists come from the on-disk cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from kdlab.checkpoint import sha256_file
from kdlab.config import ConfigError
from kdlab.data.tokenizer import sha256_dir
from kdlab.kd.config import TEACHER_KINDS, KDConfig
from kdlab.kd.losses import (
    dec_frame_kd,
    dec_seq_kd,
    enc_frame_kd,
    enc_seq_kd,
    kd_objective,
    nbest_weights,
    teacher_token_dist,
    term_weights,
)
from kdlab.kd.teacher import (
    NBestBatch,
    NBestCache,
    build_or_load_nbest,
    make_nbest_batch,
    teacher_posteriors,
)

FeatMap = Callable[[torch.Tensor], torch.Tensor]


class Distiller:
    """Eq 7, 8, 11, 12 combined by eq 10/13 (KD part only); see kdlab.kd.losses for the normalisations."""

    def __init__(self, teacher: torch.nn.Module, cfg: KDConfig, nbest: NBestCache | None = None,
                 feat_map: FeatMap | None = None) -> None:
        self.teacher = teacher.eval().requires_grad_(False)
        self.cfg = cfg
        self.nbest = nbest
        self.feat_map = feat_map  # student-normalised features → teacher-normalised (None: same CMVN)
        self.weights = term_weights(cfg.beta_f, cfg.beta_s, cfg.gamma_enc, cfg.gamma_dec)
        self.generator: torch.Generator | None = None  # hypothesis masking of eq 12, seeded by cfg.seed
        self.checked = False
        if (self.weights["enc_s"] or self.weights["dec_s"]) and nbest is None:
            raise ConfigError("sequence-level KD (beta_s > 0) needs the teacher's N-best cache")

    def __call__(self, student: torch.nn.Module, batch: dict, student_out: dict
                 ) -> tuple[torch.Tensor, dict[str, float]]:
        """Returns γ_enc·(β_F·L_F + β_S·L_S)_enc + γ_dec·(β_F·L_F + β_S·L_S)_dec and each term as a metric."""
        self.teacher.eval()  # stays frozen even if a caller switched every module to train()
        feats = batch["feats"]
        if self.feat_map is not None:
            feats = self.feat_map(feats)
        need_dec = self.weights["dec_f"] > 0  # eq 11 needs the teacher decoder under teacher forcing
        reference = (batch["tokens"], batch["token_lens"]) if need_dec else (None, None)
        t_out = teacher_posteriors(self.teacher, feats, batch["feat_lens"], *reference)
        if not self.checked:
            check_compatible(self.teacher, student, student_out, t_out, need_dec or self.weights["dec_s"] > 0)
            self.checked = True
        terms = self._frame_terms(student_out, t_out)
        if self.weights["enc_s"] or self.weights["dec_s"]:
            terms.update(self._sequence_terms(student, batch, student_out))
        loss = kd_objective(terms, self.cfg.beta_f, self.cfg.beta_s, self.cfg.gamma_enc, self.cfg.gamma_dec)
        metrics = {f"kd_{name}": float(value.detach()) for name, value in terms.items()}
        metrics["kd"] = float(loss.detach())
        return loss, metrics

    def _frame_terms(self, s_out: dict, t_out: dict) -> dict[str, torch.Tensor]:
        """Eq 7 on the CTC posteriors and eq 11 on the masked decoder positions."""
        terms = {}
        if self.weights["enc_f"]:
            terms["enc_f"] = enc_frame_kd(s_out["ctc_logp"], t_out["ctc_logp"], s_out["enc_lens"],
                                          self.cfg.enc_frame_norm)
        if self.weights["dec_f"]:
            teacher_probs = teacher_token_dist(t_out["dec_logits"])  # (B, L, V)
            terms["dec_f"] = dec_frame_kd(s_out["dec_logits"], teacher_probs, s_out["mask"])
        return terms

    def _sequence_terms(self, student: torch.nn.Module, batch: dict, s_out: dict) -> dict[str, torch.Tensor]:
        """Eq 8 and eq 12 over the cached N-best lists, weighted by P′ (eq 9)."""
        assert self.nbest is not None
        device = s_out["ctc_logp"].device
        nb = make_nbest_batch(self.nbest, list(batch["ids"]), device, self.cfg.nbest)
        batch_size = s_out["ctc_logp"].size(0)
        weights = nbest_weights(nb.scores, nb.utt, batch_size)  # (M,)
        terms = {}
        if self.weights["enc_s"]:
            from kdlab.models.ctc import ctc_loss_per_utt

            terms["enc_s"] = enc_seq_kd(s_out["ctc_logp"], s_out["enc_lens"], nb.tokens, nb.lens, nb.utt,
                                        weights, ctc_loss_per_utt)
        if self.weights["dec_s"]:
            terms["dec_s"] = self._dec_seq(student, s_out, nb, weights, batch_size)
        return terms

    def _dec_seq(self, student: torch.nn.Module, s_out: dict, nb: NBestBatch, weights: torch.Tensor,
                 batch_size: int) -> torch.Tensor:
        """Eq 12: mask each ŷ as in training (k ~ U{1..|ŷ|} distinct positions), score the student's CMLM."""
        from kdlab.models.maskctc import sample_mlm_mask
        from kdlab.tokens import MASK

        keep = nb.lens > 0  # an empty ŷ has no position to mask: it contributes nothing
        hyps, lens, utt, w = nb.tokens[keep], nb.lens[keep], nb.utt[keep], weights[keep]
        if hyps.size(0) == 0:
            return s_out["dec_logits"].sum() * 0.0
        mask = sample_mlm_mask(lens, hyps.size(1), self._generator(hyps.device))  # (M, S)
        dec_in = hyps.masked_fill(mask, MASK)  # padding stays IGNORE_ID
        enc, enc_lens = s_out["enc"][utt], s_out["enc_lens"][utt]  # (M, T', D), (M,)
        logits = student.mlm_logits(enc, enc_lens, dec_in, lens)  # (M, S, V)
        return dec_seq_kd(logits, hyps, mask, w, batch_size)

    def state_dict(self) -> dict:
        """The eq-12 masking RNG, so that a resumed run draws the same masks as an uninterrupted one."""
        return {} if self.generator is None else {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        if "generator" in state:
            self.generator = torch.Generator().manual_seed(self.cfg.seed)
            self.generator.set_state(state["generator"])

    def _generator(self, device: torch.device) -> torch.Generator:
        if self.generator is None or self.generator.device != device:
            self.generator = torch.Generator(device=device).manual_seed(self.cfg.seed)
        return self.generator

    def to(self, device: torch.device | str) -> Distiller:
        self.teacher.to(device)
        return self


def check_same_frames(s_out: dict, t_out: dict) -> None:
    """Student and teacher outputs (``ctc_logp`` (B, T', V), ``enc_lens`` (B,)) must have one vocabulary and
    one frame count per utterance: a ConfigError otherwise."""
    vs, vt = s_out["ctc_logp"].size(-1), t_out["ctc_logp"].size(-1)
    if vs != vt:
        raise ConfigError(f"KD: the student's vocabulary has {vs} tokens but the teacher's has {vt}; "
                          "both must use one tokenizer")
    if not torch.equal(s_out["enc_lens"].cpu(), t_out["enc_lens"].cpu()):
        raise ConfigError(f"KD: encoder frame counts differ (student {s_out['enc_lens'].tolist()}, teacher "
                          f"{t_out['enc_lens'].tolist()}); teacher and student must share the subsampling")


def check_compatible(teacher: torch.nn.Module, student: torch.nn.Module, s_out: dict, t_out: dict,
                     needs_mlm: bool) -> None:
    """Teacher and student must share the vocabulary and the frame rate (subsampling); raise otherwise."""
    check_same_frames(s_out, t_out)
    if not hasattr(teacher, "decoder_logits"):
        raise ConfigError(f"KD: the teacher must be an AR model (got {type(teacher).__name__})")
    if needs_mlm and ("mask" not in s_out or not hasattr(student, "mlm_logits")):
        raise ConfigError(f"KD: decoder distillation (gamma_dec > 0) needs a Mask-CTC student "
                         f"(got {type(student).__name__})")


def cmvn_bridge(student_cmvn: Any, teacher_cmvn: Any) -> FeatMap | None:
    """Map features normalised with the student's CMVN onto the teacher's (None when they are equal)."""
    if torch.equal(student_cmvn.mean, teacher_cmvn.mean) and torch.equal(student_cmvn.std, teacher_cmvn.std):
        return None
    scale = student_cmvn.std / teacher_cmvn.std  # (D,)
    shift = (student_cmvn.mean - teacher_cmvn.mean) / teacher_cmvn.std  # (D,)

    def to_teacher(feats: torch.Tensor) -> torch.Tensor:  # (B, T, D) → (B, T, D)
        return feats * scale.to(feats.device) + shift.to(feats.device)

    return to_teacher


def build_distiller(kd_cfg: KDConfig, run_dir: str | Path, train_manifest: Any,
                    device: torch.device | str = "cpu", log: Callable[[str], None] = print) -> Any:
    """Load the frozen teacher, check it against the student's run folder, build/load the N-best cache.

    ``kd_cfg.method`` other than "ar-nar" returns that KD family's distiller (kdlab.kd.families).

    run_dir: the student's run folder; its ``tokenizer/`` (when present) must hold the teacher's vocabulary
    and its ``cmvn.json`` (when present and different from the teacher's) is bridged onto the teacher's.
    train_manifest: the training manifest (path or records); the N-best lists are searched on its clean
    features (no SpecAugment / speed perturbation) only when β_S > 0, then cached at ``kd_cfg.nbest_cache``
    (default ``<run_dir>/nbest.jsonl``). Frame rate and vocabulary are checked again on the first batch.
    """
    from kdlab.checkpoint import load_model_from_checkpoint
    from kdlab.data.features import GlobalCMVN

    if not kd_cfg.teacher:
        raise ConfigError("kd.teacher: no teacher checkpoint given")
    teacher, tokenizer, t_cmvn, t_exp = load_model_from_checkpoint(kd_cfg.teacher, device)
    allowed = TEACHER_KINDS[kd_cfg.method]
    if t_exp.model.kind not in allowed:
        raise ConfigError(f"kd.teacher {kd_cfg.teacher}: kd.method {kd_cfg.method!r} needs a teacher of kind "
                         f"{' or '.join(allowed)}, got {t_exp.model.kind!r}")
    run_dir = Path(run_dir)
    check_student_tokenizer(run_dir / "tokenizer", tokenizer)
    feat_map = None
    if (run_dir / "cmvn.json").is_file():
        feat_map = cmvn_bridge(GlobalCMVN.load(run_dir / "cmvn.json"), t_cmvn)
        if feat_map is not None:
            log("kd: the student's CMVN differs from the teacher's; teacher inputs are re-normalised")
    if kd_cfg.method != "ar-nar":
        from kdlab.kd.families import build_family_distiller

        return build_family_distiller(kd_cfg, teacher, feat_map)
    cache = None
    if kd_cfg.uses_nbest:
        cache = _nbest_cache(kd_cfg, run_dir, train_manifest, teacher, tokenizer, t_cmvn, device, log)
    return Distiller(teacher, kd_cfg, cache, feat_map)


def _nbest_cache(kd_cfg: KDConfig, run_dir: Path, train_manifest: Any, teacher: torch.nn.Module,
                 tokenizer: Any, t_cmvn: Any, device: torch.device | str, log: Callable[[str], None]
                 ) -> NBestCache:
    from kdlab.checkpoint import resolve_checkpoint_path
    from kdlab.data.dataset import make_loader

    teacher_path = resolve_checkpoint_path(kd_cfg.teacher)
    expected = NBestCache(sha256_file(teacher_path), sha256_dir(teacher_path.parent / "tokenizer"),
                          kd_cfg.beam, kd_cfg.nbest, kd_cfg.ctc_weight, kd_cfg.end_rule)
    loader = make_loader(train_manifest, tokenizer, t_cmvn, kd_cfg.nbest_max_frames, train=False,
                         shuffle=False)  # clean features: no SpecAugment, no speed perturbation
    ids = [rec["id"] for rec in loader.dataset.records]
    path = Path(kd_cfg.nbest_cache) if kd_cfg.nbest_cache else run_dir / "nbest.jsonl"
    return build_or_load_nbest(path, expected, ids, lambda: loader, teacher, kd_cfg.on_mismatch, device, log)


def check_student_tokenizer(folder: Path, teacher_tokenizer: Any) -> None:
    """The student's saved tokenizer (if any) must list the teacher's pieces, id by id."""
    if not folder.is_dir():
        return
    from kdlab.data.tokenizer import load_tokenizer

    student_tok = load_tokenizer(folder)
    pieces = [student_tok.id_to_piece(i) for i in range(student_tok.vocab_size)]
    teacher_pieces = [teacher_tokenizer.id_to_piece(i) for i in range(teacher_tokenizer.vocab_size)]
    if pieces != teacher_pieces:
        common = min(len(pieces), len(teacher_pieces))
        first = next((i for i in range(common) if pieces[i] != teacher_pieces[i]), common)
        raise ConfigError(f"{folder}: the student's tokenizer differs from the teacher's (sizes "
                         f"{len(pieces)} vs {len(teacher_pieces)}, first difference at id {first}); "
                         "KD needs one vocabulary")
