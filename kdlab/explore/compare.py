"""Teacher vs student posteriors of one utterance: the KL divergences that eq 7 and eq 11 distil.

Encoder (eq 7): the teacher's and the student's CTC posteriors share the frame grid (same subsampling), so
frame t of one faces frame t of the other. Per frame, KL(P_t || Q_t) = Σ_c P_t(c) log(P_t(c) / Q_t(c));
eq 7 keeps only its cross-entropy part −Σ_c P_t(c) log Q_t(c) (the teacher's entropy is a constant).

Decoder (eq 11): along the reference y, the teacher's AR decoder gives P_l(c | y_<l, H) (teacher forcing,
restricted to regular tokens as in :func:`kdlab.kd.losses.teacher_token_dist`); the student's CMLM gives
Q_l(c | y_obs, H) with the masked positions replaced by ``<mask>``. Only masked positions count, and the
sum is normalised by |y_mask|.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from kdlab.explore.model import LoadedModel
from kdlab.explore.outputs import Outputs, run_encoder
from kdlab.explore.searches import cmlm_log_probs, masked_input, teacher_forced_log_probs
from kdlab.explore.utterance import Utterance
from kdlab.kd.losses import teacher_token_dist
from kdlab.tokens import BLANK


def kl_rows(p_logp: torch.Tensor, q_logp: torch.Tensor) -> torch.Tensor:
    """KL(P_i || Q_i) per row of two (N, V) log-distributions -> (N,); 0·log 0 counts as 0."""
    if p_logp.shape != q_logp.shape:
        raise ValueError(f"teacher {tuple(p_logp.shape)} and student {tuple(q_logp.shape)} posteriors differ in "
                         "shape: teacher and student must share the frame rate and the tokenizer")
    p = p_logp.exp()  # (N, V)
    terms = torch.where(p > 0, p * (p_logp - q_logp), torch.zeros_like(p))  # (N, V)
    return terms.sum(-1).clamp_min(0.0)


@dataclass
class EncoderComparison:
    """CTC posteriors of teacher and student on one utterance and the per-frame KL (eq 7's summand)."""

    teacher_logp: torch.Tensor  # (T', V)
    student_logp: torch.Tensor  # (T', V)
    kl: torch.Tensor  # (T',)

    @property
    def mean_kl(self) -> float:
        """KL per frame averaged over the utterance's frames."""
        return float(self.kl.mean()) if self.kl.numel() else 0.0


def compare_encoders(teacher_out: Outputs, student_out: Outputs) -> EncoderComparison:
    """Per-frame KL(P_teacher || Q_student) of the CTC posteriors (eq 7)."""
    p, q = teacher_out.ctc_logp, student_out.ctc_logp  # (T', V) each
    return EncoderComparison(p, q, kl_rows(p, q))


@dataclass
class BlankSplit:
    """Where an utterance's per-frame KL sits: frames whose teacher top symbol is blank vs token frames."""

    blank_frames: int
    token_frames: int
    blank_kl: float  # mean KL per blank frame (0 without such frames)
    token_kl: float  # mean KL per token frame
    blank_share: float  # fraction of the utterance's total KL on blank frames

    def line(self, name: str) -> str:
        """One printed sentence with the numbers and which kind of frame carries more KL per frame."""
        where = "token" if self.token_kl > self.blank_kl else "blank"
        return (f"{name}: blank is the teacher's top symbol on {self.blank_frames} of "
                f"{self.blank_frames + self.token_frames} frames; mean KL {self.blank_kl:.3f} there vs "
                f"{self.token_kl:.3f} on token frames ({100 * self.blank_share:.0f} % of the total on blank "
                f"frames): per frame, the divergence is larger on the {where} frames.")


def blank_split(teacher_logp: torch.Tensor, kl: torch.Tensor) -> BlankSplit:
    """Split the per-frame KL (T',) by the teacher's top symbol of each frame (teacher_logp (T', V))."""
    blank = teacher_logp.argmax(-1) == BLANK  # (T',)
    total = float(kl.sum())

    def mean(sel: torch.Tensor) -> float:
        return float(kl[sel].mean()) if bool(sel.any()) else 0.0

    return BlankSplit(int(blank.sum()), int((~blank).sum()), mean(blank), mean(~blank),
                      float(kl[blank].sum()) / total if total > 0 else 0.0)


def mask_positions(n: int, fraction: float = 0.5, seed: int = 0) -> list[bool]:
    """A fixed random choice of max(1, round(fraction·n)) distinct positions out of n (the y_mask of eq 11).

    The same (n, fraction, seed) always gives the same positions, so every student faces the same masks.
    """
    if n == 0:
        return []
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"mask fraction must be in (0, 1], got {fraction}")
    k = max(1, round(fraction * n))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    chosen = set(order[:k].tolist())
    return [i in chosen for i in range(n)]


