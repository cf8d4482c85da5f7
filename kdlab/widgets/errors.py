"""Error-analysis widgets over decoded test sets (the per-utterance table of
:func:`kdlab.explore.errors.utterance_table`): a filter (model, set, error type, minimum errors, text search)
that redraws S/I/D bars, a table of the matching utterances and their coloured alignments for every model, and a
model-against-model comparison per utterance.

Everything is decoded beforehand; a control change only filters a DataFrame and redraws.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import ipywidgets as w
import pandas as pd
from IPython.display import HTML

from kdlab.explore.errors import (
    ALL,
    ERROR_TYPES,
    decode_utterance,
    error_count,
    filter_utterances,
    ordered_ids,
    pair_models,
    summary_table,
    utterance_alignments,
    utterance_table,
)
from kdlab.explore.utterance import Utterance
from kdlab.viz.errors import compare_scatter, error_type_bars, legend_html, side_by_side_html
from kdlab.widgets.common import figure_image, show, unique_id

TABLE_COLUMNS = ["model", "set", "id", "N", "S", "I", "D", "errors", "rate", "ref", "hyp"]


def _order(values: pd.Series) -> list[str]:
    return list(dict.fromkeys(values))


class ErrorExplorer:
    """Filter the decoded utterances; shows the filtered S/I/D per model, a table of the utterances with the
    most errors of the chosen type, and for the first few of them every model's coloured alignment."""

    def __init__(self, utts: pd.DataFrame, rows: int = 12, alignments: int = 3,
                 models: Sequence[str] = ()) -> None:
        if utts.empty:
            raise ValueError("no decoded utterances to explore")
        self.utts, self.rows, self.unit = utts, rows, str(utts["unit"].iloc[0])
        self.models = list(models)  # shipped names of the decoded models: a user's file is decoded with them
        self.controls = {
            "model": w.Dropdown(options=[ALL, *_order(utts["model"])], value=ALL, description="model"),
            "set": w.Dropdown(options=[ALL, *_order(utts["set"])], value=ALL, description="set"),
            "error_type": w.Dropdown(options=list(ERROR_TYPES), value="any", description="error type"),
            "min_errors": w.IntSlider(value=0, min=0, max=int(utts["errors"].max()), description="min errors",
                                      continuous_update=False),
            "text": w.Text(value="", description="search", placeholder="word or utterance id",
                           continuous_update=False),
            "alignments": w.IntSlider(value=alignments, min=1, max=10, description="alignments",
                                      continuous_update=False),
        }
        self.output = w.Output()
        names = list(self.controls)
        self.view = w.VBox([w.HBox([self.controls[n] for n in names[:3]]),
                            w.HBox([self.controls[n] for n in names[3:]]), self.output])
        self.last: dict = {}
        for control in self.controls.values():
            control.observe(lambda _change: self.update(), "value")
        self.update()

    def add_utterance(self, utt: Utterance) -> Utterance:
        """Decode a user's recording (its reference known) with every model and select it as a set of its own."""
        if not self.models:
            raise ValueError("this explorer was made without its models: ErrorExplorer(utts, models=[...])")
        utt = unique_id(utt, set(self.utts["id"]))
        rows = utterance_table(decode_utterance(self.models, utt))
        self.utts = pd.concat([self.utts, rows], ignore_index=True)
        c = self.controls
        c["set"].options = [ALL, *_order(self.utts["set"])]
        c["min_errors"].max = int(self.utts["errors"].max())
        c["model"].value, c["min_errors"].value, c["text"].value = ALL, 0, ""
        c["set"].value = rows["set"].iloc[0]
        self.update()
        return utt

    def filtered(self) -> pd.DataFrame:
        c = self.controls
        return filter_utterances(self.utts, c["model"].value, c["set"].value, c["error_type"].value,
                                 int(c["min_errors"].value), c["text"].value)

    def _alignments(self, keys: list[tuple[str, str]]) -> str:
        """Every model's alignment of each (set, id) in ``keys``."""
        parts = []
        for set_name, uid in keys:
            ref, alignments = utterance_alignments(self.utts, set_name, uid)
            parts.append(side_by_side_html(ref, alignments, title=f"{set_name} · {uid}"))
        return "".join(parts) + (legend_html() if parts else "")

    def _enable_alignments(self, matches: int) -> None:
        """The alignments slider only changes what is shown when more than one utterance matches: disabled,
        with a tooltip saying why, otherwise."""
        slider = self.controls["alignments"]
        slider.disabled = matches <= 1
        found = "no utterance matches" if matches == 0 else "one utterance matches"
        slider.tooltip = (f"{found} the filter: nothing more to show" if matches <= 1
                          else "how many matching utterances show every model's alignment")

    def update(self) -> None:
        c = self.controls
        found = self.filtered()
        keys = ordered_ids(found, c["error_type"].value)
        shown = keys[: int(c["alignments"].value)]
        self._enable_alignments(len(keys))
        top = found.assign(_n=error_count(found, c["error_type"].value)).sort_values(
            "_n", ascending=False, kind="stable").head(self.rows)
        summary = summary_table(found) if len(found) else None
        self.last = {"rows": len(found), "utterances": len(keys), "keys": keys, "shown": shown,
                     "table": found[TABLE_COLUMNS], "summary": summary}
        line = (f"<b>{len(found)}</b> rows ({len(keys)} utterances) match: model {html.escape(c['model'].value)}, "
                f"set {html.escape(c['set'].value)}, ≥ {c['min_errors'].value} errors of type "
                f"{html.escape(c['error_type'].value)}" + (f", containing “{html.escape(c['text'].value)}”"
                                                         if c["text"].value.strip() else ""))
        if summary is None:
            show(self.output, HTML(line))
            return
        bars = error_type_bars(summary, self.unit)
        show(self.output, HTML(line), figure_image(bars), top[TABLE_COLUMNS], HTML(self._alignments(shown)))


