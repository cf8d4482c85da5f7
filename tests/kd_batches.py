"""A tiny training batch shared by the KD-family tests: two utterances of 44 and 37 feature frames with 4
and 3 reference tokens drawn from a vocabulary of ``vocab_size``."""

from __future__ import annotations

import torch

from kdlab.tokens import NUM_SPECIAL


def tiny_batch(vocab_size: int) -> dict:
    gen = torch.Generator().manual_seed(3)
    tokens = torch.randint(NUM_SPECIAL, vocab_size, (2, 4), generator=gen)
    tokens[1, 3] = -1
    return {"ids": ["a", "b"], "feats": torch.randn(2, 44, 80, generator=gen),
            "feat_lens": torch.tensor([44, 37]), "tokens": tokens, "token_lens": torch.tensor([4, 3])}
