"""Build the embedded corpora mini-en (LibriSpeech-like) and mini-zh (AISHELL-like).

mini-en is spoken by espeak-ng, flite and festival voices (``engines.py``; ``engines=`` picks them), each
training utterance by one engine drawn uniformly, then one of its training voices; mini-zh by espeak-ng
only (no other Mandarin synthesizer is packaged). The ``-unseen`` sets are read by voices of every engine
that never speak in training.

Every utterance is planned in this process from its own seed (``"<lang>:<seed>:<split>:<index>"``):
sentence, voice, rate, pitch, reverberation, noise and level. Workers only render plans, so the same
seed gives the same manifests and byte-identical audio whatever the number of workers.

Workers are started with the "spawn" method: a script that calls :func:`synthesize_corpus` needs the
usual ``if __name__ == "__main__":`` guard (the ``kdlab`` command and notebooks need nothing).
"""

from __future__ import annotations

import itertools
import json
import multiprocessing as mp
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from kdlab.data.manifest import write_manifest
from kdlab.data.synth import engines as tts
from kdlab.data.synth import grammar_en, grammar_zh, voices
from kdlab.data.synth.grammar_en import Sentence
from kdlab.data.synth.render import SAMPLE_RATE, Plan, init_worker, render
from kdlab.errors import UserError

DEFAULT_TRAIN_HOURS = 3.0
DEFAULT_DEV = 150
DEFAULT_TEST = 150
VERSION = 6  # bump when the same parameters would give different audio or text


@dataclass(frozen=True)
class Acoustics:
    """The recording condition of a split: how often and how strongly utterances are degraded."""

    p_noise: float = 0.0  # share of utterances with additive noise
    noise_weights: tuple[tuple[str, float], ...] = (("white", 0.3), ("pink", 0.4), ("babble", 0.3))
    snr_db: tuple[float, float] = (15.0, 30.0)
    p_reverb: float = 0.0  # share of utterances with reverberation
    rt60_s: tuple[float, float] = (0.15, 0.4)
    drr_db: tuple[float, float] = (3.0, 12.0)


CLEAN = Acoustics()
# LibriSpeech-like training speech: mostly clean read speech, a light share of noise and room.
LIGHT = Acoustics(p_noise=0.3, snr_db=(15.0, 30.0), p_reverb=0.1, rt60_s=(0.15, 0.4))
# The "other" evaluation sets: unseen voices in noise (5-20 dB SNR) and reverberant rooms.
OTHER = Acoustics(p_noise=0.9, snr_db=(5.0, 20.0), p_reverb=0.4, rt60_s=(0.2, 0.7), drr_db=(0.0, 10.0))
# Splits in planning order (later splits avoid earlier sentences; zh dev/test use only train characters).
# The clean dev/test sets keep the plain names dev/test, so every tool's default set is the clean one.
SPLITS: dict[str, dict[str, tuple[str, Acoustics]]] = {  # split -> (voice group, condition)
    "en": {"train": ("train", LIGHT), "dev": ("dev", CLEAN), "test": ("test", CLEAN),
           "dev-other": ("dev", OTHER), "test-other": ("test", OTHER),
           "dev-unseen": ("dev-unseen", CLEAN), "test-unseen": ("test-unseen", CLEAN)},
    "zh": {"train": ("train", CLEAN), "dev": ("dev", CLEAN), "test": ("test", CLEAN)},
}
LEVEL_DBFS = (-32.0, -18.0)
LEAD_TRAIL_S = (0.05, 0.25)  # silence before and after the speech
FLOOR_DBFS = (-75.0, -60.0)  # noise floor under every utterance (digital silence would give log(0) fbank)
MAX_TRIES = 200_000  # sentence draws per utterance before giving up
UNKNOWN_PHONEMES = {"@:11"}  # what espeak cmn says for a character it does not know


def pronounceable(chars: set[str], voice: str = "cmn") -> tuple[set[str], list[str]]:
    """Split ``chars`` into those espeak reads as one real syllable and those it would spell or skip."""
    from kdlab.data.synth.espeak import Espeak

    engine, ok, dropped = Espeak.get(), set(), []
    for c in sorted(chars):
        syllables = [s.strip() for s in engine.phonemes(c, voice).split("_|") if s.strip()]
        if len(syllables) == 1 and syllables[0] not in UNKNOWN_PHONEMES:
            ok.add(c)
        else:
            dropped.append(c)
    return ok, dropped


