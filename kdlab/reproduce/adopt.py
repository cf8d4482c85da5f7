"""A shipped AR teacher as the teacher stage of ``kdlab reproduce`` (preset field ``teacher_from``).

``kdlab reproduce --set teacher_from=pretrained:mini-en/teacher`` distils the students from a shipped
teacher instead of training one. The stage copies the shipped model's tokenizer and CMVN into ``ar/`` (the
students take theirs from there, as from a trained teacher), writes its weights (float32 of the shipped
float16) as the run checkpoint ``ar/pretrained.pt`` and marks both the prepare and the teacher stage done;
the N-best stage then searches Ω (eq 8–9) with that teacher, and F-KD / S-KD (eq 7–13) read it live.

The shipped teacher must belong to the preset's corpus (``mini-en`` for ``--preset mini-en``): its
tokenizer, CMVN and held-out voices are that corpus's.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from kdlab.errors import UserError

ADOPTED_FILE = "pretrained.pt"  # in the teacher's folder: the shipped teacher as a run checkpoint


def check_teacher_from(spec: str, corpus_name: str) -> dict:
    """The card of the shipped teacher ``spec`` (``pretrained:<corpus>/<name>``); raises a one-line
    :class:`UserError` unless it is an installed AR model of the corpus ``corpus_name``."""
    from kdlab.pretrained.store import path as model_folder
    from kdlab.pretrained.store import read_card

    card = read_card(model_folder(spec))
    if card.get("kind") != "ar":
        raise UserError(f"teacher_from={spec}: a {card.get('kind')} model, not an AR teacher")
    if card.get("corpus") != corpus_name:
        raise UserError(f"teacher_from={spec}: trained on corpus {card.get('corpus')}, but this run's corpus is "
                        f"{corpus_name} (its tokenizer, CMVN and held-out voices belong to its own corpus)")
    return card


def adopted_from(teacher_dir: Path) -> str | None:
    """The shipped teacher a finished teacher stage adopted (``pretrained:…``), or None for a trained one."""
    from kdlab.reproduce.stages import DONE

    marker = teacher_dir / DONE
    spec = json.loads(marker.read_text()).get("from") if marker.is_file() else None
    return spec if isinstance(spec, str) and spec.startswith("pretrained:") else None


def check_folder(teacher_dir: Path, spec: str) -> None:
    """Raise a one-line :class:`UserError` when ``teacher_dir`` already holds another finished teacher (one
    trained there, or another shipped one) than ``spec``."""
    from kdlab.reproduce.stages import DONE, is_done

    if not is_done(teacher_dir, DONE):
        return
    held = adopted_from(teacher_dir)
    if held != spec:
        what = "the teacher trained there" if held is None else f"the shipped teacher {held}"
        raise UserError(f"{teacher_dir}: holds {what}, not teacher_from={spec}; use another --out")


def adopt_teacher(spec: str, corpus_name: str, cfg_dict: dict, teacher_dir: Path) -> Path:
    """Make ``teacher_dir`` a finished teacher stage holding the shipped teacher ``spec``; returns the
    checkpoint. ``cfg_dict``: the preset's teacher config (its data section is kept, the model section is
    the shipped one). Idempotent: a folder already adopted is left as it is."""
    from kdlab.reproduce.stages import DONE, PREPARED, checkpoint_of, is_done, mark_done

    check_folder(teacher_dir, spec)
    if is_done(teacher_dir, DONE):
        return checkpoint_of(teacher_dir)
    card = check_teacher_from(spec, corpus_name)
    _copy_artefacts(spec, teacher_dir)
    out = _write_checkpoint(spec, card, cfg_dict, teacher_dir)
    mark_done(teacher_dir, {"from": spec}, PREPARED)
    mark_done(teacher_dir, {"checkpoint": str(out), "from": spec, "sha256": card["sha256"]})
    return out


def _copy_artefacts(spec: str, teacher_dir: Path) -> None:
    """Copy the shipped tokenizer and CMVN into ``teacher_dir`` (recorded in ``artefacts.json``)."""
    from kdlab.pretrained.store import CMVN_FILE, TOKENIZER_DIR
    from kdlab.pretrained.store import path as model_folder
    from kdlab.training.rundir import ARTEFACTS_FILE

    folder = model_folder(spec)
    teacher_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(folder / TOKENIZER_DIR, teacher_dir / TOKENIZER_DIR, dirs_exist_ok=True)
    shutil.copy2(folder / CMVN_FILE, teacher_dir / CMVN_FILE)
    recipe = {"copied_from": spec}
    (teacher_dir / ARTEFACTS_FILE).write_text(
        json.dumps({TOKENIZER_DIR: recipe, CMVN_FILE: recipe}, indent=1) + "\n", encoding="utf-8")


def _write_checkpoint(spec: str, card: dict, cfg_dict: dict, teacher_dir: Path) -> Path:
    """``teacher_dir/config.yaml`` (the run's data, the shipped model) and the float32 run checkpoint."""
    from kdlab.checkpoint import load_checkpoint, save_atomic
    from kdlab.config import config_from_dict, save_config, to_dict
    from kdlab.data.tokenizer import load_tokenizer, tokenizer_sha256
    from kdlab.pretrained.store import TOKENIZER_DIR, float_state, verified_model_file

    shipped = load_checkpoint(verified_model_file(spec))
    cfg = config_from_dict({**cfg_dict, "model": shipped["config"]["model"]})
    save_config(cfg, teacher_dir / "config.yaml")
    tokenizer = load_tokenizer(teacher_dir / TOKENIZER_DIR)
    state = float_state(shipped["model"])
    meta = {k: card[k] for k in ("epoch", "averaged") if k in card}
    out = teacher_dir / ADOPTED_FILE
    save_atomic({"model": state, "config": to_dict(cfg), "kind": "ar", "vocab_size": tokenizer.vocab_size,
                 "tokenizer_sha256": tokenizer_sha256(tokenizer), "from": spec,
                 "source_sha256": card["sha256"], **meta}, out)
    return out
