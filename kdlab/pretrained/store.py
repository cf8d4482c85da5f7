"""Shipped pretrained mini models, loadable by name (``pretrained:<corpus>/<name>``).

Layout (``data/pretrained/`` at the repository root, or ``$KDLAB_PRETRAINED``)::

    <corpus>/<name>/model.pt      float16 state dict + experiment config, kind, vocab size (weights-only safe)
    <corpus>/<name>/tokenizer/    the run's tokenizer folder
    <corpus>/<name>/cmvn.json     the run's global CMVN
    <corpus>/<name>/card.json     model card: recipe, command, seeds, parameters, results, and the sha256
                                  of every file the model depends on (``files``: model.pt, cmvn.json,
                                  each tokenizer/ file), all checked on every load

:func:`load` returns the same ``(model, tokenizer, cmvn, exp_cfg)`` tuple as
:func:`kdlab.checkpoint.load_model_from_checkpoint` (float32 model in eval mode), which accepts the spec
string ``pretrained:<corpus>/<name>`` in place of a checkpoint path, so every ``--ckpt`` option takes it.
:func:`export` turns a run checkpoint (``runs/x/avg-5.pt``) into this layout. Relative data paths in a
shipped config (``data.corpus``, ``data.train``, ``data.dev``) are relative to the repository root.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from kdlab.checkpoint import (
    PRETRAINED_PREFIX,
    CheckpointError,
    load_checkpoint,
    load_model_from_checkpoint,
    save_atomic,
    sha256_file,
)
from kdlab.data.files import atomic_file

SPEC_PREFIX = PRETRAINED_PREFIX
ENV_ROOT = "KDLAB_PRETRAINED"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_ROOT = REPO_ROOT / "data" / "pretrained"
MODEL_FILE, CARD_FILE, TOKENIZER_DIR, CMVN_FILE = "model.pt", "card.json", "tokenizer", "cmvn.json"
FORMAT = "kdlab-pretrained-1"
CHECK_PREFIX = "check/"  # card result keys re-checkable on a shipped check set: check/<set>
FILES_KEY = "files"  # card entry {relative path: sha256} of every file the model depends on
DATA_PATH_KEYS = ("corpus", "train", "dev")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
FP16_MAX = torch.finfo(torch.float16).max
FP16_TOLERANCE = 0.01  # largest change of a CTC posterior the float16 export may cause


class PretrainedError(CheckpointError):
    """A pretrained model is unknown, incomplete or corrupt; the one-line message names it or its file."""


# ----------------------------------------------------------------------------- names and folders


def pretrained_root(root: str | Path | None = None) -> Path:
    """The folder of shipped models: ``root`` if given, else ``$KDLAB_PRETRAINED``, else ``data/pretrained``."""
    if root is not None:
        return Path(root)
    env = os.environ.get(ENV_ROOT)
    return Path(env) if env else DEFAULT_ROOT


def is_spec(value: Any) -> bool:
    """True for a ``pretrained:<corpus>/<name>`` string."""
    return isinstance(value, str) and value.startswith(SPEC_PREFIX)


def parse_spec(spec: str) -> tuple[str, str]:
    """``(corpus, name)`` of ``pretrained:<corpus>/<name>`` (the prefix is optional)."""
    body = spec[len(SPEC_PREFIX):] if is_spec(spec) else spec
    corpus, sep, name = body.partition("/")
    if not sep or not NAME_RE.match(corpus) or not NAME_RE.match(name):
        raise PretrainedError(f"{spec!r}: expected pretrained:<corpus>/<name>, e.g. pretrained:mini-en/teacher")
    return corpus, name


def available(root: str | Path | None = None) -> list[str]:
    """Installed models as ``"<corpus>/<name>"``, sorted (folders holding a ``model.pt``)."""
    base = pretrained_root(root)
    if not base.is_dir():
        return []
    found = [f"{m.parent.parent.name}/{m.parent.name}" for m in base.glob(f"*/*/{MODEL_FILE}")]
    return sorted(s for s in found if not any(part.startswith(".") for part in s.split("/")))


def _unknown(spec: str, root: Path) -> PretrainedError:
    names = available(root)
    have = f"available: {', '.join(names)}" if names else f"none are installed under {root}"
    return PretrainedError(f"unknown pretrained model {spec!r} ({have})")


def path(spec: str, root: str | Path | None = None) -> Path:
    """The folder of ``pretrained:<corpus>/<name>`` (or ``<corpus>/<name>``); unknown names raise."""
    corpus, name = parse_spec(spec)
    base = pretrained_root(root)
    folder = base / corpus / name
    if not (folder / MODEL_FILE).is_file():
        raise _unknown(f"{corpus}/{name}", base)
    return folder


def verified_model_file(spec: str, root: str | Path | None = None) -> Path:
    """``model.pt`` of a pretrained model, every file it depends on checked against the card's sha256."""
    folder = path(spec, root)
    check_files(folder, read_card(folder))
    return folder / MODEL_FILE