def grammar_for(lang: str) -> Callable[[random.Random], Sentence]:
    """The sentence generator of ``lang`` ("en" or "zh"); zh keeps to characters espeak pronounces."""
    if lang == "en":
        return grammar_en.generate
    if lang == "zh":
        allowed, _ = pronounceable(grammar_zh.charset())
        return lambda rng: grammar_zh.generate(rng, allowed)
    raise ValueError(f"unknown language {lang!r} (expected 'en' or 'zh')")


def pick_voice(rng: random.Random, lang: str, group: str, engines: tuple[str, ...]) -> str:
    """An engine drawn uniformly among those with voices in ``group``, then one of its voices.

    A group with one engine draws only the voice, so espeak-only groups keep their earlier plans.
    """
    pool = voices.by_engine(voices.voices_for(lang, group, engines))
    engine = rng.choice(list(pool)) if len(pool) > 1 else next(iter(pool))
    return rng.choice(pool[engine])


def plan_utterance(uid: str, path: Path, sentence: Sentence, rng: random.Random, lang: str,
                   split: str, engines: tuple[str, ...] = ("espeak",)) -> Plan:
    """Draw voice, prosody and acoustic condition for one utterance of ``split``.

    Training utterances of the other engines also draw a vocal-tract warp (``voices.WARP``).
    """
    group, cond = SPLITS[lang][split]
    noise = ""
    if rng.random() < cond.p_noise:
        kinds, weights = zip(*cond.noise_weights, strict=True)
        noise = rng.choices(kinds, weights=weights)[0]
    reverb = rng.random() < cond.p_reverb
    plan = Plan(
        uid=uid, path=str(path), spoken=sentence.spoken, lang=lang,
        voice=pick_voice(rng, lang, group, engines),
        rate=rng.randint(*voices.RATE_WPM), pitch=rng.randint(*voices.PITCH),
        pitch_range=rng.randint(*voices.PITCH_RANGE),
        lead_s=round(rng.uniform(*LEAD_TRAIL_S), 3), trail_s=round(rng.uniform(*LEAD_TRAIL_S), 3),
        rt60=round(rng.uniform(*cond.rt60_s), 3) if reverb else 0.0, drr_db=round(rng.uniform(*cond.drr_db), 2),
        noise=noise, snr_db=round(rng.uniform(*cond.snr_db), 2), level_dbfs=round(rng.uniform(*LEVEL_DBFS), 2),
        floor_dbfs=round(rng.uniform(*FLOOR_DBFS), 2), noise_seed=rng.getrandbits(32),
    )
    if split == "train" and tts.engine_of(plan.voice) != "espeak":
        plan = replace(plan, warp=round(rng.uniform(*voices.WARP), 3))
    return plan


def plan_split(out_dir: Path, lang: str, seed: int, split: str, generate: Callable, seen: set[str],
               texts: dict[str, str], limit: int | None,
               charset: set[str] | None = None, engines: tuple[str, ...] = ("espeak",)) -> Iterator[Plan]:
    """Plans for ``split`` in order (endless when ``limit`` is None); no sentence repeats across splits.

    With ``charset``, only sentences written entirely in those characters are taken.
    """
    index = 0
    while limit is None or index < limit:
        uid = f"mini-{lang}-{split}-{index:06d}"
        rng = random.Random(f"{lang}:{seed}:{split}:{index}")
        sentence, tries = generate(rng), 1
        while sentence.text in seen or (charset is not None and not set(sentence.text) <= charset):
            if tries == MAX_TRIES:
                raise ValueError(f"{uid}: no new sentence in {MAX_TRIES} tries (training set too small to "
                                 "cover the characters of dev/test sentences?)")
            sentence, tries = generate(rng), tries + 1
        seen.add(sentence.text)
        texts[uid] = sentence.text
        yield plan_utterance(uid, out_dir / split / f"{uid}.flac", sentence, rng, lang, split, engines)
        index += 1


def _render_stream(plans: Iterator[Plan], pool, max_seconds: float | None,  # noqa: ANN001 - a Pool
                   batch: int = 32) -> Iterator[tuple[Plan, int]]:
    """Render plans in order, a batch at a time; stop once ``max_seconds`` of audio is reached."""
    total = 0.0
    while True:
        chunk = list(itertools.islice(plans, batch))
        if not chunk:
            return
        results = pool.map(render, chunk, chunksize=2)
        for plan, (_, n) in zip(chunk, results, strict=True):
            yield plan, n
            total += n / SAMPLE_RATE
            if max_seconds is not None and total >= max_seconds:
                return


def _records(split_dir_parent: Path, rendered: list[tuple[Plan, int]], texts: dict[str, str]) -> list[dict]:
    return [{"id": p.uid, "path": os.path.relpath(p.path, split_dir_parent),
             "duration": round(n / SAMPLE_RATE, 4), "text": texts[p.uid], "speaker": p.voice,
             "voice": p.voice, "condition": p.condition()} for p, n in rendered]


