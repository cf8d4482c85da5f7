"""Check sets of the shipped models: a few test utterances shipped beside the models, and the re-check of
the figures a model card records on them.

A check set is ``<root>/<corpus>/check/<set>.jsonl`` with its audio in ``<root>/<corpus>/check/<set>/``
(the first utterances of a corpus split, copied unchanged). A card result stored under the set name
``check/<set>`` (``kdlab pretrained export --results check/test-clean=summary.json``) is a figure anyone can
reproduce without the corpus: :func:`verify` decodes the check set again with the shipped model and
compares the error counts with the card's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kdlab.data.manifest import read_manifest, write_manifest
from kdlab.pretrained.store import (
    CHECK_PREFIX,
    ENV_ROOT,
    NAME_RE,
    PretrainedError,
    card,
    check_result_keys,
    check_set_name,
    parse_spec,
    pretrained_root,
)

CHECK_DIR = "check"


@dataclass(frozen=True)
class CheckResult:
    """One card figure re-measured: ``set`` (``check/<name>``), decoding ``method``, error counts."""

    set: str
    method: str
    card_rate: float
    card_errors: int
    errors: int
    rate: float
    n_ref: int

    def agrees(self, tolerance: float) -> bool:
        """Error counts within ``tolerance`` × reference length (float rounding may flip a beam tie)."""
        return abs(self.errors - self.card_errors) <= tolerance * self.n_ref


def check_manifest(corpus: str, set_name: str, root: str | Path | None = None) -> Path:
    """``<root>/<corpus>/check/<set_name>.jsonl``."""
    return pretrained_root(root) / corpus / CHECK_DIR / f"{set_name}.jsonl"


def first_per_engine(records: list[dict], n: int) -> list[dict]:
    """The first ``n`` utterances of each synthesizer (by ``voice``), in manifest order."""
    from kdlab.data.synth.engines import engine_of

    taken: dict[str, int] = {}
    keep = []
    for rec in records:
        engine = engine_of(str(rec.get("voice", "")))
        if taken.get(engine, 0) < n:
            taken[engine] = taken.get(engine, 0) + 1
            keep.append(rec)
    return keep


def write_check_set(manifest: str | Path, n: int, corpus: str, set_name: str,
                    root: str | Path | None = None, per_engine: bool = False) -> Path:
    """Copy the first ``n`` utterances of ``manifest`` (``per_engine``: of each synthesizer) with their audio
    into the check set ``<corpus>/check/<set_name>``; returns its manifest. An existing check set of that
    name is replaced."""
    if n < 1:
        raise ValueError(f"a check set needs at least one utterance, got n={n}")
    if not NAME_RE.match(corpus) or not NAME_RE.match(set_name):
        raise ValueError(f"{corpus}/{set_name}: names may hold letters, digits, '.', '_' and '-' only")
    records = read_manifest(manifest)
    records = first_per_engine(records, n) if per_engine else records[:n]
    out = check_manifest(corpus, set_name, root)
    out.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{set_name}.tmp-"))  # audio complete before use
    try:
        shipped = [_copy_audio(rec, staged, set_name) for rec in records]
        os.chmod(staged, 0o755)
        audio_dir = out.with_suffix("")
        shutil.rmtree(audio_dir, ignore_errors=True)
        os.replace(staged, audio_dir)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    write_manifest(out, shipped)
    return out


def _copy_audio(rec: dict, folder: Path, set_name: str) -> dict:
    """Copy the audio of manifest record ``rec`` into ``folder`` (FLAC re-encoded at the strongest compression:
    the same samples in fewer bytes); the record with its shipped path."""
    import soundfile as sf

    src = Path(rec["path"])
    info = sf.info(str(src))
    if info.format == "FLAC" and info.subtype == "PCM_16":
        samples, rate = sf.read(str(src), dtype="int16")
        sf.write(str(folder / src.name), samples, rate, subtype="PCM_16", format="FLAC", compression_level=1.0)
    else:
        shutil.copy2(src, folder / src.name)
    return {**rec, "path": f"{set_name}/{src.name}"}


@contextmanager
def _models_root(root: str | Path | None) -> Iterator[None]:
    """``pretrained:`` specs resolve under ``root`` (when given) inside the block."""
    old = os.environ.get(ENV_ROOT)
    if root is not None:
        os.environ[ENV_ROOT] = str(root)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(ENV_ROOT, None)
        else:
            os.environ[ENV_ROOT] = old


def decode_row(spec: str, manifest: Path, method: str, root: str | Path | None) -> dict:
    """``kdlab decode`` of ``manifest`` with ``method`` (one thread): its summary row (errors, rate).

    ``spec`` is a checkpoint path or ``pretrained:<corpus>/<name>`` (resolved under ``root`` when given)."""
    from kdlab.evaluate.decode_cli import add_arguments, run_decode

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    with tempfile.TemporaryDirectory() as out, _models_root(root):
        args = parser.parse_args(["--ckpt", spec, "--methods", method, "--set", str(manifest), "--out", out,
                                  "--threads", "1"])
        return run_decode(args)[method]


def verify(spec: str, root: str | Path | None = None) -> list[CheckResult]:
    """Re-decode every ``check/<set>`` figure on the card of ``<corpus>/<name>``; empty if it has none."""
    corpus, name = parse_spec(spec)
    data = card(corpus, name, root)
    check_result_keys(data.get("results") or {})  # every key checked before anything is decoded
    results = []
    for set_key, methods in sorted((data.get("results") or {}).items()):
        if not set_key.startswith(CHECK_PREFIX):
            continue
        manifest = check_manifest(corpus, check_set_name(set_key), root)  # confined to <corpus>/check/
        if not manifest.is_file():
            raise PretrainedError(f"{corpus}/{name}: card result {set_key!r} has no check set {manifest}")
        for method, row in sorted(methods.items()):
            got = decode_row(f"pretrained:{corpus}/{name}", manifest, method, root)
            errors = got["sub"] + got["ins"] + got["del"]
            card_errors = row["sub"] + row["ins"] + row["del"]
            results.append(CheckResult(set_key, method, row["rate"], card_errors, errors, got["rate"],
                                       got["n_ref"]))
    return results
