"""Training widgets: live learning curves with an epoch progress bar, and a panel that trains the KD students
with chosen weights (γ_enc, γ_dec, β_F, β_S of eq 10 and eq 13) and decodes them with chosen Mask-CTC settings
(p_thr, K, beam B of Algorithm 1) into the Table 1 analogue.

Training and decoding run only on the buttons (or on :meth:`TrainingPanel.train` / :meth:`~TrainingPanel.evaluate`);
moving a slider only redraws from what is already computed. An error of a button's action (e.g. every KD weight
zero) appears in the panel as one line instead of vanishing into the kernel's log.
"""

from __future__ import annotations

import html
from collections.abc import Callable

import ipywidgets as w
import pandas as pd
from IPython.display import HTML

from kdlab.explore.training import TEACHER, KDWeights, Progress, TrainingLab, check_weights
from kdlab.viz.curves import learning_curves
from kdlab.widgets.common import figure_image, show

P_THR_OPTIONS = (0.5, 0.7, 0.9, 0.95, 0.99, 0.999)
WEIGHT_NAMES = ("gamma_enc", "gamma_dec", "beta_f", "beta_s")
WEIGHT_LABELS = {"gamma_enc": "γ_enc", "gamma_dec": "γ_dec", "beta_f": "β_F", "beta_s": "β_S"}


class LiveCurves:
    """A run's learning curves (:func:`kdlab.viz.curves.learning_curves`), redrawn after every epoch; pass
    the object itself as the ``on_epoch`` callback of :class:`~kdlab.explore.training.TrainingLab`."""

    def __init__(self, title: str = "") -> None:
        self.title = title
        self.controls = {"log_y": w.Checkbox(value=False, description="log loss axis", indent=False)}
        self.progress = w.IntProgress(value=0, min=0, max=1, description="epochs", bar_style="info")
        self.label = w.Label("waiting for the first epoch")
        self.output = w.Output()
        self.view = w.VBox([w.HBox([self.progress, self.label, self.controls["log_y"]]), self.output])
        self.rows: list[dict] = []
        self.name = ""
        self.calls = 0
        self.last: dict = {}
        self.controls["log_y"].observe(lambda _change: self.update(), "value")

    def __call__(self, progress: Progress) -> None:
        """The epoch callback: keep the rows, move the bar, redraw."""
        self.calls += 1
        self.rows, self.name = progress.rows, progress.name
        self.progress.max = max(progress.epochs, 1)
        self.progress.value = progress.epoch
        self.progress.bar_style = "success" if progress.epoch >= progress.epochs else "info"
        self.label.value = f"{progress.name}: epoch {progress.epoch}/{progress.epochs}"
        self.update()

    def update(self) -> None:
        if not self.rows:
            return
        log_y = bool(self.controls["log_y"].value)
        fig = learning_curves(self.rows, title=" · ".join(t for t in (self.title, self.name) if t), log_y=log_y)
        epochs = [r for r in self.rows if r.get("kind") == "epoch"]
        self.last = {"name": self.name, "epochs": len(epochs), "rows": len(self.rows), "log_y": log_y,
                     "dev_loss": epochs[-1].get("dev_loss") if epochs else None, "figure": fig}
        show(self.output, figure_image(fig))


