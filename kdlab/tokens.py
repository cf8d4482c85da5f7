"""The token-id contract shared by data, models, search and kd (docs/ARCHITECTURE.md).

====  ===============  ======================================================
 id   symbol           use
====  ===============  ======================================================
 0    ``<blank>``      CTC blank; never a decoder target
 1    ``<unk>``        unknown character / piece
 2    ``<sos/eos>``    AR decoder start and end symbol
 3    ``<mask>``       Mask-CTC decoder input for masked positions
 4…   regular tokens   characters or BPE pieces (:mod:`kdlab.data.tokenizer`)
====  ===============  ======================================================

``IGNORE_ID`` pads target sequences and is skipped by every loss.
"""

from __future__ import annotations

BLANK = 0
UNK = 1
SOS_EOS = 2
MASK = 3
NUM_SPECIAL = 4
IGNORE_ID = -1

SPECIAL_PIECES = ("<blank>", "<unk>", "<sos/eos>", "<mask>")

# ids that are never a token of a transcript y: the Mask-CTC decoder never fills them (eq 4) and the
# AR teacher's decoder distribution drops them (eq 11)
NON_TOKENS = (BLANK, SOS_EOS, MASK)
