"""Run folder preparation: ``config.yaml``, ``tokenizer/``, ``cmvn.json`` and ``artefacts.json``.

Teacher and student must share one tokenizer and one CMVN. A run either trains its own (tokenizer on the
training text, CMVN on the training features) or copies them from another run (``data.tokenizer_from``,
``data.cmvn_from``). When KD is enabled and neither is given, they are taken from the teacher's run folder.
``artefacts.json`` records what each was made from; a later run in the same folder whose config asks for
something else is refused (tokenizer and CMVN present from a failed run are never reused silently).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from kdlab.config import ConfigError, ExperimentConfig, save_config

TOKENIZER_DIR = "tokenizer"
CMVN_FILE = "cmvn.json"
CONFIG_FILE = "config.yaml"
ARTEFACTS_FILE = "artefacts.json"


def _teacher_run(cfg: ExperimentConfig) -> str | None:
    kd = cfg.kd
    if kd is None or not kd.enabled or not kd.teacher:
        return None
    from kdlab.checkpoint import resolve_checkpoint_path

    return str(resolve_checkpoint_path(kd.teacher).parent)  # a run folder, or a shipped model's folder


def tokenizer_source(cfg: ExperimentConfig) -> Path | None:
    """Folder to copy the tokenizer from (None: train one)."""
    src = cfg.data.tokenizer_from or _teacher_run(cfg)
    if src is None:
        return None
    path = Path(src)
    if (path / TOKENIZER_DIR).is_dir():
        path = path / TOKENIZER_DIR
    if not path.is_dir():
        raise ConfigError(f"data.tokenizer_from: {src} is neither a run folder nor a tokenizer folder")
    return path


def cmvn_source(cfg: ExperimentConfig) -> Path | None:
    """``cmvn.json`` to copy (None: fit one)."""
    src = cfg.data.cmvn_from or _teacher_run(cfg)
    if src is None:
        return None
    path = Path(src)
    if path.is_dir():
        path = path / CMVN_FILE
    if not path.is_file():
        raise ConfigError(f"data.cmvn_from: {src} is neither a run folder with {CMVN_FILE} nor a CMVN file")
    return path


def corpus_lang(cfg: ExperimentConfig) -> str:
    """``data.lang``, else the corpus's ``info.json`` language, else by tokenizer kind (char → zh)."""
    if cfg.data.lang:
        return cfg.data.lang
    info = Path(cfg.data.manifest("train")).parent / "info.json"
    if info.is_file():
        data = json.loads(info.read_text())
        if data.get("language") or data.get("lang"):
            return data.get("language") or data.get("lang")
    return "zh" if cfg.data.tokenizer == "char" else "en"


def train_texts(manifest: str | Path) -> list[str]:
    from kdlab.data.manifest import read_manifest

    return [utt["text"] for utt in read_manifest(manifest)]


def make_tokenizer(cfg: ExperimentConfig, out_dir: Path) -> None:
    """Copy or train the tokenizer into ``out_dir``."""
    from kdlab.data.tokenizer import BPETokenizer, CharTokenizer

    src = tokenizer_source(cfg)
    if src is not None:
        shutil.copytree(src, out_dir, dirs_exist_ok=True)
        return
    texts = train_texts(cfg.data.manifest("train"))
    lang = corpus_lang(cfg)
    if cfg.data.tokenizer == "char":
        tok = CharTokenizer.train(texts, lang=lang)
    else:
        tok = BPETokenizer.train(texts, vocab_size=cfg.data.vocab_size, lang=lang, seed=cfg.train.seed)
    tok.save(out_dir)


def make_cmvn(cfg: ExperimentConfig, run_dir: Path) -> None:
    """Copy or fit the global CMVN (fit on the usable training utterances' fbank features, no augmentation;
    audio that fails to decode is left out and counted in the run's data report, unless ``data.strict``)."""
    from kdlab.data.features import GlobalCMVN

    src = cmvn_source(cfg)
    if src is not None:
        GlobalCMVN.load(src)  # a file that is not a usable CMVN is refused before it enters the run
        shutil.copyfile(src, run_dir / CMVN_FILE)
        return
    from kdlab.data.dataset import fit_cmvn
    from kdlab.data.tokenizer import load_tokenizer
    from kdlab.training.datacheck import check_split, save_report

    records, report = check_split(cfg, "train", load_tokenizer(run_dir / TOKENIZER_DIR))
    cmvn = fit_cmvn(records, cache_dir=cfg.data.feature_cache, report=None if cfg.data.strict else report)
    save_report(run_dir, {"train": report})
    cmvn.save(run_dir / CMVN_FILE)


def tokenizer_recipe(cfg: ExperimentConfig) -> dict:
    """What the run's tokenizer is made from: a copied folder, or the training settings and text."""
    src = tokenizer_source(cfg)
    if src is not None:
        return {"copied_from": str(src.resolve())}
    recipe = {"kind": cfg.data.tokenizer, "lang": corpus_lang(cfg),
              "trained_on": str(Path(cfg.data.manifest("train")).resolve())}
    if cfg.data.tokenizer != "char":
        recipe.update(vocab_size=cfg.data.vocab_size, seed=cfg.train.seed)
    return recipe


def cmvn_recipe(cfg: ExperimentConfig) -> dict:
    """What the run's CMVN is made from: a copied file, or the training manifest it is fitted on."""
    src = cmvn_source(cfg)
    if src is not None:
        return {"copied_from": str(src.resolve())}
    return {"fitted_on": str(Path(cfg.data.manifest("train")).resolve())}


def _recorded(run_dir: Path) -> dict:
    path = run_dir / ARTEFACTS_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _record(run_dir: Path, name: str, recipe: dict) -> None:
    recorded = {**_recorded(run_dir), name: recipe}
    (run_dir / ARTEFACTS_FILE).write_text(json.dumps(recorded, indent=1) + "\n", encoding="utf-8")


def check_artefacts(run_dir: Path, wanted: dict[str, dict]) -> None:
    """Refuse a run folder whose present tokenizer / CMVN were made from something other than ``wanted``."""
    recorded = _recorded(run_dir)
    for name, recipe in wanted.items():
        old = recorded.get(name)
        if old is not None and old != recipe and (run_dir / name).exists():
            diff = ", ".join(f"{k}: {old.get(k)} → {recipe.get(k)}" for k in sorted(set(old) | set(recipe))
                             if old.get(k) != recipe.get(k))
            raise ConfigError(f"{run_dir / name}: made from something else than this config asks for ({diff}); "
                              f"use another --out, or delete {name} to make it again")


def prepare_run(cfg: ExperimentConfig, run_dir: str | Path) -> Path:
    """Create the run folder with ``config.yaml``, ``tokenizer/`` and ``cmvn.json`` (kept if present and
    made from what ``cfg`` asks for, else :class:`ConfigError`). :func:`kdlab.training.fit.fit` calls it while
    holding the folder's lock, so no other training rewrites these files meanwhile."""
    run_dir = Path(run_dir)
    wanted = {TOKENIZER_DIR: tokenizer_recipe(cfg), CMVN_FILE: cmvn_recipe(cfg)}
    check_artefacts(run_dir, wanted)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / CONFIG_FILE)
    if not (run_dir / TOKENIZER_DIR / "tokenizer.json").is_file():
        make_tokenizer(cfg, run_dir / TOKENIZER_DIR)
        _record(run_dir, TOKENIZER_DIR, wanted[TOKENIZER_DIR])
    if not (run_dir / CMVN_FILE).is_file():
        make_cmvn(cfg, run_dir)
        _record(run_dir, CMVN_FILE, wanted[CMVN_FILE])
    return run_dir