def error_line(exc: BaseException) -> str:
    """An exception as one line: ``Type: first line of the message``."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _slider(value: float, description: str, disabled: bool = False) -> w.FloatSlider:
    return w.FloatSlider(value=value, min=0.0, max=2.0, step=0.1, description=description, disabled=disabled,
                         continuous_update=False, readout_format=".1f", layout=w.Layout(width="240px"))


class TrainingPanel:
    """KD weights of stage 1 (+F-KD; β_S is 0 there) and stage 2 (++S-KD), Mask-CTC decoding settings, a
    *train students* and an *evaluate* button, live curves and the Table 1 analogue of every run so far."""

    def __init__(self, lab: TrainingLab) -> None:
        self.lab = lab
        self.controls: dict[str, w.Widget] = {}
        for stage, criterion in ((1, "fkd"), (2, "skd")):
            paper = KDWeights.paper(criterion)
            for name in WEIGHT_NAMES:
                fixed = stage == 1 and name == "beta_s"  # stage 1 is frame-level KD only
                self.controls[f"{name}_{stage}"] = _slider(getattr(paper, name), WEIGHT_LABELS[name], fixed)
        self.controls["p_thr"] = w.SelectionSlider(options=P_THR_OPTIONS, value=0.99, description="p_thr",
                                                   continuous_update=False)
        self.controls["K"] = w.IntSlider(value=2, min=1, max=8, description="K", continuous_update=False)
        self.controls["beam"] = w.IntSlider(value=10, min=1, max=10, description="beam B", continuous_update=False)
        self.buttons = {"train": w.Button(description="train students", button_style="warning", icon="play"),
                        "evaluate": w.Button(description="evaluate", button_style="info", icon="table")}
        self.error = w.HTML("")  # one line: the last button action's error, empty when it succeeded
        self.curves = LiveCurves()
        self.output = w.Output()
        self.view = self._layout()
        self.last: dict = {}
        for control in self.controls.values():
            control.observe(lambda _change: self.update(), "value")
        self.buttons["train"].on_click(lambda _b: self._act(self.train))
        self.buttons["evaluate"].on_click(lambda _b: self._act(self.evaluate))
        self.update()

    def _layout(self) -> w.VBox:
        def row(stage: int) -> w.HBox:
            title = {1: "stage 1 (+F-KD)", 2: "stage 2 (++S-KD)"}[stage]
            return w.HBox([w.Label(title, layout=w.Layout(width="120px"))]
                          + [self.controls[f"{n}_{stage}"] for n in WEIGHT_NAMES])
        decoding = w.HBox([w.Label("decoding", layout=w.Layout(width="120px")), self.controls["p_thr"],
                           self.controls["K"], self.controls["beam"]])
        return w.VBox([row(1), row(2), decoding, w.HBox(list(self.buttons.values())), self.error, self.curves.view,
                       self.output])

    def weights(self, stage: int) -> KDWeights:
        """The KD weights set for ``stage`` (1: +F-KD, 2: ++S-KD)."""
        return KDWeights(*(float(self.controls[f"{n}_{stage}"].value) for n in WEIGHT_NAMES))

    def decoding(self) -> dict:
        return {"p_thr": float(self.controls["p_thr"].value), "K": int(self.controls["K"].value),
                "beam": int(self.controls["beam"].value)}

    def _act(self, action: Callable[[], None]) -> bool:
        """Run a button's action; its error (if any) becomes the panel's one error line. True on success."""
        self.error.value, self.last["error"] = "", ""
        try:
            action()
        except Exception as exc:  # noqa: BLE001 - a button callback's error must reach the user, not the log
            self.last["error"] = error_line(exc)
            self.error.value = f"<span style='color:#b00'>⚠ {html.escape(self.last['error'])}</span>"
            return False
        return True

    def train(self) -> None:
        """Train the baseline (once), stage 1 and stage 2 with the weights set, then evaluate. Weights that
        distil nothing (:func:`~kdlab.explore.training.check_weights`) are refused before any training."""
        check_weights(self.weights(1), 1)
        check_weights(self.weights(2), 2)
        if not any(r.criterion == "ljca" and r.name != TEACHER for r in self.lab.runs.values()):
            self.lab.train_student("ljca", on_epoch=self.curves)
        fkd = self.lab.train_student("fkd", self.weights(1), on_epoch=self.curves)
        self.lab.train_student("skd", self.weights(2), on_epoch=self.curves, fkd=fkd)
        self.evaluate()

    def evaluate(self) -> None:
        """Decode every run with the decoding settings (cached), then redraw."""
        self.lab.table1(**self.decoding())
        self.update()

    def update(self) -> None:
        dec = self.decoding()
        table = self.lab.table1(**dec, decode=False) if self.lab.runs else None
        w1, w2 = self.weights(1), self.weights(2)
        head = (f"<b>next training</b>: stage 1 {html.escape(w1.label())} · stage 2 {html.escape(w2.label())}<br>"
                f"<b>decoding</b>: teacher joint CTC/attention beam 10; students Mask-CTC p_thr {dec['p_thr']:g}, "
                f"K {dec['K']}, B {dec['beam']}")
        self.last = {"weights": (w1, w2), "decoding": dec, "table": table, "error": self.last.get("error", "")}
        body = (pd.DataFrame(table) if table is not None
                else HTML("<i>not decoded with these settings yet: press <b>evaluate</b></i>"))
        show(self.output, HTML(head), body)
