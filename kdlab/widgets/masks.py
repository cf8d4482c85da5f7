"""Mask-CTC walk-through widget (eq 4-5): pick a student and an utterance, move p_thr to see which greedy-CTC
tokens get masked, then step through the easy-first iterations (K tokens each) up to the final hypothesis,
scored against the reference.

Encoder outputs are cached per (model, utterance); re-masking at a new p_thr only recolours; the Mask-CTC
trace is computed once per (model, utterance, p_thr, K), on the first step. Before the first step K acts on
the iteration count shown (⌈N/K⌉, eq 5); a control that cannot act in the current state (K and step with
nothing masked, step when every mask is filled, reset at the start) is disabled, its tooltip saying why.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence

import ipywidgets as w
from IPython.display import HTML, Image
from matplotlib.figure import Figure

from kdlab.explore.masking import (
    Fill,
    all_fills,
    final_tokens,
    iterations_needed,
    masked_pieces,
    masks_at,
    shipped_students,
    state_after,
)
from kdlab.explore.model import LoadedModel, load_model
from kdlab.explore.outputs import Outputs, run_encoder
from kdlab.explore.scoring import reference_alignment
from kdlab.explore.searches import greedy, maskctc
from kdlab.explore.utterance import Utterance
from kdlab.search.types import CTCResult, MaskCTCTrace
from kdlab.tokens import MASK
from kdlab.viz.alignment import alignment_html
from kdlab.viz.masks import confidence_figure, fill_grid_figure, mask_summary, sequence_html
from kdlab.widgets.common import figure_image, first_id, show, utterance_options

DEFAULT_STUDENT = "mini-en/student-same-skd"
MAX_IMAGES = 256


class MaskingWalk:
    """Greedy CTC → masks at p_thr → easy-first filling, one iteration per click of "step"."""

    def __init__(self, utterances: Sequence[Utterance], models: Sequence[str] | None = None,
                 model: str = DEFAULT_STUDENT, utterance: str | None = None, p_thr: float = 0.99, K: int = 2) -> None:
        first = first_id(utterances, utterance)
        models = list(models) if models is not None else shipped_students(model.split("/")[0])
        self.utts = {u.id: u for u in utterances}
        self.controls = {
            "model": w.Dropdown(options=models, value=model if model in models else models[0], description="student"),
            "utterance": w.Dropdown(options=utterance_options(utterances), value=first,
                                    description="utterance", layout=w.Layout(width="560px")),
            "p_thr": w.FloatSlider(value=p_thr, min=0.5, max=0.999, step=0.001, readout_format=".3f",
                                   description="p_thr", continuous_update=False, layout=w.Layout(width="420px")),
            "K": w.IntSlider(value=K, min=1, max=10, description="K", continuous_update=False),
            "step": w.Button(description="step", icon="forward"),
            "finish": w.Button(description="to the end", icon="fast-forward"),
            "reset": w.Button(description="reset", icon="undo"),
        }
        self.output = w.Output()
        c = self.controls
        self.view = w.VBox([w.HBox([c["model"], c["utterance"]]), w.HBox([c["p_thr"], c["K"]]),
                            w.HBox([c["step"], c["finish"], c["reset"]]), self.output])
        self.steps = 0
        self.last: dict = {}
        self._encoded: dict[tuple[str, str], tuple[Outputs, CTCResult]] = {}
        self._traces: dict[tuple[str, str, float, int], MaskCTCTrace] = {}
        self._images: dict[tuple, Image] = {}
        for name in ("model", "utterance", "p_thr", "K"):
            c[name].observe(self._on_setting, "value")
        c["step"].on_click(lambda _b: self.step())
        c["finish"].on_click(lambda _b: self.step(10**6))
        c["reset"].on_click(lambda _b: self.reset())
        self.update()

    # ------------------------------------------------------------------ state
    @property
    def model(self) -> LoadedModel:
        return load_model(self.controls["model"].value)

    def _key(self) -> tuple[str, str]:
        return self.controls["model"].value, self.controls["utterance"].value

    def encoded(self) -> tuple[Outputs, CTCResult]:
        """Encoder outputs and greedy CTC of the current (model, utterance), computed once."""
        key = self._key()
        if key not in self._encoded:
            out = run_encoder(self.model, self.utts[key[1]])
            self._encoded[key] = (out, greedy(out)[0])
        return self._encoded[key]

    def trace(self) -> MaskCTCTrace:
        """The easy-first trace at the current p_thr and K (eq 5), computed once per setting."""
        key = (*self._key(), round(float(self.controls["p_thr"].value), 6), int(self.controls["K"].value))
        if key not in self._traces:
            self._traces[key] = maskctc(self.model, self.encoded()[0], p_thr=key[2], K=key[3])[1]
        return self._traces[key]

    # ------------------------------------------------------------------ actions
    def _on_setting(self, _change: object) -> None:
        self.steps = 0
        self.update()

    def step(self, n: int = 1) -> None:
        """Show ``n`` more iterations (all remaining ones for a large ``n``)."""
        self.steps = min(self.steps + n, len(self.trace().iterations))
        self.update()

    def reset(self) -> None:
        self.steps = 0
        self.update()

    # ------------------------------------------------------------------ drawing
    def _image(self, key: tuple, make: Callable[[], Figure]) -> Image:
        """A rendered figure, cached by its inputs (the most recent ``MAX_IMAGES``)."""
        if key not in self._images:
            if len(self._images) >= MAX_IMAGES:
                self._images.pop(next(iter(self._images)))
            self._images[key] = figure_image(make())
        return self._images[key]

    def update(self) -> None:
        m, (_, res) = self.model, self.encoded()
        p_thr = float(self.controls["p_thr"].value)
        masked = masks_at(res.tokens, res.confidences, p_thr)
        pieces = m.pieces(res.tokens)
        base = (*self._key(), round(p_thr, 6))
        conf = self._image(("conf", *base), lambda: confidence_figure(pieces, res.confidences, p_thr, masked))
        self.last = {"model": m.name, "id": self._key()[1], "p_thr": p_thr, "K": int(self.controls["K"].value),
                     "masked": masked, "n_masked": sum(masked), "share": sum(masked) / max(len(masked), 1),
                     "step": self.steps, "fills": [], "tokens": [MASK if h else t for t, h in
                                                             zip(res.tokens, masked, strict=True)],
                     "done": not any(masked), "hypothesis": None, "ops": None}
        n_iter = iterations_needed(sum(masked), self.last["K"])
        plan = f" · K = {self.last['K']}: {n_iter} iteration(s) (CMLM calls) to fill them" if any(masked) else ""
        items: list[object] = [HTML(f"<b>{mask_summary(masked, p_thr)}</b>{plan}"), conf]
        if self.steps > 0 or not any(masked):
            items += self._walk(m, pieces, masked)
        else:
            items.append(HTML("CMLM input y_obs: " + sequence_html(masked_pieces(m, res.tokens, masked), masked)
                              + "press <b>step</b> to fill the easiest masks"))
        self._enable(sum(masked), self.steps >= n_iter)
        show(self.output, *items)

    def _enable(self, n_masked: int, done: bool) -> None:
        """Disable the controls that cannot act now, each with a tooltip saying why (enabled ones say what
        they do)."""
        c, nothing = self.controls, n_masked == 0
        c["K"].disabled = nothing
        c["K"].tooltip = ("nothing is masked at this p_thr: K has nothing to fill" if nothing else
                          "masks filled per iteration (eq 5); changing it restarts the walk")
        for name in ("step", "finish"):
            c[name].disabled = done
            c[name].tooltip = ("nothing is masked at this p_thr" if nothing else
                               "every mask is filled: reset, or change p_thr or K" if done else
                               "fill the next K masks" if name == "step" else "fill every remaining mask")
        c["reset"].disabled = self.steps == 0
        c["reset"].tooltip = ("already at the masked CTC output" if self.steps == 0
                              else "back to the masked CTC output")

    def _walk(self, m: LoadedModel, pieces: list[str], masked: list[bool]) -> list[object]:
        tr = self.trace()
        fills: list[list[Fill]] = all_fills(m, tr)
        now = state_after(tr, self.steps)
        just = fills[self.steps - 1] if self.steps > 0 else []
        done = self.steps >= len(tr.iterations)
        key = (*self._key(), self.last["p_thr"], self.last["K"], self.steps)
        grid = self._image(("grid", *key), lambda: fill_grid_figure(pieces, tr.initial_mask, fills, upto=self.steps))
        self.last.update(fills=just, tokens=now, done=done)
        left = sum(t == MASK for t in now)
        what = ", ".join(f"@{f.position} <b>{html.escape(f.piece)}</b> ({f.prob:.2f})" for f in just) or "nothing"
        items: list[object] = [
            HTML(f"iteration {self.steps} of {len(tr.iterations)}: filled {what} · {left} masks left"),
            HTML(sequence_html(m.pieces(now), [t == MASK for t in now], [f.position for f in just],
                               {f.position: f.prob for f in just})),
            grid,
        ]
        if done:
            tokens = final_tokens(tr)
            ops = reference_alignment(m, self.utts[self._key()[1]].text, tokens)
            self.last.update(hypothesis=m.text(tokens), ops=ops)
            items.append(HTML(alignment_html(ops, title="final hypothesis vs reference")))
        return items
