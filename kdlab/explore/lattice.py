"""Notebook 07, transducers: the output lattice of one utterance, the teacher's one-best path through it,
and how close each student's distributions are to the teacher's along that path (Yang et al. 2022).

The lattice is the reference's: node (t, u) holds P(· | t, u) over all outputs (blank included).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kdlab.explore.model import LoadedModel
from kdlab.explore.utterance import Utterance
from kdlab.kd.transducer import node_kl, viterbi_path


@dataclass
class LatticeView:
    """One model's lattice of one utterance: logits (T', U+1, V) and its reference tokens (U,)."""

    name: str
    logits: torch.Tensor
    tokens: list[int]

    @property
    def log_probs(self) -> torch.Tensor:
        return torch.log_softmax(self.logits, dim=-1)

    def path(self) -> torch.Tensor:
        """bool (T', U+1): this model's Viterbi alignment of the reference (its one-best path)."""
        frames, nodes = self.logits.shape[:2]
        return viterbi_path(self.log_probs.unsqueeze(0), torch.tensor([self.tokens]), torch.tensor([frames]),
                            torch.tensor([nodes - 1]))[0]

    def emit_probs(self) -> torch.Tensor:
        """(T', U+1): P(y_{u+1} | t, u), the probability of emitting the next reference label (0 in the last
        column, where no label is left)."""
        probs = self.log_probs.exp()  # (T', U+1, V)
        out = torch.zeros(probs.shape[:2])
        for u, tok in enumerate(self.tokens):
            out[:, u] = probs[:, u, tok]
        return out


def lattice_of(m: LoadedModel, utt: Utterance) -> LatticeView:
    """Encode ``utt`` and score its reference lattice with the transducer ``m``."""
    from kdlab.explore.outputs import model_features
    from kdlab.explore.scoring import reference_text

    feats = model_features(m, utt).unsqueeze(0)  # (1, T, 80)
    tokens = m.tokenizer.encode(reference_text(m, utt))
    with torch.inference_mode():
        enc, enc_lens = m.model.encode(feats, torch.tensor([feats.size(1)]))
        logits = m.model.lattice(enc[:, : int(enc_lens[0])], torch.tensor([tokens]))[0]  # (T', U+1, V)
    return LatticeView(m.name, logits, tokens)


def path_kl(teacher: LatticeView, student: LatticeView) -> dict[str, float]:
    """Mean KL(teacher ‖ student) on the teacher's one-best path and over the whole lattice, and how many
    of the path's nodes the student's own best path shares."""
    kl = node_kl(teacher.logits.unsqueeze(0), student.logits.unsqueeze(0), 1.0)[0]  # (T', U+1)
    path = teacher.path()
    shared = (path & student.path()).sum()
    return {"model": student.name, "KL on teacher path": round(float(kl[path].mean()), 4),
            "KL whole lattice": round(float(kl.mean()), 4),
            "path nodes shared %": round(100.0 * float(shared) / float(path.sum()), 1)}


def lowest(rows: list[dict], column: str, key: str = "model") -> str:
    """One line: the rows ordered by ``column``, lowest first (e.g. the students' KL on the teacher's path)."""
    ranked = sorted(rows, key=lambda r: r[column])
    return f"{column}, lowest first: " + " < ".join(f"{r[key]} ({r[column]})" for r in ranked)