def _complete(out_dir: Path, params: dict) -> dict | None:
    """The existing info if ``out_dir`` holds a finished corpus built with ``params``."""
    info_path = out_dir / "info.json"
    if not info_path.is_file():
        return None
    info = json.loads(info_path.read_text(encoding="utf-8"))
    if info.get("params") != params:
        return None
    for split in SPLITS[params["lang"]]:
        manifest = out_dir / f"{split}.jsonl"
        if not manifest.is_file():
            return None
        for line in manifest.read_text(encoding="utf-8").splitlines():
            if not (out_dir / json.loads(line)["path"]).is_file():
                return None
    return info


def _split_info(recs: list[dict], split: str, lang: str, engines: tuple[str, ...]) -> dict:
    secs = sum(r["duration"] for r in recs)
    group, cond = SPLITS[lang][split]
    per_engine = {e: round(sum(r["duration"] for r in recs if tts.engine_of(r["voice"]) == e), 1)
                  for e in engines}
    return {"utterances": len(recs), "hours": round(secs / 3600, 4), "seconds": round(secs, 1),
            "seconds_by_engine": per_engine, "voices": sorted({r["voice"] for r in recs}),
            "voices_planned": list(voices.voices_for(lang, group, engines)), "acoustics": asdict(cond)}


def _units(texts: list[str], lang: str) -> set[str]:
    return {w for t in texts for w in (t.split() if lang == "en" else t)}


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (workers and their forked syntheses)."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _build_info(lang: str, params: dict, recs: dict[str, list[dict]], seconds: float, workers: int,
                cpu_s: float) -> dict:
    audio_s = sum(r["duration"] for rs in recs.values() for r in rs)
    engines = tuple(params.get("engines", ("espeak",)))
    info = {
        "name": f"mini-{lang}", "language": lang, "seed": params["seed"], "params": params,
        "sample_rate": SAMPLE_RATE, "audio_format": "FLAC PCM_16 mono",
        "unit": "word" if lang == "en" else "char",
        "engines": {e: tts.version(e) for e in engines},
        "splits": {s: _split_info(recs[s], s, lang, engines) for s in SPLITS[lang]},
        "vocabulary_size": {s: len(_units([r["text"] for r in recs[s]], lang)) for s in SPLITS[lang]},
        "voices_note": "dev and test voices are held out from training and disjoint from each other; the "
        "-unseen sets add held-out speakers of every engine (SLT of flite and festival: test-unseen only)",
        "text_note": "no sentence occurs in two splits"
        + ("; dev/test use only characters that occur in train" if lang == "zh" else ""),
        "sets_note": "dev/test are clean (like LibriSpeech dev-clean/test-clean)"
        + ("; dev-other/test-other hold the same unseen voices in noise and reverberation; dev-unseen/"
           "test-unseen are clean, read by held-out voices of every engine" if lang == "en" else ""),
        "augmentation": {"level_dbfs": LEVEL_DBFS, "floor_dbfs": FLOOR_DBFS, "lead_trail_s": LEAD_TRAIL_S,
                         "rate_wpm": voices.RATE_WPM, "pitch": voices.PITCH,
                         "pitch_range": voices.PITCH_RANGE, "warp_other_engines_train": voices.WARP},
        "build": {"seconds": round(seconds, 2), "speed_x_realtime": round(audio_s / max(seconds, 1e-9), 1),
                  "cpu_seconds": round(cpu_s, 2),
                  "audio_seconds_per_cpu_second": round(audio_s / max(cpu_s, 1e-9), 1),
                  "workers": workers},
    }
    all_units = _units([r["text"] for rs in recs.values() for r in rs], lang)
    info["vocabulary_size"]["all"] = len(all_units)
    if lang == "zh":
        info["dropped_characters"] = pronounceable(grammar_zh.charset())[1]
    return json.loads(json.dumps(info))  # plain JSON types, as a later read of info.json gives


def default_engines(lang: str) -> tuple[str, ...]:
    """Every engine for English; espeak-ng alone speaks Mandarin."""
    return tts.ENGINES if lang == "en" else ("espeak",)


def check_engines(lang: str, engines: tuple[str, ...]) -> tuple[str, ...]:
    """``engines`` in canonical order, after checking that they speak ``lang`` and are installed."""
    engines = tts.parse_engines(",".join(engines))
    if lang != "en" and engines != ("espeak",):
        raise UserError(f"mini-{lang} is spoken by espeak-ng only (no other synthesizer for it is packaged); "
                        f"drop --engines or use --engines espeak")
    if "espeak" not in engines:
        raise UserError("--engines must include espeak: the dev/test/dev-other/test-other voices are espeak-ng's")
    tts.require(engines)
    return engines