class ModelComparison:
    """Two models utterance by utterance (e.g. the L_jca student against the KD student): a scatter of their
    errors per utterance and the utterances where they differ most, with both alignments."""

    def __init__(self, utts: pd.DataFrame, x: str | None = None, y: str | None = None, rows: int = 5) -> None:
        models = _order(utts["model"])
        if len(models) < 2:
            raise ValueError("comparing needs two decoded models")
        self.utts, self.rows = utts, rows
        self.controls = {
            "x": w.Dropdown(options=models, value=x or models[-2], description="x model"),
            "y": w.Dropdown(options=models, value=y or models[-1], description="y model"),
            "set": w.Dropdown(options=[ALL, *_order(utts["set"])], value=ALL, description="set"),
            "value": w.Dropdown(options=["errors", "rate"], value="errors", description="per utterance"),
        }
        self.output = w.Output()
        self.view = w.VBox([w.HBox(list(self.controls.values())), self.output])
        self.last: dict = {}
        for control in self.controls.values():
            control.observe(lambda _change: self.update(), "value")
        self.update()

    def pairs(self) -> pd.DataFrame:
        """One row per utterance decoded by both models (:func:`kdlab.explore.errors.pair_models`)."""
        c = self.controls
        return pair_models(self.utts, c["x"].value, c["y"].value, c["value"].value, c["set"].value)

    def update(self) -> None:
        c, value = self.controls, self.controls["value"].value
        both = self.pairs()
        fig = compare_scatter(both[f"{value}_x"], both[f"{value}_y"], c["x"].value, c["y"].value,
                              what=f"{value} per utterance")
        most = both.reindex(both["diff"].abs().sort_values(ascending=False, kind="stable").index).head(self.rows)
        self.last = {"utterances": len(both), "better": int((both["diff"] < 0).sum()),
                     "worse": int((both["diff"] > 0).sum()), "most_different": list(most.index)}
        aligned = "".join(side_by_side_html(r["ref"], {c["x"].value: r["ops_x"], c["y"].value: r["ops_y"]},
                                            title=f"{s} · {uid} (Δ {r['diff']:+g})")
                          for (s, uid), r in most.iterrows())
        show(self.output, figure_image(fig), HTML(aligned + legend_html()))
