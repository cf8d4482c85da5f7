"""Neural network building blocks: Conv2d subsampling, Conformer encoder, Transformer decoder."""

from kdlab.nn.conformer import ConformerEncoder
from kdlab.nn.decoder import TransformerDecoder, select_cache
from kdlab.nn.masks import causal_mask, length_mask, subsampled_lengths

__all__ = [
    "ConformerEncoder",
    "TransformerDecoder",
    "select_cache",
    "causal_mask",
    "length_mask",
    "subsampled_lengths",
]
