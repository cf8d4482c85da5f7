"""RNN transducer (kind ``"transducer"``): Conformer encoder, LSTM prediction network and joiner (Graves 2012).

For an utterance with encoder frames h_1..h_T' and labels y_1..y_U the model defines, at every node (t, u)
of the output lattice (0 ≤ t < T', 0 ≤ u ≤ U), a distribution over the V outputs (blank = id 0 included)::

    g_u        = LSTM(Embed([<sos/eos>, y_1, …, y_u]))                       prediction network, (P,)
    z(t, u)    = W_o · tanh(W_e h_t + W_p g_u) + b                             joiner logits, (V,)
    P(k | t, u) = softmax_k z(t, u)

Blank moves t → t+1, label y_{u+1} moves u → u+1; P(y | X) sums the path products over all alignments
(Graves 2012, eq 16–19), computed by ``torchaudio.functional.rnnt_loss``. ``<sos/eos>`` (id 2) starts the
prediction network (it is never a target).

Loss, with α = ``cfg.ctc_weight`` (an auxiliary CTC head on the encoder, as ESPnet's transducer recipes)::

    L = (1 − α) · L_rnnt + α · L_ctc        (α = 0: no CTC term, the head is then unused)

Both terms are per-utterance negative log-likelihoods summed over the batch and divided by the batch size
(``kdlab.models.ctc.ctc_loss``'s reduction). The full lattice logits ``lattice_logits`` (B, T', U+1, V) are
returned for the transducer KD losses (``kdlab.kd.transducer``, Yang et al. 2022).
"""

from __future__ import annotations

import torch
import torchaudio
from torch import nn

from kdlab.models.base import JointCTCModel, check_targets
from kdlab.models.config import ModelConfig
from kdlab.models.ctc import ctc_loss
from kdlab.nn.dropout import Dropout
from kdlab.tokens import BLANK, SOS_EOS

LSTMState = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (layers, N, P)