@dataclass
class DecoderComparison:
    """Decoder posteriors along the reference ``tokens`` (L,) and the KL at the masked positions (eq 11)."""

    tokens: list[int]
    masked: list[bool]
    teacher_logp: torch.Tensor  # (L, V) regular tokens only (others -inf)
    student_logp: torch.Tensor  # (L, V) the CMLM's log-softmax over its whole vocabulary
    kl: torch.Tensor  # (L,) KL(P_l || Q_l), NaN where the position was not masked

    @property
    def mean_kl(self) -> float:
        """Σ_{l ∈ y_mask} KL_l / |y_mask| (eq 11's normalisation); 0 without masks."""
        keep = torch.tensor(self.masked, dtype=torch.bool)
        return float(self.kl[keep].mean()) if bool(keep.any()) else 0.0

    def top_k(self, position: int, k: int = 5) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
        """The k most probable tokens (id, probability) of teacher and of student at ``position``."""
        return _top(self.teacher_logp[position], k), _top(self.student_logp[position], k)


def _top(logp: torch.Tensor, k: int) -> list[tuple[int, float]]:
    val, idx = logp.exp().topk(min(k, logp.numel()))
    return list(zip(idx.tolist(), val.tolist(), strict=True))


def compare_decoders(teacher: LoadedModel, teacher_out: Outputs, student: LoadedModel, student_out: Outputs,
                     tokens: list[int], masked: list[bool]) -> DecoderComparison:
    """Teacher-forced AR posteriors vs the CMLM's with ``masked`` positions hidden, and their KL (eq 11)."""
    p_all = teacher_forced_log_probs(teacher, teacher_out, tokens)  # (L, V)
    p = teacher_token_dist(p_all).log()  # (L, V) softmax over regular tokens, as in training
    q = cmlm_log_probs(student, student_out, masked_input(tokens, masked))  # (L, V)
    kl = kl_rows(p, q)  # (L,)
    kl = kl.masked_fill(~torch.tensor(masked, dtype=torch.bool), float("nan"))
    return DecoderComparison(list(tokens), list(masked), p, q, kl)


class EncodedCache:
    """Encoder outputs by (model name, utterance id): each utterance goes through each model once."""

    def __init__(self) -> None:
        self._store: dict[tuple[str, str], Outputs] = {}

    def get(self, m: LoadedModel, utt: Utterance) -> Outputs:
        key = (m.name, utt.id)
        if key not in self._store:
            self._store[key] = run_encoder(m, utt)
        return self._store[key]


def is_distilled(m: LoadedModel) -> bool | None:
    """Whether a shipped model was trained with KD (its card's ``distilled``); None for other checkpoints."""
    from kdlab.pretrained.store import PretrainedError, card, parse_spec

    try:
        return card(*parse_spec(m.name)).get("distilled")
    except (PretrainedError, OSError, ValueError):
        return None


@dataclass
class StudentDistance:
    """Check-set means for one student: eq 7 KL per frame and eq 11 KL per masked position."""

    student: str
    distilled: bool | None  # trained with KD (from the shipped model card; None if unknown)
    enc_kl: float  # mean over all frames of all utterances
    dec_kl: float  # per utterance Σ_mask KL / |y_mask|, then the mean over utterances (eq 11)
    utts: int