# ----------------------------------------------------------------------------- cards and hashes


sha256_of = sha256_file  # the checkpoint fingerprint (kdlab.checkpoint), used for model cards


def read_card(folder: Path) -> dict:
    """``card.json`` of a model folder; missing or malformed cards raise."""
    file = folder / CARD_FILE
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PretrainedError(f"{file}: model card not found") from None
    except json.JSONDecodeError as err:
        raise PretrainedError(f"{file}: not valid JSON ({err})") from None
    if not isinstance(data, dict) or not isinstance(data.get("sha256"), str):
        raise PretrainedError(f"{file}: not a kdlab model card (expected an object with a 'sha256' entry)")
    return data


def write_card(folder: Path, data: dict) -> None:
    """Write ``card.json`` of a model folder (atomically; ``model.pt`` and its sha256 are untouched)."""
    with atomic_file(folder / CARD_FILE) as f:
        f.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def card(corpus: str, name: str, root: str | Path | None = None) -> dict:
    """The model card of ``<corpus>/<name>``."""
    return read_card(path(f"{corpus}/{name}", root))


def _check_hash(file: Path, want: Any) -> None:
    """Raise unless ``file`` hashes to ``want`` (the card's hex sha256)."""
    got = sha256_of(file)
    if got != want:
        shown = f"{want[:16]}…" if isinstance(want, str) else repr(want)
        raise PretrainedError(f"{file}: sha256 {got[:16]}… does not match {CARD_FILE} ({shown}); "
                              f"the file is corrupt or was replaced")


def check_sha256(folder: Path, card_data: dict) -> None:
    """Raise unless ``model.pt`` hashes to the card's ``sha256``."""
    _check_hash(folder / MODEL_FILE, card_data["sha256"])


def dependency_files(folder: Path) -> list[str]:
    """Every file a model folder's model depends on, relative to it: ``model.pt``, ``cmvn.json`` and each
    file under ``tokenizer/`` (sorted, ``/``-separated)."""
    tokenizer = folder / TOKENIZER_DIR
    extra = sorted(p.relative_to(folder).as_posix() for p in tokenizer.rglob("*") if p.is_file())
    return [MODEL_FILE, CMVN_FILE, *extra]