class Predictor(nn.Module):
    """Prediction network: token embedding → dropout → LSTM (``layers`` deep, width ``dim``)."""

    def __init__(self, vocab_size: int, dim: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        self.dropout = Dropout(dropout)
        self.lstm = nn.LSTM(dim, dim, num_layers=layers, batch_first=True,
                            dropout=dropout if layers > 1 else 0.0)

    def forward(self, ys_in: torch.Tensor) -> torch.Tensor:
        """ys_in (B, U+1) starting with ``<sos/eos>`` -> g (B, U+1, P) (teacher forcing)."""
        out, _ = self.lstm(self.dropout(self.embed(ys_in)))
        return out

    def step(self, tokens: torch.Tensor, state: LSTMState | None) -> tuple[torch.Tensor, LSTMState]:
        """One step for N sequences: tokens (N,), state ((layers, N, P) × 2 or None) -> (g (N, P), state)."""
        out, state = self.lstm(self.dropout(self.embed(tokens.unsqueeze(1))), state)  # (N, 1, P)
        return out.squeeze(1), state


class Joiner(nn.Module):
    """z = W_o · tanh(W_e h + W_p g) + b; the two input projections are separate so that search can
    project every encoder frame once (``project_enc``) and each predictor output once (``project_pred``)."""

    def __init__(self, enc_dim: int, pred_dim: int, joint_dim: int, vocab_size: int) -> None:
        super().__init__()
        self.enc_proj = nn.Linear(enc_dim, joint_dim)
        self.pred_proj = nn.Linear(pred_dim, joint_dim, bias=False)
        self.out = nn.Linear(joint_dim, vocab_size)

    def project_enc(self, enc: torch.Tensor) -> torch.Tensor:
        """enc (..., D) -> (..., J)."""
        return self.enc_proj(enc)

    def project_pred(self, pred: torch.Tensor) -> torch.Tensor:
        """g (..., P) -> (..., J)."""
        return self.pred_proj(pred)

    def combine(self, enc_j: torch.Tensor, pred_j: torch.Tensor) -> torch.Tensor:
        """Projected inputs, broadcast against each other -> logits (..., V)."""
        return self.out(torch.tanh(enc_j + pred_j))

    def forward(self, enc: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        """enc (B, T', D), g (B, U+1, P) -> lattice logits (B, T', U+1, V)."""
        return self.combine(self.project_enc(enc).unsqueeze(2), self.project_pred(pred).unsqueeze(1))


def predictor_input(tokens: torch.Tensor) -> torch.Tensor:
    """tokens (B, U) padded with IGNORE_ID -> [<sos/eos>, y_1..y_U] (B, U+1); padding becomes blank (never
    read: the nodes u > U_b lie outside the utterance's lattice)."""
    start = tokens.new_full((tokens.size(0), 1), SOS_EOS)
    return torch.cat([start, tokens.clamp(min=BLANK)], dim=1)


def trim_to_lengths(enc: torch.Tensor, enc_lens: torch.Tensor, tokens: torch.Tensor, token_lens: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """enc (B, T, D), tokens (B, L) cut to T' = max(enc_lens) and U = max(token_lens) (torchaudio's loss
    wants the lattice exactly as large as its longest utterance)."""
    if enc.size(0) == 0:
        return enc, tokens
    return enc[:, : int(enc_lens.max())], tokens[:, : int(token_lens.max())]


def rnnt_loss_per_utt(logits: torch.Tensor, enc_lens: torch.Tensor, tokens: torch.Tensor,
                      token_lens: torch.Tensor) -> torch.Tensor:
    """-log P(y | X) of every utterance (Graves 2012): logits (B, T', U+1, V) -> (B,) (torchaudio)."""
    return torchaudio.functional.rnnt_loss(
        logits.float().contiguous(), tokens.clamp(min=BLANK).int().contiguous(), enc_lens.int(), token_lens.int(),
        blank=BLANK, reduction="none",
    )


class TransducerModel(JointCTCModel):
    """Encoder (+ auxiliary CTC head) of :class:`JointCTCModel`, ``predictor`` and ``joiner``."""

    def __init__(self, cfg: ModelConfig, vocab_size: int) -> None:
        super().__init__(cfg, vocab_size)
        pred_dim, joint_dim = cfg.pred_dim or cfg.d_model, cfg.joint_dim or cfg.d_model
        self.predictor = Predictor(vocab_size, pred_dim, cfg.pred_layers, cfg.dropout)
        self.joiner = Joiner(cfg.d_model, pred_dim, joint_dim, vocab_size)

    def lattice(self, enc: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """enc (B, T', D), reference tokens (B, U) -> lattice logits (B, T', U+1, V)."""
        return self.joiner(enc, self.predictor(predictor_input(tokens)))

    def pred_start(self, n: int) -> tuple[torch.Tensor, LSTMState]:
        """The prediction network after ``<sos/eos>`` for n sequences: (g (n, P), state)."""
        device = self.joiner.out.weight.device
        return self.predictor.step(torch.full((n,), SOS_EOS, dtype=torch.long, device=device), None)

    def pred_step(self, tokens: torch.Tensor, state: LSTMState) -> tuple[torch.Tensor, LSTMState]:
        """One prediction-network step: tokens (N,), state -> (g (N, P), state)."""
        return self.predictor.step(tokens, state)

    def forward(
        self, feats: torch.Tensor, feat_lens: torch.Tensor, tokens: torch.Tensor, token_lens: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Losses ``loss``, ``loss_rnnt`` (and ``loss_ctc`` when ctc_weight > 0); intermediates ``enc``,
        ``enc_lens``, ``lattice_logits`` (B, T', U+1, V) and ``ctc_logp`` (B, T', V)."""
        check_targets(tokens, token_lens, self.vocab_size)
        enc, enc_lens = self.encode(feats, feat_lens)  # (B, T', D), (B,)
        enc, tokens = trim_to_lengths(enc, enc_lens, tokens, token_lens)  # T' = max enc_lens, U = max U_b
        logits = self.lattice(enc, tokens)  # (B, T', U+1, V)
        loss_rnnt = rnnt_loss_per_utt(logits, enc_lens, tokens, token_lens).sum() / enc.size(0)
        out = {"enc": enc, "enc_lens": enc_lens, "lattice_logits": logits, "ctc_logp": self.ctc_log_probs(enc),
               "loss_rnnt": loss_rnnt, "loss": loss_rnnt}
        alpha = self.cfg.ctc_weight
        if alpha > 0:
            out["loss_ctc"] = ctc_loss(out["ctc_logp"], enc_lens, tokens, token_lens)
            out["loss"] = (1.0 - alpha) * loss_rnnt + alpha * out["loss_ctc"]
        return out
