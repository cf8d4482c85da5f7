"""Algorithm 1 (Mask-CTC beam search) explorer: pick an utterance, a beam size B and a window of iterations.

Each utterance is encoded once; the search of each (utterance, B) runs once and is cached. With
``precompute=True`` all B of an utterance are searched when it is selected, so a B-slider move only redraws.
"""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as widgets
import pandas as pd

from kdlab.explore.model import LoadedModel
from kdlab.explore.outputs import Outputs, run_encoder
from kdlab.explore.scoring import reference_text, score
from kdlab.explore.searches import maskctc_beam_search
from kdlab.explore.traces import mask_beam_rows, vocabulary
from kdlab.explore.utterance import Utterance
from kdlab.search.types import Hyp, MaskBeamTrace
from kdlab.viz.beams import mask_beam_tree
from kdlab.widgets.common import show

MAX_BEAM = 10


class MaskBeamExplorer:
    """Controls: ``utterance``, ``beam`` (B = 1…10), ``first`` (first iteration shown). ``.last`` holds what the
    last ``update()`` drew: utterance id, B, the 1-best text and score, its errors and the final beam's rows."""

    def __init__(self, model: LoadedModel, utts: Sequence[Utterance], beam: int = 5, utterance: int = 0,
                 window: int = 5, p_thr: float = 0.99, K: int = 2, precompute: bool = True) -> None:
        self.model, self.utts, self.window = model, list(utts), window
        self.p_thr, self.K, self.precompute = p_thr, K, precompute
        self.vocab = vocabulary(model)
        self._enc: dict[str, Outputs] = {}
        self._search: dict[tuple[str, int], tuple[list[Hyp], MaskBeamTrace]] = {}
        self._quiet = False
        self.controls = {
            "utterance": widgets.Dropdown(options=[(f"{u.id} ({u.duration:.1f} s)", i) for i, u in enumerate(utts)],
                                          value=utterance, description="utterance"),
            "beam": widgets.IntSlider(value=beam, min=1, max=MAX_BEAM, description="beam B", continuous_update=False),
            "first": widgets.IntSlider(value=1, min=1, max=1, description="from iter.", continuous_update=False),
        }
        self.output = widgets.Output()
        self.view = widgets.VBox([widgets.HBox(list(self.controls.values())), self.output])
        self.last: dict[str, object] = {}
        self.controls["utterance"].observe(self._on_utterance, names="value")
        for name in ("beam", "first"):
            self.controls[name].observe(self._on_change, names="value")
        self._on_utterance()

    def search(self, index: int, beam: int) -> tuple[list[Hyp], MaskBeamTrace]:
        """Algorithm 1 on utterance ``index`` with beam ``beam`` (cached)."""
        utt = self.utts[index]
        if utt.id not in self._enc:
            self._enc[utt.id] = run_encoder(self.model, utt)
        key = (utt.id, beam)
        if key not in self._search:
            self._search[key] = maskctc_beam_search(self.model, self._enc[utt.id], beam, self.p_thr, self.K)
        return self._search[key]

    def _on_utterance(self, _change: object = None) -> None:
        index = self.controls["utterance"].value
        if self.precompute:
            for b in range(1, MAX_BEAM + 1):
                self.search(index, b)
        self._on_change()

    def _on_change(self, _change: object = None) -> None:
        if not self._quiet:
            self.update()

    def _fit_window(self, n_iterations: int) -> int:
        """Clamp the ``first`` slider to the trace's iterations (without triggering a second update)."""
        first = self.controls["first"]
        self._quiet = True
        try:
            first.max = max(1, n_iterations)
            first.value = min(first.value, first.max)
        finally:
            self._quiet = False
        return first.value

    def _set_enabled(self, n_masks: int, n_iterations: int) -> None:
        """Disable the controls that cannot change the view for this utterance, with a tooltip saying why."""
        beam, first, utt = self.controls["beam"], self.controls["first"], self.controls["utterance"]
        beam.disabled = n_masks == 0
        beam.tooltip = ("greedy CTC masked no token here: nothing to fill, every B gives the same result"
                        if beam.disabled else "beam size B of Algorithm 1 (1 = greedy Mask-CTC)")
        first.disabled = n_iterations <= 1
        first.tooltip = (f"only {n_iterations} iteration(s): nothing to scroll" if first.disabled
                         else "first iteration shown in the tree")
        utt.disabled = len(self.utts) <= 1
        utt.tooltip = "only one utterance was given" if utt.disabled else "the check utterance to search"

    def update(self) -> None:
        """Search (or take from the cache) and redraw the tree and the final beam."""
        index, beam = self.controls["utterance"].value, self.controls["beam"].value
        utt = self.utts[index]
        hyps, trace = self.search(index, beam)
        first = self._fit_window(len(trace.iterations))
        self._set_enabled(sum(trace.initial_mask), len(trace.iterations))
        fig = mask_beam_tree(trace, self.vocab, first, self.window)
        rows = [r for r in mask_beam_rows(trace, self.vocab) if r["iteration"] == len(trace.iterations)]
        text = self.model.text(hyps[0].tokens)
        errs = score(self.model, [utt], [text])
        self.last = {"utt_id": utt.id, "beam": beam, "first": first, "iterations": len(trace.iterations),
                     "text": text, "score": hyps[0].score, "errors": errs.errors, "final_beam": rows}
        show(self.output, fig, pd.DataFrame(rows).drop(columns=["iteration", "k"]),
             f"REF: {reference_text(self.model, utt)}",
             f"HYP: {text}  (score {hyps[0].score:.3f}, {errs.errors} errors)")
