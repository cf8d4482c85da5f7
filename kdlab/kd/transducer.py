"""Transducer KD (Yang et al. 2022): KL(teacher ‖ student) at the nodes of the output lattice.

Both models score the lattice of the reference labels y_1..y_U: node (t, u) (0 ≤ t < T', 0 ≤ u ≤ U) holds
P(· | t, u) over all V outputs (blank included), from ``TransducerModel.lattice`` (kdlab.models.transducer).
Two node sets, chosen by ``KDConfig.method``:

* ``lattice``: every node of the utterance's lattice (T'·(U+1) nodes);
* ``onebest``: the nodes on the teacher's one-best path, the Viterbi (max-product) alignment of the
  reference labels through the teacher's lattice, a blank moving t → t+1 and label y_{u+1} moving u → u+1,
  from (0, 0) to (T'−1, U), where a final blank leaves the lattice: T' + U nodes, every node on the path
  emits exactly one output (Yang et al. 2022, Sec. 2: "the one-best path in the output probability
  lattice").

Reading of the paper for labelled data: the path's label sequence is the reference, and the path is the
teacher's best alignment of it; the paper's unlabelled-data variant uses the teacher's own hypothesis as
the labels, which would need a teacher search and a second student lattice per batch (not done here).

At every selected node the full distributions are compared with a temperature τ (Hinton et al. 2015):
KL(softmax(z_T/τ) ‖ softmax(z_S/τ))·τ². Normalisation, so that both methods have the scale of a per-
utterance sequence loss and one ``KDConfig.weight`` fits both: an utterance contributes
(T' + U) × (mean KL over its selected nodes), i.e. the path's KL summed for ``onebest`` and the lattice's
node-mean scaled to a path's node count for ``lattice``; the batch loss is the sum over utterances divided
by the batch size (as ``rnnt_loss`` and ``ctc_loss``). Padded nodes never count.
"""

from __future__ import annotations

from typing import Callable

import torch

from kdlab.config import ConfigError
from kdlab.kd.config import KDConfig
from kdlab.models.transducer import trim_to_lengths
from kdlab.nn.masks import length_mask

FeatMap = Callable[[torch.Tensor], torch.Tensor]


def lattice_mask(enc_lens: torch.Tensor, token_lens: torch.Tensor, frames: int, labels: int) -> torch.Tensor:
    """Valid nodes: (B,), (B,) -> bool (B, T', U+1) with t < T'_b and u ≤ U_b."""
    return length_mask(enc_lens, frames)[:, :, None] & length_mask(token_lens + 1, labels + 1)[:, None, :]


