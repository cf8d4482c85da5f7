"""CTC widgets (eq 3): an utterance picker with aligned words and their audio, and a frame inspector
(top tokens of a frame, the segment it belongs to, a marker on the emission plot).

Each utterance is encoded once (greedy path and forced alignment included) and cached by id, so moving a
control only redraws.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import ipywidgets as w
from IPython.display import HTML, Audio

from kdlab.explore.model import LoadedModel, load_model
from kdlab.explore.segments import (
    CTCView,
    TokenSpan,
    ctc_view,
    emission_rows,
    greedy_spans,
    span_at,
    span_audio,
    token_spans,
    top_tokens,
    word_spans,
)
from kdlab.explore.utterance import Utterance
from kdlab.viz.ctc import frame_inspector_figure, segments_figure
from kdlab.widgets.common import figure_image, first_id, show, utterance_options


class _CTCViews:
    """Encoder outputs, greedy path and forced alignment per utterance id, computed on first use."""

    def __init__(self, model: LoadedModel | str, utterances: Sequence[Utterance]) -> None:
        self.m = load_model(model) if isinstance(model, str) else model
        self.utts = {u.id: u for u in utterances}
        self._cache: dict[str, CTCView] = {}

    def get(self, utt_id: str) -> CTCView:
        if utt_id not in self._cache:
            self._cache[utt_id] = ctc_view(self.m, self.utts[utt_id])
        return self._cache[utt_id]

    def words(self, utt_id: str) -> list[TokenSpan]:
        return word_spans(self.m, token_spans(self.m, self.get(utt_id).segments))


class _OnViews:
    """A widget over :class:`_CTCViews`: its utterances by id are ``utts`` (``common.add_utterance`` adds one)."""

    data: _CTCViews

    @property
    def utts(self) -> dict[str, Utterance]:
        return self.data.utts


class UtterancePicker(_OnViews):
    """Pick an utterance of the check sets: its aligned words over waveform and spectrogram, the greedy
    hypothesis next to the reference, and the audio of the whole utterance or of one word."""

    WHOLE = -1

    def __init__(self, model: LoadedModel | str, utterances: Sequence[Utterance], utterance: str | None = None) -> None:
        first = first_id(utterances, utterance)
        self.data = _CTCViews(model, utterances)
        self.controls = {
            "utterance": w.Dropdown(options=utterance_options(utterances), value=first, description="utterance",
                                    layout=w.Layout(width="560px")),
            "segment": w.Dropdown(options=[("(whole utterance)", self.WHOLE)], value=self.WHOLE, description="play"),
        }
        self.output = w.Output()
        self.view = w.VBox([w.HBox(list(self.controls.values())), self.output])
        self.last: dict = {}
        self._busy = False
        self.controls["utterance"].observe(self._on_utterance, "value")
        self.controls["segment"].observe(self._on_segment, "value")
        self._on_utterance(None)

    def _on_utterance(self, _change: object) -> None:
        words = self.data.words(self.controls["utterance"].value)
        self._busy = True  # changing the options resets the value: one redraw is enough
        self.controls["segment"].options = [("(whole utterance)", self.WHOLE)] + [
            (f"{i}: {s.label}", i) for i, s in enumerate(words)]
        self.controls["segment"].value = self.WHOLE
        self.controls["segment"].disabled = not words
        self.controls["segment"].tooltip = ("the reference has no forced alignment here: no word to play" if not words
                                            else "play one aligned word, highlighted in the figure")
        self._busy = False
        self.update()

    def _on_segment(self, _change: object) -> None:
        if not self._busy:
            self.update()

    def update(self) -> None:
        m, utt_id = self.data.m, self.controls["utterance"].value
        v, words = self.data.get(utt_id), self.data.words(utt_id)
        seg = self.controls["segment"].value
        span = words[seg] if 0 <= seg < len(words) else None
        fs = v.out.frame_s
        fig = segments_figure(v.utt.audio, v.utt.sample_rate, v.out.fbank, words, fs,
                              highlight=seg if span else None, title=f"{utt_id}: forced alignment by words")
        clip = span_audio(v.utt, span, fs) if span else v.utt.audio.numpy()
        hyp = m.text(v.greedy.tokens)
        self.last = {"id": utt_id, "reference": v.utt.text, "greedy": hyp, "words": words, "segment": span,
                     "clip_s": len(clip) / v.utt.sample_rate}
        where = f"'{span.label}': {span.start * fs:.2f}–{span.end * fs:.2f} s" if span else "whole utterance"
        text = (f"<b>reference</b>: {html.escape(v.utt.text.lower())}<br><b>greedy CTC</b>: {html.escape(hyp)}"
                f"<br><b>playing</b>: {html.escape(where)} ({self.last['clip_s']:.2f} s)")
        show(self.output, HTML(text), figure_image(fig), Audio(clip, rate=v.utt.sample_rate))


class FrameInspector(_OnViews):
    """A frame slider over one utterance: the frame's top-k tokens and probabilities, the forced-alignment
    token and word it belongs to (or blank), and a marker line on the emission plot."""

    def __init__(self, model: LoadedModel | str, utterances: Sequence[Utterance], utterance: str | None = None,
                 k: int = 5, rows: int = 24) -> None:
        first = first_id(utterances, utterance)
        self.data = _CTCViews(model, utterances)
        self.k, self.max_rows = k, rows
        self.controls = {
            "utterance": w.Dropdown(options=utterance_options(utterances), value=first, description="utterance",
                                    layout=w.Layout(width="560px")),
            "frame": w.IntSlider(value=0, min=0, max=1, description="frame", continuous_update=False,
                                 layout=w.Layout(width="560px")),
        }
        self.output = w.Output()
        self.view = w.VBox([self.controls["utterance"], self.controls["frame"], self.output])
        self.last: dict = {}
        self._busy = False
        self.controls["utterance"].observe(self._on_utterance, "value")
        self.controls["frame"].observe(self._on_frame, "value")
        self._on_utterance(None)

    def _on_utterance(self, _change: object) -> None:
        v = self.data.get(self.controls["utterance"].value)
        self._busy = True
        slider = self.controls["frame"]
        slider.max = max(v.n_frames - 1, 0)
        slider.value = min(slider.value, slider.max)
        slider.disabled = v.n_frames <= 1
        slider.tooltip = "a single frame: nothing to move to" if slider.disabled else "the frame to inspect"
        self._busy = False
        self.update()

    def _on_frame(self, _change: object) -> None:
        if not self._busy:
            self.update()

    def _describe(self, v: CTCView, t: int) -> dict:
        m = self.data.m
        tokens = token_spans(m, v.segments)
        words = word_spans(m, tokens)
        i, j, g = span_at(tokens, t), span_at(words, t), span_at(greedy_spans(m, v.greedy), t)
        return {"token": tokens[i] if i is not None else None, "token_index": i,
                "word": words[j] if j is not None else None,
                "greedy": m.piece(v.greedy.tokens[g]) if g is not None else None}

    def update(self) -> None:
        m, utt_id = self.data.m, self.controls["utterance"].value
        v, t = self.data.get(utt_id), int(self.controls["frame"].value)
        top = [(m.piece(i), p) for i, p in top_tokens(v.out.ctc_logp, t, self.k)]
        found = self._describe(v, t)
        self.last = {"id": utt_id, "frame": t, "time_s": t * v.out.frame_s, "top": top, **found}
        rows = emission_rows(v.out.ctc_logp, self.max_rows)
        labels = m.pieces(list(range(v.out.ctc_logp.size(1))))
        fig = frame_inspector_figure(v.out.ctc_logp, labels, rows, t, top, title=f"{utt_id}, frame {t}")
        show(self.output, HTML(self._line()), figure_image(fig))

    def _line(self) -> str:
        s, tok, word = self.last, self.last["token"], self.last["word"]
        where = (f"token {s['token_index']} <b>{html.escape(tok.label)}</b> (frames {tok.start}–{tok.end - 1})"
                 + (f" of the word <b>{html.escape(word.label)}</b>" if word else "")) if tok else "a blank frame"
        greedy = html.escape(s["greedy"]) if s["greedy"] else "∅ (blank)"
        return (f"frame {s['frame']} ({s['time_s']:.2f} s) · forced alignment: {where} · greedy path: "
                f"{greedy} · best symbol: <b>{html.escape(s['top'][0][0])}</b> ({s['top'][0][1]:.3f})")
