"""KD families explorer (notebook 07): pick an utterance and a family; for streaming students also a chunk
size. Shows that family's students on the utterance: Inter-KD — KL to the teacher per frame for every CTC
head; streaming — when each token is emitted; transducers — the teacher's lattice with every model's best
path, and the KL along the teacher's one-best path. Every (model, utterance) result is computed once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import ipywidgets as w
import pandas as pd

from kdlab.explore import families as fam
from kdlab.explore import lattice, streaming
from kdlab.explore.model import LoadedModel, load_model
from kdlab.explore.utterance import Utterance
from kdlab.reproduce.families import FamilyRun
from kdlab.viz.families import emission_timeline, lattice_paths
from kdlab.viz.posteriors import frame_kl_plot
from kdlab.widgets.common import figure_image, first_id, show, utterance_options

CHUNKS = (2, 4, 8, 16, 32)
CHUNK_TIP = "attention chunk (encoder frames of 40 ms) the streaming students decode with"


NEEDS_REFERENCE = ("rnnt",)  # views computed on the reference tokens (a transducer's lattice of eq 16-19)


class FamilyExplorer:
    """Controls: ``utterance``, ``family``, ``chunk`` (streaming). ``.last`` holds what was drawn: family,
    utterance id, chunk, and the rows of the table under the figure."""

    def __init__(self, teacher: LoadedModel, models: Sequence[tuple[FamilyRun, str]], utts: Sequence[Utterance],
                 utterance: str | None = None, chunk: int = 8) -> None:
        self.teacher, self.utts = teacher, {u.id: u for u in utts}
        self.by_family: dict[str, list[tuple[FamilyRun, LoadedModel]]] = {}
        for run, spec in models:
            self.by_family.setdefault(run.family, []).append((run, load_model(spec)))
        self._memo: dict[tuple, object] = {}
        families = list(self.by_family)
        self.controls = {
            "utterance": w.Dropdown(options=utterance_options(utts), value=first_id(utts, utterance),
                                    description="utterance", layout=w.Layout(width="460px")),
            "family": w.ToggleButtons(options=families, value=families[0], description="family"),
            "chunk": w.SelectionSlider(options=list(CHUNKS), value=chunk, description="chunk",
                                       continuous_update=False),
        }
        self.output = w.Output()
        self.view = w.VBox([w.HBox([self.controls["utterance"], self.controls["chunk"]]), self.controls["family"],
                            self.output])
        self.last: dict[str, object] = {}
        for control in self.controls.values():
            control.observe(lambda _change: self.update(), names="value")
        self.update()

    def _cached(self, key: tuple, make: Callable[[], object]) -> object:
        """``make()``'s result, computed once per ``key`` (model, utterance, chunk)."""
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    def update(self) -> None:
        """Redraw the chosen family's view of the chosen utterance."""
        family, utt = self.controls["family"].value, self.utts[self.controls["utterance"].value]
        chunk = self.controls["chunk"].value
        self._enable_chunk(family)
        if family in NEEDS_REFERENCE and not utt.text:
            self.last = {"family": family, "utt_id": utt.id, "chunk": chunk, "rows": []}
            show(self.output, f"{utt.id} has no reference: the {family} view scores the lattice of the reference "
                              "tokens, so type what is said in 'reference' and load it again")
            return
        fig, rows, caption = getattr(self, f"_{family}")(utt, chunk)
        self.last = {"family": family, "utt_id": utt.id, "chunk": chunk, "rows": rows}
        show(self.output, figure_image(fig), pd.DataFrame(rows), caption)

    def _enable_chunk(self, family: str) -> None:
        """The chunk slider acts on the streaming family only: disabled, with a tooltip saying so, elsewhere."""
        slider = self.controls["chunk"]
        slider.disabled = family != "stream"
        slider.tooltip = (CHUNK_TIP if family == "stream"
                          else f"chunk sizes apply to the streaming family only (not to {family})")

    def _inter(self, utt: Utterance, _chunk: int) -> tuple:
        students = [m for _, m in self.by_family["inter"]]
        views = self._cached(("inter", utt.id), lambda: fam.head_views(self.teacher, students, utt))
        labels = {m.name: run.label for run, m in self.by_family["inter"]}
        curves = {f"{labels[v.model]} · {v.head}": v.kl for v in views}
        rows = [{"model": labels[v.model], "head": v.head, "mean KL": round(v.mean_kl, 3), "greedy": v.text}
                for v in views]
        fig = frame_kl_plot(curves, streaming.FRAME_S, "KL(teacher CTC ‖ student head) per frame")
        return fig, rows, "Inter-KD distils into the intermediate heads too: compare their KL across students."

    def _stream(self, utt: Utterance, chunk: int) -> tuple:
        found = {run.label: self._cached(("stream", run.name, utt.id, chunk),
                                         lambda m=m: streaming.emissions(m, utt, chunk))
                 for run, m in self.by_family["stream"]}
        models = {run.label: m for run, m in self.by_family["stream"]}
        rows = [{**streaming.emission_summary(name, chunk, ems), "text": models[name].text([e.token for e in ems])}
                for name, ems in found.items()]
        fig = emission_timeline(streaming.timeline_rows(found), utt.duration)
        return fig, rows, f"chunk {chunk} frames = {chunk * streaming.FRAME_S * 1000:.0f} ms of attention context"

    def _rnnt(self, utt: Utterance, _chunk: int) -> tuple:
        runs = self.by_family["rnnt"]
        views = {run.label: self._cached(("rnnt", run.name, utt.id), lambda m=m: lattice.lattice_of(m, utt))
                 for run, m in runs}
        teacher_label = next(run.label for run, _ in runs if run.kd is None and run.init_encoder_from)
        teacher = views[teacher_label]
        rows = [{**lattice.path_kl(teacher, v), "model": label} for label, v in views.items() if v is not teacher]
        pieces = [runs[0][1].piece(t) for t in teacher.tokens]
        fig = lattice_paths(teacher.emit_probs(), {label: v.path() for label, v in views.items()}, pieces)
        return fig, rows, "One-best KD matches the student to the teacher on the teacher's path only."