def node_scores(logp: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """logp (B, T', U+1, V), reference tokens (B, U) -> blank log-probs (B, T', U+1) and label log-probs
    (B, T', U): emit[b, t, u] = log P(y_{u+1} | t, u)."""
    blank = logp[..., 0]  # (B, T', U+1)
    index = tokens.clamp(min=0)[:, None, :, None].expand(-1, logp.size(1), -1, 1)  # (B, T', U, 1)
    return blank, logp[:, :, :-1].gather(3, index).squeeze(3)


def viterbi_path(logp: torch.Tensor, tokens: torch.Tensor, enc_lens: torch.Tensor, token_lens: torch.Tensor
                 ) -> torch.Tensor:
    """The max-product alignment of the reference through each utterance's lattice (Graves 2012's
    recursion with max instead of sum): logp (B, T', U+1, V) -> bool (B, T', U+1), True on the path.

    alpha(t, u) = max(alpha(t−1, u) + blank(t−1, u), alpha(t, u−1) + emit(t, u−1)), alpha(0, 0) = 0, swept
    along anti-diagonals t + u = n (vectorised over the batch and the diagonal); ties prefer blank."""
    batch, frames, nodes, _ = logp.shape
    blank, emit = node_scores(logp.detach().float(), tokens)
    emit = torch.nn.functional.pad(emit, (0, 1), value=-torch.inf)  # (B, T', U+1): no label after y_U
    alpha = torch.full((batch, frames, nodes), -torch.inf, device=logp.device)
    from_label = torch.zeros(batch, frames, nodes, dtype=torch.bool, device=logp.device)
    alpha[:, 0, 0] = 0.0
    for n in range(1, frames + nodes - 1):
        t = torch.arange(max(0, n - nodes + 1), min(n, frames - 1) + 1, device=logp.device)
        u = n - t
        stay = torch.where(t > 0, alpha[:, t - 1, u] + blank[:, t - 1, u], -torch.inf)  # (B, K)
        move = torch.where(u > 0, alpha[:, t, u - 1] + emit[:, t, u - 1], -torch.inf)
        alpha[:, t, u] = torch.maximum(stay, move)
        from_label[:, t, u] = move > stay
    return _backtrack(from_label.cpu(), enc_lens.tolist(), token_lens.tolist()).to(logp.device)


def _backtrack(from_label: torch.Tensor, enc_lens: list[int], token_lens: list[int]) -> torch.Tensor:
    """Follow the back-pointers from (T'_b − 1, U_b) to (0, 0) -> bool (B, T', U+1) path nodes."""
    path = torch.zeros_like(from_label)
    moves = from_label.tolist()
    for b, (frames, labels) in enumerate(zip(enc_lens, token_lens, strict=True)):
        t, u = frames - 1, labels
        while t >= 0:
            path[b, t, u] = True
            if t == 0 and u == 0:
                break
            if moves[b][t][u]:
                u -= 1
            else:
                t -= 1
    return path


def node_kl(t_logits: torch.Tensor, s_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(softmax(t/τ) ‖ softmax(s/τ))·τ² at every node: (B, T', U+1, V) × 2 -> (B, T', U+1)."""
    t_logp = torch.log_softmax(t_logits.float() / temperature, dim=-1)
    s_logp = torch.log_softmax(s_logits.float() / temperature, dim=-1)
    return (t_logp.exp() * (t_logp - s_logp)).sum(-1) * temperature**2


def transducer_kd_loss(t_logits: torch.Tensor, s_logits: torch.Tensor, nodes: torch.Tensor,
                       enc_lens: torch.Tensor, token_lens: torch.Tensor, temperature: float = 1.0
                       ) -> torch.Tensor:
    """Σ_b (T'_b + U_b)·mean_{nodes_b} KL / B (module docstring); nodes: bool (B, T', U+1) selection."""
    kl = node_kl(t_logits, s_logits, temperature).masked_fill(~nodes, 0.0)  # (B, T', U+1)
    count = nodes.sum(dim=(1, 2)).clamp(min=1)  # (B,)
    per_utt = kl.sum(dim=(1, 2)) / count * (enc_lens + token_lens)  # (B,)
    return per_utt.sum() / max(1, kl.size(0))


class TransducerKD:
    """``loss, metrics = distiller(student, batch, student_out)``: ``KDConfig.weight`` × the KD loss of
    ``KDConfig.method`` ("onebest" | "lattice"); the frozen transducer teacher runs live on the student's
    (augmented) features, re-normalised by ``feat_map`` when the two CMVNs differ."""

    def __init__(self, teacher: torch.nn.Module, cfg: KDConfig, feat_map: FeatMap | None = None) -> None:
        if cfg.method not in ("onebest", "lattice"):
            raise ConfigError(f"TransducerKD: kd.method must be onebest or lattice, got {cfg.method!r}")
        if not hasattr(teacher, "joiner"):
            raise ConfigError(f"kd.method {cfg.method}: the teacher must be a transducer, got "
                              f"{type(teacher).__name__}")
        self.teacher = teacher.eval().requires_grad_(False)
        self.cfg, self.feat_map = cfg, feat_map

    def teacher_lattice(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """The teacher's lattice logits (B, T', U+1, V) of the batch's reference, and its enc_lens (B,)."""
        self.teacher.eval()
        feats = batch["feats"] if self.feat_map is None else self.feat_map(batch["feats"])
        with torch.no_grad():
            enc, enc_lens = self.teacher.encode(feats, batch["feat_lens"])
            enc, tokens = trim_to_lengths(enc, enc_lens, batch["tokens"], batch["token_lens"])
            return self.teacher.lattice(enc, tokens), enc_lens

    def __call__(self, student: torch.nn.Module, batch: dict, student_out: dict
                 ) -> tuple[torch.Tensor, dict[str, float]]:
        """λ·L_KD of the batch (the student's ``lattice_logits`` against the teacher's) and
        ``{"kd_<method>": unweighted L_KD}``."""
        s_logits, s_lens = student_out["lattice_logits"], student_out["enc_lens"]
        t_logits, t_lens = self.teacher_lattice(batch)
        check_lattices(t_logits, s_logits, t_lens, s_lens)
        token_lens = batch["token_lens"]
        if self.cfg.method == "onebest":
            tokens = batch["tokens"][:, : t_logits.size(2) - 1]
            nodes = viterbi_path(torch.log_softmax(t_logits.float(), dim=-1), tokens, s_lens, token_lens)
        else:
            nodes = lattice_mask(s_lens, token_lens, s_logits.size(1), s_logits.size(2) - 1)
        kd = transducer_kd_loss(t_logits, s_logits, nodes, s_lens, token_lens, self.cfg.temperature)
        return self.cfg.weight * kd, {f"kd_{self.cfg.method}": float(kd.detach())}

    def to(self, device: torch.device | str) -> TransducerKD:
        self.teacher.to(device)
        return self


def check_lattices(t_logits: torch.Tensor, s_logits: torch.Tensor, t_lens: torch.Tensor,
                   s_lens: torch.Tensor) -> None:
    """Teacher and student must share the vocabulary and the frame rate; raise ConfigError otherwise."""
    if t_logits.size(-1) != s_logits.size(-1):
        raise ConfigError(f"KD: the student's vocabulary has {s_logits.size(-1)} outputs but the teacher's "
                          f"has {t_logits.size(-1)}; both must use one tokenizer")
    if not torch.equal(t_lens.cpu(), s_lens.cpu()) or t_logits.shape != s_logits.shape:
        raise ConfigError(f"KD: encoder frame counts differ (student {s_lens.tolist()}, teacher "
                          f"{t_lens.tolist()}); teacher and student must share the subsampling")
