"""Teacher vs student posteriors explorer: pick an utterance, a student and a reference position.

Shows the encoder's per-frame KL (eq 7), the decoder's KL per reference position (eq 11, masked positions)
and the top-k tokens of teacher and student at the chosen position. Each (model, utterance) is encoded once
and each (student, utterance) comparison computed once; a position move only redraws.
"""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as widgets

from kdlab.explore.compare import (
    DecoderComparison,
    EncodedCache,
    EncoderComparison,
    compare_decoders,
    compare_encoders,
    mask_positions,
)
from kdlab.explore.model import LoadedModel
from kdlab.explore.traces import vocabulary
from kdlab.explore.utterance import Utterance
from kdlab.viz.posteriors import position_view
from kdlab.widgets.common import show


class PosteriorExplorer:
    """Controls: ``utterance``, ``student``, ``position`` (reference token index; ``position=`` sets where the
    first utterance starts, else its first masked position). ``.last`` holds the drawn state: utterance id,
    student, position, its token, whether it is masked, both top-k lists and the KLs."""

    def __init__(self, teacher: LoadedModel, students: Sequence[LoadedModel], utts: Sequence[Utterance],
                 fraction: float = 0.5, seed: int = 0, top_k: int = 5, utterance: int = 0,
                 position: int | None = None) -> None:
        self._start_position = position  # the first utterance's start position (default: its first masked one)
        self.teacher, self.students, self.utts = teacher, {s.name: s for s in students}, list(utts)
        self.fraction, self.seed, self.top_k = fraction, seed, top_k
        self.vocab = vocabulary(teacher)
        self.cache = EncodedCache()
        self._pairs: dict[tuple[str, str], tuple[EncoderComparison, DecoderComparison]] = {}
        self._quiet = False
        names = list(self.students)
        self.controls = {
            "utterance": widgets.Dropdown(options=[(f"{u.id} ({u.duration:.1f} s)", i) for i, u in enumerate(utts)],
                                          value=utterance, description="utterance"),
            "student": widgets.Dropdown(options=[(n.split("/")[-1], n) for n in names], value=names[0],
                                        description="student"),
            "position": widgets.IntSlider(value=0, min=0, max=0, description="position", continuous_update=False),
        }
        self.output = widgets.Output()
        self.view = widgets.VBox([widgets.HBox(list(self.controls.values())), self.output])
        self.last: dict[str, object] = {}
        self.controls["utterance"].observe(self._on_utterance, names="value")
        self.controls["student"].observe(self._on_change, names="value")
        self.controls["position"].observe(self._on_change, names="value")
        self._on_utterance()

    def comparison(self, student: str, index: int) -> tuple[EncoderComparison, DecoderComparison]:
        """Encoder and decoder comparison of ``student`` with the teacher on utterance ``index`` (cached)."""
        utt = self.utts[index]
        key = (student, utt.id)
        if key not in self._pairs:
            s = self.students[student]
            t_out, s_out = self.cache.get(self.teacher, utt), self.cache.get(s, utt)
            tokens = self.teacher.tokenizer.encode(utt.text)
            masked = mask_positions(len(tokens), self.fraction, self.seed)
            self._pairs[key] = (compare_encoders(t_out, s_out),
                                compare_decoders(self.teacher, t_out, s, s_out, tokens, masked))
        return self._pairs[key]

    def _without_reference(self) -> bool:
        """Show why nothing can be drawn for an utterance with no reference text (a user's own recording)."""
        utt = self.utts[self.controls["utterance"].value]
        if utt.text:
            return False
        self.controls["position"].disabled = True
        self.last = {"utt_id": utt.id}
        show(self.output, f"{utt.id} has no reference: eq 11 compares the decoders at masked positions of the "
                          "reference tokens, so type what is said in 'reference' and load it again")
        return True

    def _on_utterance(self, _change: object = None) -> None:
        """New utterance: fit the position slider to its reference and start at its first masked position."""
        if self._without_reference():
            return
        _, dec = self.comparison(self.controls["student"].value, self.controls["utterance"].value)
        pos = self.controls["position"]
        self._quiet = True
        try:
            pos.max = max(0, len(dec.tokens) - 1)
            start = self._start_position if self._start_position is not None else -1
            self._start_position = None  # only the first utterance starts at the given position
            pos.value = start if 0 <= start <= pos.max else (dec.masked.index(True) if any(dec.masked) else 0)
        finally:
            self._quiet = False
        self._set_enabled(len(dec.tokens))
        self.update()

    def _set_enabled(self, n_tokens: int) -> None:
        """Disable the controls that cannot change the view, with a tooltip saying why."""
        pos, student, utt = self.controls["position"], self.controls["student"], self.controls["utterance"]
        pos.disabled = n_tokens <= 1
        pos.tooltip = ("the reference has one token: no other position" if pos.disabled
                       else "reference position (token index) shown in the top-k panels")
        student.disabled = len(self.students) <= 1
        student.tooltip = "only one student was given" if student.disabled else "the student compared with the teacher"
        utt.disabled = len(self.utts) <= 1
        utt.tooltip = "only one utterance was given" if utt.disabled else "the check utterance to compare on"

    def _on_change(self, _change: object = None) -> None:
        if not self._quiet:
            self.update()

    def update(self) -> None:
        """Redraw for the current utterance, student and position."""
        if self._without_reference():
            return
        index, student = self.controls["utterance"].value, self.controls["student"].value
        position = self.controls["position"].value
        enc, dec = self.comparison(student, index)
        t_top, s_top = dec.top_k(position, self.top_k)
        names = (self.teacher.name.split("/")[-1], student.split("/")[-1])
        fig = position_view(dec.kl, dec.masked, dec.tokens, self.vocab, position, t_top, s_top, enc.kl,
                            self.cache.get(self.teacher, self.utts[index]).frame_s, names)
        kl = float(dec.kl[position])
        self.last = {"utt_id": self.utts[index].id, "student": student, "position": position,
                     "token": self.vocab[dec.tokens[position]], "masked": dec.masked[position],
                     "teacher_top": [(self.vocab[t], p) for t, p in t_top],
                     "student_top": [(self.vocab[t], p) for t, p in s_top], "kl": kl,
                     "enc_kl": enc.mean_kl, "dec_kl": dec.mean_kl}
        where = f"KL here {kl:.3f}" if dec.masked[position] else "observed: not part of eq 11"
        show(self.output, fig, f"position {position} {self.last['token']!r} ({where}); utterance means: eq 7 "
             f"KL/frame {enc.mean_kl:.3f}, eq 11 KL/masked position {dec.mean_kl:.3f}")
