"""Your own audio in any explorer: upload a recording (or type a path on the server) and, optionally, what is
said; the explorers given as targets offer it in their utterance dropdown and show it through the same views
as the check sets. One line says what the models were trained on (they have only heard espeak-ng voices).

There is no microphone control: record with any recorder (a phone, ``arecord``, Audacity) and upload the file.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import ipywidgets as w

from kdlab.errors import USER_ERRORS
from kdlab.explore.model import trained_on
from kdlab.explore.utterance import Utterance, load_file, load_upload
from kdlab.widgets.common import add_utterance

ACCEPT = "audio/*,.wav,.flac,.ogg,.mp3"


class YourAudio:
    """Controls: ``upload`` (a file), ``path`` (or a file on the server), ``text`` (what is said), ``use``.
    ``.last`` is the utterance added last (None until one loaded), ``status`` its one-line report."""

    def __init__(self, targets: Sequence[object], model_name: str) -> None:
        self.targets, self.model_name = list(targets), model_name
        self.controls = {
            "upload": w.FileUpload(accept=ACCEPT, multiple=False, description="upload audio"),
            "path": w.Text(placeholder="…or a path on the server, e.g. ~/hello.wav", description="path",
                           layout=w.Layout(width="420px")),
            "text": w.Text(placeholder="what is said (optional; the error views need it)", description="reference",
                           layout=w.Layout(width="560px")),
            "use": w.Button(description="show it", icon="play", tooltip="load the path (an upload loads by itself)"),
        }
        self.status = w.HTML(f"<i>{html.escape(trained_on(model_name))}</i>")
        c = self.controls
        self.view = w.VBox([w.HBox([c["upload"], c["path"], c["use"]]), c["text"], self.status])
        self.last: Utterance | None = None
        c["use"].on_click(lambda _b: self.use())
        c["upload"].observe(self._on_upload, "value")

    def _on_upload(self, change: dict) -> None:
        if change["new"]:  # not the reset after a load
            self.use()

    def _load(self) -> Utterance:
        """The uploaded file if there is one, else the typed path."""
        text, uploads = self.controls["text"].value, self.controls["upload"].value
        if uploads:
            item = uploads[-1]
            return load_upload(item["name"], item["content"], text)
        path = self.controls["path"].value.strip()
        if not path:
            raise ValueError("choose a file to upload or type a path first")
        return load_file(path, text)

    def use(self) -> Utterance | None:
        """Load the audio and add it to every target explorer; errors become the status line."""
        try:
            utt = self._load()
            for target in self.targets:
                utt = add_utterance(target, utt)
        except (*USER_ERRORS, ValueError) as err:
            self.status.value = f"<b>cannot use it:</b> {html.escape(str(err).splitlines()[0])}"
            return None
        self.controls["upload"].value = ()
        self.last = utt
        ref = f"reference “{html.escape(utt.text)}”" if utt.text else "no reference (error views show none)"
        self.status.value = (f"<b>{html.escape(utt.id)}</b>: {utt.duration:.1f} s at {utt.sample_rate} Hz, {ref}. "
                             f"<i>{html.escape(trained_on(self.model_name))}</i>")
        return utt