def student_distance(teacher: LoadedModel, student: LoadedModel, utts: Sequence[Utterance],
                     fraction: float = 0.5, seed: int = 0, cache: EncodedCache | None = None) -> StudentDistance:
    """Mean eq-7 and eq-11 KL of ``student`` to ``teacher`` over ``utts`` (reference tokens, fixed masks)."""
    cache = cache or EncodedCache()
    enc_sum, frames, dec = 0.0, 0, []
    for utt in utts:
        t_out, s_out = cache.get(teacher, utt), cache.get(student, utt)
        enc = compare_encoders(t_out, s_out)
        enc_sum, frames = enc_sum + float(enc.kl.sum()), frames + enc.kl.numel()
        tokens = teacher.tokenizer.encode(utt.text)
        if tokens:
            masked = mask_positions(len(tokens), fraction, seed)
            dec.append(compare_decoders(teacher, t_out, student, s_out, tokens, masked).mean_kl)
    return StudentDistance(student.name, is_distilled(student), enc_sum / max(frames, 1),
                           sum(dec) / max(len(dec), 1), len(utts))


def student_distances(teacher: LoadedModel, students: Sequence[LoadedModel], utts: Sequence[Utterance],
                      fraction: float = 0.5, seed: int = 0) -> list[StudentDistance]:
    """:func:`student_distance` for each student, one shared encoder cache (the teacher encodes once)."""
    cache = EncodedCache()
    return [student_distance(teacher, s, utts, fraction, seed, cache) for s in students]


def frame_kl_curves(teacher: LoadedModel, students: Sequence[LoadedModel], utt: Utterance,
                    cache: EncodedCache | None = None) -> dict[str, torch.Tensor]:
    """Per-frame KL(P_teacher ‖ Q_student) of the CTC posteriors (eq 7) for each student -> {name: (T',)}."""
    cache = cache or EncodedCache()
    t_out = cache.get(teacher, utt)
    return {s.name.split("/")[-1]: compare_encoders(t_out, cache.get(s, utt)).kl for s in students}


def distance_rows(teacher: LoadedModel, students: Sequence[LoadedModel], sets: dict[str, Sequence[Utterance]],
                  fraction: float = 0.5, seed: int = 0) -> list[dict[str, object]]:
    """:func:`student_distances` on each named set, as table rows (set, student, KD or not, both KLs)."""
    rows: list[dict[str, object]] = []
    for set_name, utts in sets.items():
        for d in student_distances(teacher, students, utts, fraction, seed):
            rows.append({"set": set_name, "student": d.student.split("/")[-1], "distilled": d.distilled,
                         "eq 7 KL / frame": round(d.enc_kl, 4), "eq 11 KL / masked pos.": round(d.dec_kl, 4),
                         "utts": d.utts})
    return rows


def kd_verdict(rows: Sequence[dict[str, object]]) -> list[str]:
    """For each set and student size (name without its last ``-part``), compare the KD student with the
    L_jca one on both KLs, in words: which is closer to the teacher, and by how much."""
    groups: dict[tuple[object, str], dict[object, dict[str, object]]] = {}
    for r in rows:
        size = str(r["student"]).rsplit("-", 1)[0]
        groups.setdefault((r["set"], size), {})[r["distilled"]] = r
    lines = []
    for (set_name, size), pair in groups.items():
        if True not in pair or False not in pair:
            continue
        kd, base = pair[True], pair[False]
        parts = []
        for key, eq in (("eq 7 KL / frame", "eq 7"), ("eq 11 KL / masked pos.", "eq 11")):
            a, b = float(kd[key]), float(base[key])  # type: ignore[arg-type]
            word = "closer" if a < b else ("farther" if a > b else "as close")
            parts.append(f"{eq}: KD {word} ({a:.3f} vs {b:.3f}, {100 * (a - b) / b:+.0f} %)")
        lines.append(f"{set_name}, {size}: " + "; ".join(parts))
    return lines


def kl_columns(rows: Sequence[dict[str, object]], set_name: str) -> dict[str, list]:
    """The rows of one set as the columns :func:`kdlab.viz.posteriors.student_kl_bars` takes."""
    chosen = [r for r in rows if r["set"] == set_name]
    return {"names": [r["student"] for r in chosen], "enc_kl": [r["eq 7 KL / frame"] for r in chosen],
            "dec_kl": [r["eq 11 KL / masked pos."] for r in chosen], "distilled": [r["distilled"] for r in chosen]}