def file_hashes(folder: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of :func:`dependency_files` (the card's ``files`` entry)."""
    return {rel: sha256_of(folder / rel) for rel in dependency_files(folder)}


def _card_files(folder: Path, card_data: dict) -> dict[str, Any]:
    """The card's ``files`` entry; a card without one, or with a path that leaves the folder, raises."""
    files = card_data.get(FILES_KEY)
    card_file = folder / CARD_FILE
    if not isinstance(files, dict) or MODEL_FILE not in files:
        raise PretrainedError(f"{card_file}: records no sha256 of cmvn.json and tokenizer/ (a card from before "
                              f"per-file hashes); add them with: kdlab pretrained seal {folder.parent.name}/"
                              f"{folder.name}")
    for rel in files:
        if Path(rel).is_absolute() or ".." in Path(rel).parts or not _allowed(folder / rel, folder):
            raise PretrainedError(f"{card_file}: files entry {rel!r} is outside the model folder")
    return files


def _inside(p: Path, folder: Path) -> bool:
    """True when ``p`` (resolved) lies inside ``folder`` (resolved), never equal to it."""
    inner, outer = p.resolve(), folder.resolve()
    return inner != outer and inner.is_relative_to(outer)


def _allowed(p: Path, folder: Path) -> bool:
    """Inside the model folder or, through its ``tokenizer`` link, inside the corpus's shared tokenizer."""
    return _inside(p, folder) or _inside(p, folder.parent / TOKENIZER_DIR)


def share_tokenizer(folder: Path) -> bool:
    """Replace ``folder/tokenizer`` by a link to ``<corpus>/tokenizer`` (one copy per corpus) when that shared
    folder holds the same files; the shared folder is made from this one when the corpus has none yet.
    Returns whether ``folder`` now links to it."""
    own, shared = folder / TOKENIZER_DIR, folder.parent / TOKENIZER_DIR
    if own.is_symlink():
        return own.resolve() == shared.resolve()
    if not shared.exists():
        shutil.copytree(own, shared)
    if _tree_hashes(own) != _tree_hashes(shared):
        return False
    link = folder / f".{TOKENIZER_DIR}.link-{os.getpid()}"
    os.symlink(os.path.join("..", TOKENIZER_DIR), link)
    shutil.rmtree(own)
    os.replace(link, own)
    return True


def _tree_hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): sha256_of(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def check_files(folder: Path, card_data: dict) -> None:
    """Raise unless every file the model depends on hashes to the card's ``files`` entry and the card lists
    exactly those files (a tokenizer file added or removed is refused too); one line naming the file."""
    files = _card_files(folder, card_data)
    if files[MODEL_FILE] != card_data.get("sha256"):  # one record of model.pt: each file is hashed once below
        raise PretrainedError(f"{folder / CARD_FILE}: its files entry and its sha256 disagree on {MODEL_FILE}")
    present = set(dependency_files(folder))
    for rel, want in files.items():
        if rel not in present:
            raise PretrainedError(f"{folder / rel}: missing (listed in {CARD_FILE}); the model folder is incomplete")
        _check_hash(folder / rel, want)
    unlisted = sorted(present - set(files))
    if unlisted:
        raise PretrainedError(f"{folder / unlisted[0]}: not listed in {CARD_FILE}; the file was added or the "
                              f"card is from another model")


def seal(folder: Path) -> bool:
    """Record the sha256 of every dependency file on the card of ``folder`` (cards from before per-file
    hashes). ``model.pt`` must still match the card's ``sha256`` and hashes already on the card are kept:
    a file that no longer matches is refused, never re-blessed. Returns whether the card changed."""
    data = read_card(folder)
    if FILES_KEY in data:
        check_files(folder, data)
        return False
    check_sha256(folder, data)
    data[FILES_KEY] = file_hashes(folder)
    write_card(folder, data)
    return True


# ----------------------------------------------------------------------------- loading


def _rebase_data_paths(data: dict, base: Path, to_relative: bool) -> dict:
    """Data paths made relative to ``base`` (when inside it) or, when relative, absolute under ``base``."""
    data = dict(data)
    for key in DATA_PATH_KEYS:
        value = data.get(key)
        if not value:
            continue
        p = Path(value)
        if to_relative and p.is_absolute() and p.resolve().is_relative_to(base):
            data[key] = str(p.resolve().relative_to(base))
        elif not to_relative and not p.is_absolute():
            data[key] = str(base / p)
    return data


def _shipped_config(ckpt: dict, file: Path) -> Any:
    """The ExperimentConfig stored in ``model.pt``, relative data paths resolved at the repository root."""
    from kdlab.config import ConfigError, config_from_dict

    if not isinstance(ckpt.get("config"), dict):
        raise PretrainedError(f"{file}: holds no experiment config (not made by kdlab pretrained export)")
    cfg = dict(ckpt["config"])
    cfg["data"] = _rebase_data_paths(cfg.get("data") or {}, REPO_ROOT, to_relative=False)
    try:
        return config_from_dict(cfg)
    except ConfigError as err:
        raise PretrainedError(f"{file}: stored config is invalid ({err})") from None


def float_state(state: dict) -> dict:
    """``state`` with its floating tensors as float32 (a shipped model's float16 weights, as loaded)."""
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def _half_state(state: dict, source: Path) -> dict:
    """Floating tensors as float16 (others unchanged); values beyond the float16 range raise."""
    out = {}
    for k, v in state.items():
        if v.is_floating_point():
            if v.numel() and float(v.abs().max()) > FP16_MAX:
                raise PretrainedError(f"{source}: {k} holds values beyond the float16 range")
            v = v.detach().to("cpu", torch.float16)
        out[k] = v
    return out


def load_folder(folder: Path, device: str | torch.device = "cpu") -> tuple:
    """``(model, tokenizer, cmvn, exp_cfg)`` from a model folder; every file's sha256 checked against the card;
    float32 model in eval mode."""
    from kdlab.config import resolve_model_config
    from kdlab.data.features import GlobalCMVN
    from kdlab.data.tokenizer import load_tokenizer
    from kdlab.models import build_model

    for need in (MODEL_FILE, TOKENIZER_DIR, CMVN_FILE):
        if not (folder / need).exists():
            raise PretrainedError(f"{folder}: incomplete pretrained model (lacks {need})")
    check_files(folder, read_card(folder))
    file = folder / MODEL_FILE
    ckpt = load_checkpoint(file)
    cfg = _shipped_config(ckpt, file)
    try:
        tokenizer = load_tokenizer(folder / TOKENIZER_DIR)
        cmvn = GlobalCMVN.load(folder / CMVN_FILE)
    except (RuntimeError, OSError, ValueError, KeyError, TypeError) as err:
        raise PretrainedError(f"{folder}: unreadable tokenizer/ or cmvn.json ({str(err).splitlines()[0]})") from None
    if int(ckpt.get("vocab_size", tokenizer.vocab_size)) != tokenizer.vocab_size:
        raise PretrainedError(f"{file}: vocab size {ckpt['vocab_size']} differs from the tokenizer's "
                              f"{tokenizer.vocab_size}")
    model = build_model(resolve_model_config(cfg.model), tokenizer.vocab_size, ckpt.get("kind", cfg.model.kind))
    try:
        model.load_state_dict(float_state(ckpt["model"]))
    except RuntimeError as err:
        raise PretrainedError(f"{file}: weights do not fit the stored model config ({err})") from err
    return model.float().to(device).eval(), tokenizer, cmvn, cfg


def load(corpus: str, name: str, device: str | torch.device = "cpu", root: str | Path | None = None) -> tuple:
    """``(model, tokenizer, cmvn, exp_cfg)`` of ``<corpus>/<name>``: float32 model in eval mode."""
    return load_folder(path(f"{corpus}/{name}", root), device)


def load_spec(spec: str, device: str | torch.device = "cpu") -> tuple:
    """:func:`load` for a ``pretrained:<corpus>/<name>`` string."""
    return load(*parse_spec(spec), device=device)


# ----------------------------------------------------------------------------- export


def _dummy_ctc_posteriors(model: torch.nn.Module) -> torch.Tensor:
    """CTC posteriors (2, T', V) of ``model`` on a fixed random (CMVN-like) two-utterance batch."""
    g = torch.Generator().manual_seed(0)
    feats, lens = torch.randn(2, 240, 80, generator=g), torch.tensor([240, 163])
    with torch.inference_mode():
        return model.ctc_log_probs(model.encode(feats, lens)[0]).exp()


def _payload(model: torch.nn.Module, cfg: Any, vocab_size: int, source: Path) -> dict:
    """The ``model.pt`` dict: float16 weights, the config (data paths relative to the repository)."""
    from kdlab.config import to_dict

    config = to_dict(cfg)
    config["data"] = _rebase_data_paths(config["data"], REPO_ROOT, to_relative=True)
    return {"format": FORMAT, "model": _half_state(model.state_dict(), source), "config": config,
            "kind": cfg.model.kind, "vocab_size": int(vocab_size), "dtype": "float16"}


def _source_fields(source: Path, cfg: Any) -> dict:
    """Card defaults from the run: source checkpoint, its epoch (and averaged epochs), seed, KD, date."""
    import kdlab

    meta = load_checkpoint(source)
    fields = {"source": f"{source.parent.name}/{source.name}", "epoch": meta.get("epoch"),
              "averaged": meta.get("averaged"), "seed": cfg.train.seed,
              "distilled": bool(cfg.kd is not None and cfg.kd.enabled),
              "date": datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
              "kdlab_version": kdlab.__version__, "torch_version": torch.__version__}
    return {k: v for k, v in fields.items() if v is not None}


def _card(corpus: str, name: str, model: torch.nn.Module, tokenizer: Any, cfg: Any, source: Path,
          fields: dict, hashes: dict[str, str]) -> dict:
    """Card: the facts of the export (first, and no field may override them), run defaults, ``fields``."""
    from kdlab.config import resolve_model_config, to_dict
    from kdlab.models import count_parameters

    check_result_keys(fields.get("results") or {})
    facts = {"format": FORMAT, "corpus": corpus, "name": name, "kind": cfg.model.kind,
             "vocab_size": tokenizer.vocab_size, "tokenizer": tokenizer.kind, "unit": tokenizer.unit,
             "model": {"preset": cfg.model.preset, "config": to_dict(resolve_model_config(cfg.model))},
             "params": count_parameters(model), "dtype": "float16", "sha256": hashes[MODEL_FILE],
             FILES_KEY: hashes}
    return {**facts, **_source_fields(source, cfg), **fields, **facts}


def check_result_keys(results: Any) -> None:
    """Raise unless ``results`` is a dict whose ``check/<set>`` keys name a set (letters, digits, ``.``, ``_``,
    ``-``; no ``/`` or ``..``): a card figure is re-checked only on a check set inside the models folder."""
    if not isinstance(results, dict):
        raise PretrainedError(f"card results: expected an object {{set: {{method: row}}}}, got {results!r:.60}")
    for key in results:
        if str(key).startswith(CHECK_PREFIX):
            check_set_name(str(key))



def check_set_name(key: str) -> str:
    """The set name of a card result key ``check/<set>``; a name that could leave the check folder raises."""
    name = key[len(CHECK_PREFIX):]
    if not NAME_RE.match(name):
        raise PretrainedError(f"card result {key!r}: a check set is named check/<set> with letters, digits, "
                              f"'.', '_' and '-' only (no '/' or '..')")
    return name


def _write_folder(folder: Path, ckpt_path: Path, corpus: str, name: str, fields: dict) -> torch.nn.Module:
    """Write model.pt, tokenizer/, cmvn.json and card.json into ``folder``; returns the fp32 original."""
    model, tokenizer, _, cfg = load_model_from_checkpoint(ckpt_path)
    run_dir = ckpt_path.parent
    save_atomic(_payload(model, cfg, tokenizer.vocab_size, ckpt_path), folder / MODEL_FILE)
    shutil.copytree(run_dir / TOKENIZER_DIR, folder / TOKENIZER_DIR)
    if (folder.parent / TOKENIZER_DIR).is_dir():
        share_tokenizer(folder)  # the corpus's models keep one copy of a tokenizer they share
    shutil.copy2(run_dir / CMVN_FILE, folder / CMVN_FILE)
    data = _card(corpus, name, model, tokenizer, cfg, ckpt_path, fields, file_hashes(folder))
    write_card(folder, data)
    return model


def _verify(original: torch.nn.Module, folder: Path, ckpt_path: Path) -> None:
    """Raise unless the exported model reloads and its CTC posteriors stay within ``FP16_TOLERANCE`` of the
    original's (float16 weights move them by ~0.002; a greedy argmax on noise input may still flip a tie)."""
    reloaded = load_folder(folder)[0]
    change = float((_dummy_ctc_posteriors(reloaded) - _dummy_ctc_posteriors(original)).abs().max())
    if not change <= FP16_TOLERANCE:
        raise PretrainedError(f"{ckpt_path}: the float16 export changes the CTC posteriors on a dummy input by "
                              f"{change:.4f} (> {FP16_TOLERANCE}); not exported")


def place_folder(tmp: Path, dest: Path) -> None:
    """Move the finished folder ``tmp`` onto ``dest``, replacing an old one only after the move."""
    os.chmod(tmp, 0o755)  # mkdtemp / mkstemp create private files; shipped ones are world-readable
    os.chmod(tmp / MODEL_FILE, 0o644)
    if not dest.exists():
        os.replace(tmp, dest)
        return
    old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
    os.replace(dest, old)
    os.replace(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)


def export(ckpt_path: str | Path, corpus: str, name: str, card_fields: dict | None = None,
           root: str | Path | None = None, overwrite: bool = False) -> Path:
    """Convert a run checkpoint (beside ``config.yaml``, ``tokenizer/``, ``cmvn.json``) into
    ``<root>/<corpus>/<name>/``; verified to reload with the same CTC posteriors (± FP16_TOLERANCE).
    Returns the folder."""
    corpus, name = parse_spec(f"{corpus}/{name}")
    ckpt_path = Path(ckpt_path)
    dest = pretrained_root(root) / corpus / name
    if dest.exists() and not overwrite:
        raise PretrainedError(f"{dest}: already exists (overwrite it with --force / overwrite=True)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{name}.tmp-"))
    try:
        original = _write_folder(tmp, ckpt_path, corpus, name, dict(card_fields or {}))
        _verify(original, tmp, ckpt_path)
        place_folder(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
