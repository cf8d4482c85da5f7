"""A user's own recording: loaded from a path or an upload's bytes, added to an explorer's dropdown and shown
through the same views; bad files become one status line."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from widget_outputs import shown

from kdlab.explore import load_model, load_set
from kdlab.explore.model import trained_on
from kdlab.explore.utterance import YOUR_AUDIO, load_file, load_upload
from kdlab.widgets.common import MARKER, add_utterance
from kdlab.widgets.ctc import UtterancePicker
from kdlab.widgets.upload import YourAudio


def _stereo_44k(utt_audio: np.ndarray, path: Path) -> Path:
    """A check-set utterance as a user would bring it: 44.1 kHz stereo FLAC."""
    import torch
    import torchaudio.functional as AF

    wave = AF.resample(torch.as_tensor(utt_audio), 16000, 44100).numpy()
    sf.write(path, np.stack([wave, wave], axis=1), 44100, format="FLAC")
    return path


@pytest.fixture(scope="module")
def check_utt():
    return load_set("mini-en", "test-clean", limit=1)[0]


def test_load_file_resamples_and_keeps_the_reference(tmp_path: Path, check_utt) -> None:
    path = _stereo_44k(check_utt.audio.numpy(), tmp_path / "mine.flac")
    utt = load_file(path, "  hello   there ")
    assert utt.id == "mine" and utt.text == "hello there" and utt.condition == YOUR_AUDIO
    assert utt.sample_rate == 16000 and abs(utt.duration - check_utt.duration) < 0.01


def test_load_upload_reads_bytes(tmp_path: Path, check_utt) -> None:
    buf = io.BytesIO()
    sf.write(buf, check_utt.audio.numpy(), 16000, format="WAV")
    utt = load_upload("my take.wav", buf.getvalue(), check_utt.text)
    assert utt.id == "my take" and utt.path == Path("my take.wav") and utt.audio.numel() == check_utt.audio.numel()


def test_trained_on_names_the_synthesizers_and_the_unseen_figure() -> None:
    """The line names every engine of the model's corpus and, where its card has one, prints its test-unseen
    figure beside test-clean (the card's own numbers); a card without them warns in words."""
    from kdlab.pretrained import card

    for spec in ("mini-en/teacher", "mini-en/student-same-skd", "mini-en/inter-kd", "mini-zh/teacher"):
        data, line = card(*spec.split("/")), trained_on(spec)
        for engine in data.get("corpus_engines", ["espeak"]):
            assert {"espeak": "espeak-ng"}.get(engine, engine) in line
        unseen = (data["results"].get("test-unseen") or {})
        if unseen:
            method = "attention_beam10" if data["kind"] == "ar" else "maskctc_beam10"
            assert f"(test-unseen) its WER is {unseen[method]['rate']:.1f} %" in line
        else:
            assert "expect far more errors" in line
    assert "your own run" in trained_on("runs/x/avg-5.pt")


def test_your_audio_goes_through_the_explorers_views(tmp_path: Path, check_utt) -> None:
    """A picker shows the user's file (greedy CTC of the same words: the same transcript as the check-set copy)."""
    model = load_model("mini-en/teacher")
    picker = UtterancePicker(model, [check_utt])
    panel = YourAudio([picker], "mini-en/teacher")
    panel.controls["path"].value = str(_stereo_44k(check_utt.audio.numpy(), tmp_path / "mine.flac"))
    panel.controls["text"].value = check_utt.text
    utt = panel.use()
    assert utt is not None and picker.controls["utterance"].value == "mine"
    assert "mine" in panel.status.value and "espeak-ng" in panel.status.value
    again = add_utterance(picker, utt)  # the same file twice: a new entry, selected
    assert again.id == "mine (2)" and picker.controls["utterance"].value == "mine (2)"


def test_bad_audio_is_one_status_line(tmp_path: Path, check_utt) -> None:
    picker = UtterancePicker(load_model("mini-en/teacher"), [check_utt])
    panel = YourAudio([picker], "mini-en/teacher")
    assert panel.use() is None and "choose a file" in panel.status.value
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF....WAVEfmt nonsense")
    panel.controls["path"].value = str(bad)
    assert panel.use() is None and "broken.wav" in panel.status.value and "\n" not in panel.status.value
    assert list(picker.utts) == [check_utt.id]  # nothing added


def test_your_audio_in_the_families_explorer(tmp_path: Path, check_utt) -> None:
    """07's explorer (every family's view) takes a user's file with no reference."""
    from kdlab.explore import families as fam
    from kdlab.widgets.families import NEEDS_REFERENCE, FamilyExplorer

    teacher = load_model("mini-en/kd-teacher")
    explorer = FamilyExplorer(teacher, fam.family_models("mini-en"), [check_utt])
    sf.write(tmp_path / "mine.wav", check_utt.audio.numpy(), 16000)
    panel = YourAudio([explorer], teacher.name)
    panel.controls["path"].value = str(tmp_path / "mine.wav")
    assert panel.use() is not None and explorer.controls["utterance"].value == "mine"
    for family in explorer.controls["family"].options:
        explorer.controls["family"].value = family
        text, _ = shown(explorer.output)
        assert explorer.output.outputs[-1] == MARKER and explorer.last["utt_id"] == "mine"  # redrawn, no error
        assert ("has no reference" in text) == (family in NEEDS_REFERENCE)


def test_your_audio_in_the_beam_and_posterior_explorers(tmp_path: Path, check_utt) -> None:
    """03's beam explorer decodes a file without a reference; 04's explorer needs the reference (eq 11) and
    says so in one line without it."""
    from kdlab.widgets.beams import MaskBeamExplorer
    from kdlab.widgets.posteriors import PosteriorExplorer

    sf.write(tmp_path / "mine.wav", check_utt.audio.numpy(), 16000)
    student, teacher = load_model("mini-en/student-same-skd"), load_model("mini-en/teacher")
    beams = MaskBeamExplorer(student, [check_utt])
    posteriors = PosteriorExplorer(teacher, [student], [check_utt])
    panel = YourAudio([beams, posteriors], teacher.name)
    panel.controls["path"].value = str(tmp_path / "mine.wav")
    assert panel.use() is not None
    assert beams.last["utt_id"] == "mine" and beams.last["text"]
    assert posteriors.last == {"utt_id": "mine"} and "has no reference" in shown(posteriors.output)[0]
    panel.controls["text"].value = check_utt.text
    assert panel.use().id == "mine (2)"
    assert posteriors.last["utt_id"] == "mine (2)" and posteriors.last["token"]
    assert not posteriors.controls["position"].disabled


def test_your_audio_in_the_error_explorer(tmp_path: Path, check_utt) -> None:
    """06: a user's file with its reference is decoded by every model into a set of its own; the decoding is the
    same as the check set's copy of the same audio; without a reference the status line says what is missing."""
    from kdlab.explore import errors as er
    from kdlab.widgets.errors import ErrorExplorer

    models = ["mini-en/teacher", "mini-en/student-same-skd"]
    utts = er.utterance_table(er.decode_all(models, ["test-clean"], limit=1))
    explorer = ErrorExplorer(utts, models=models)
    sf.write(tmp_path / "mine.wav", check_utt.audio.numpy(), 16000)
    panel = YourAudio([explorer], models[0])
    panel.controls["path"].value = str(tmp_path / "mine.wav")
    assert panel.use() is None and "needs what is said" in panel.status.value
    panel.controls["text"].value = check_utt.text
    assert panel.use() is not None and explorer.controls["set"].value == YOUR_AUDIO
    mine = explorer.last["table"]
    assert list(mine["model"]) == ["teacher", "student-same-skd"] and set(mine["id"]) == {"mine"}
    check = utts.set_index("model")
    for _, row in mine.iterrows():  # same audio, same model, same search: the same transcript
        assert row["hyp"] == check.loc[row["model"], "hyp"] and row["ref"] == check.loc[row["model"], "ref"]
