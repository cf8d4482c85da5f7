"""Search: CTC (greedy, prefix beam, forced alignment), joint CTC/attention beam search (AR) and
Mask-CTC decoding (greedy easy-first and the paper's beam search, Algorithm 1).

Every search is a plain function over tensors (batched over utterances, on the tensors' device) plus a
small callable for the decoder, so it can be tested with toy models; ``trace=True`` also returns the
per-step/iteration details for plots and teaching. ``decode(model, batch, methods)`` runs the encoder once.
"""

from kdlab.search.ctc import ctc_forced_align, ctc_greedy, ctc_prefix_beam
from kdlab.search.decode import DecodeOptions, decode, parse_method
from kdlab.search.joint_beam import joint_beam_search
from kdlab.search.maskctc import maskctc_greedy
from kdlab.search.maskctc_beam import maskctc_beam
from kdlab.search.types import CTCResult, Hyp, Segment

__all__ = [
    "ctc_greedy", "ctc_prefix_beam", "ctc_forced_align", "joint_beam_search", "maskctc_greedy",
    "maskctc_beam", "decode", "parse_method", "DecodeOptions", "CTCResult", "Hyp", "Segment",
]
