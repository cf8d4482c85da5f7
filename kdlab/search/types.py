"""Result and trace dataclasses shared by every search method.

Results are plain Python (lists of ints / floats) so that they can be printed, compared in tests and
stored as JSON. Traces are only built when a search function is called with ``trace=True``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class CTCResult:
    """Greedy CTC output for one utterance.

    ``confidences[i]`` is the largest frame probability of token ``i`` within its frame segment and
    ``spans[i] = (start, end)`` its frames, end exclusive (encoder frame units).
    """

    tokens: list[int]
    confidences: list[float]
    spans: list[tuple[int, int]]


@dataclass
class Hyp:
    """One hypothesis of an N-best list.

    ``score`` is the score the search ranked by. For the joint CTC/attention search it is
    ``(1 - ctc_weight) * att_score + ctc_weight * ctc_score`` where ``att_score`` = log p_ar(y, <eos> | H)
    (eq 2) and ``ctc_score`` = log p_ctc(y | H) (eq 3). For CTC prefix beam search ``score`` =
    ``ctc_score``; for Mask-CTC beam search ``score`` is the accumulated eq 5 log posterior of the filled
    masks.
    """

    tokens: list[int]
    score: float
    att_score: float = 0.0
    ctc_score: float = 0.0


@dataclass
class Segment:
    """A token's frame span from forced alignment: frames ``[start, end)``, ``score`` = mean frame prob."""

    token: int
    start: int
    end: int
    score: float


@dataclass
class CTCGreedyTrace:
    """Per-frame argmax ids and their probabilities (length = the utterance's frame count)."""

    frame_ids: list[int]
    frame_probs: list[float]


@dataclass
class PrefixBeamTrace:
    """The CTC prefix beam after each frame: ``beams[t]`` = [(prefix, log prob), ...] best first."""

    beams: list[list[tuple[list[int], float]]] = field(default_factory=list)


@dataclass
class BeamStep:
    """One step of the joint CTC/attention search for one utterance.

    ``running`` holds the kept hypotheses after the step as (tokens, score, att_score, ctc_prefix_score);
    ``ended`` the hypotheses that emitted <eos> at this step (tokens without <eos>, score).
    """

    step: int
    running: list[tuple[list[int], float, float, float]]
    ended: list[tuple[list[int], float]]


@dataclass
class AttentionBeamTrace:
    steps: list[BeamStep] = field(default_factory=list)


@dataclass
class MaskIteration:
    """One Mask-CTC iteration for one hypothesis/utterance.

    ``masked`` = positions still masked before the iteration; ``candidates`` = per masked position its
    best (token, log posterior) under eq 5; ``chosen`` = the (position, token) pairs filled;
    ``tokens`` = the sequence after filling (masked positions hold ``<mask>``).
    """

    k: int
    masked: list[int]
    candidates: list[tuple[int, int, float]]
    chosen: list[tuple[int, int]]
    tokens: list[int]


@dataclass
class MaskCTCTrace:
    """Greedy Mask-CTC trace: the CTC start, the initial masks and every iteration."""

    ctc_tokens: list[int]
    confidences: list[float]
    initial_mask: list[bool]
    iterations: list[MaskIteration] = field(default_factory=list)


@dataclass
class BeamHypState:
    """One Mask-CTC beam hypothesis after an iteration: its tokens (with <mask>), score, last fill."""

    tokens: list[int]
    score: float
    chosen: list[tuple[int, int]]
    parent: int


@dataclass
class MaskBeamIteration:
    """One iteration of Algorithm 1: ``k`` tokens per set; ``beam`` = the kept distinct hypotheses."""

    k: int
    num_candidates: int
    beam: list[BeamHypState]


@dataclass
class MaskBeamTrace:
    ctc_tokens: list[int]
    confidences: list[float]
    initial_mask: list[bool]
    iterations: list[MaskBeamIteration] = field(default_factory=list)