def synthesize_corpus(out_dir: Path, lang: str, seed: int = 0, train_hours: float = DEFAULT_TRAIN_HOURS,
                      n_dev: int = DEFAULT_DEV, n_test: int = DEFAULT_TEST, n_train: int | None = None,
                      workers: int = 2, engines: tuple[str, ...] | None = None) -> dict:
    """Synthesize train/dev/test of mini-``lang`` into ``out_dir``; returns the info dict (also info.json).

    ``n_train`` (utterances) overrides ``train_hours``. ``engines`` (default: :func:`default_engines`) speak
    the corpus; one that is not installed is a UserError naming its Debian packages. A folder that already
    holds a complete corpus with the same parameters is left as it is.
    """
    out_dir = Path(out_dir)
    if lang not in voices.VOICES:
        raise ValueError(f"unknown language {lang!r} (expected 'en' or 'zh')")
    engines = check_engines(lang, default_engines(lang) if engines is None else tuple(engines))
    sizes = (n_dev, n_test, 1 if n_train is None else n_train)
    if min(sizes) < 0 or (n_train is None and train_hours <= 0):
        raise ValueError(f"corpus sizes must be positive: train_hours={train_hours}, n_train={n_train}, "
                         f"n_dev={n_dev}, n_test={n_test}")
    params = {"lang": lang, "seed": seed, "train_hours": None if n_train is not None else train_hours,
              "n_train": n_train, "n_dev": n_dev, "n_test": n_test, "version": VERSION, "engines": list(engines)}
    info = _complete(out_dir, params)
    if info is not None:
        print(f"mini-{lang}: complete corpus already in {out_dir}, not rebuilt")
        return info
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "info.json").unlink(missing_ok=True)
    generate, seen, texts = grammar_for(lang), set(), {}
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    limits = {split: n_train if split == "train" else n_dev if split.startswith("dev") else n_test
              for split in SPLITS[lang]}
    recs: dict[str, list[dict]] = {}
    pool = mp.get_context("spawn").Pool(max(1, workers), initializer=init_worker, initargs=(lang,))
    try:
        for split in SPLITS[lang]:
            # Mandarin dev/test use only characters heard in training (a char tokenizer has no <unk> there)
            heard = lang == "zh" and split != "train"
            charset = {c for r in recs["train"] for c in r["text"]} if heard else None
            plans = plan_split(out_dir, lang, seed, split, generate, seen, texts, limits[split], charset, engines)
            max_s = train_hours * 3600 if split == "train" and n_train is None else None
            recs[split] = _records(out_dir, list(_render_stream(plans, pool, max_s)), texts)
    finally:
        pool.terminate()
        pool.join()
    for split in SPLITS[lang]:
        _remove_unlisted(out_dir / split, {Path(r["path"]).name for r in recs[split]})
        write_manifest(out_dir / f"{split}.jsonl", recs[split])
    info = _build_info(lang, params, recs, time.perf_counter() - start, workers, _cpu_seconds() - cpu_start)
    tmp = out_dir / "info.json.tmp"
    tmp.write_text(json.dumps(info, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp, out_dir / "info.json")
    _print_summary(info)
    return info


def _remove_unlisted(split_dir: Path, keep: set[str]) -> None:
    """Delete audio rendered past the stopping point (or left from an older build)."""
    if split_dir.is_dir():
        for f in split_dir.iterdir():
            if f.name not in keep:
                f.unlink()


def _print_summary(info: dict) -> None:
    b = info["build"]
    print(f"{info['name']}: synthesized in {b['seconds']:.1f} s, {b['speed_x_realtime']:.0f}x real time "
          f"({b['workers']} workers; {b['audio_seconds_per_cpu_second']:.0f}x real time per CPU second)")
    for split, s in info["splits"].items():
        engines = {e: t for e, t in s.get("seconds_by_engine", {}).items() if t > 0}
        shares = ", ".join(f"{e} {t / max(s['seconds'], 1e-9):.0%}" for e, t in engines.items())
        print(f"  {split:<11} {s['utterances']:>6} utts {s['hours']:>7.3f} h  {len(s['voices'])} voices"
              + (f"  ({shares})" if len(engines) > 1 else ""))
    print(f"  engines: {', '.join(f'{e} {v}' for e, v in info.get('engines', {}).items())}")
    print(f"  vocabulary ({info['unit']}s): {info['vocabulary_size']}")
