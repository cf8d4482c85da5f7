"""``kdlab decode``: decode a set with one or more methods; icefall-style result files, CER/WER and RTF.

Example::

    kdlab decode --ckpt runs/student/avg-5.pt --methods maskctc_greedy,maskctc_beam10 --set test --out exp/d

writes ``recogs-<method>.txt``, ``errs-<method>.txt``, ``wer-summary-<method>.txt`` per method and
``summary.json`` (rate, S/I/D, I+D, RTF per method) under ``--out``, all at once (``summary.json`` last) while
holding the folder's lock; every utterance of the set is checked before the first is decoded. Streaming models
decode with the chunk they were trained with, or ``--chunk-size`` / ``--left-chunks`` (the summary adds the
chunk and its algorithmic latency).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

INPUT_ERRORS = (ValueError,)  # a bad --methods value or a model that cannot run a method (exit 2)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="checkpoint inside a run folder (epoch-N.pt, avg-N.pt)")
    parser.add_argument("--methods", default="ctc_greedy",
                        help="comma-separated: ctc_greedy, ctc_prefix_beam, attention_beam, maskctc_greedy, "
                             "maskctc_beam, rnnt_greedy, rnnt_beam (transducers); beam methods may end in a beam "
                             "size, e.g. maskctc_beam5")
    parser.add_argument("--set", default="test",
                        help="a split of the run's corpus (test = test-clean, dev, test-other, ...) | PATH.jsonl")
    parser.add_argument("--out", required=True, help="output folder for the result files")
    parser.add_argument("--beam", type=int, default=10, help="default beam size (paper: 10)")
    parser.add_argument("--ctc-weight", type=float, default=0.3, help="joint CTC/attention λ (paper: 0.3)")
    parser.add_argument("--end-rule", choices=("beam", "exact"), default="beam",
                        help="AR beam: beam = <eos> competes for the beam slots (ESPnet, the paper's toolkit); "
                             "exact = every <eos> candidate ends (never a lower-scoring 1-best)")
    parser.add_argument("--p-thr", type=float, default=0.99, help="Mask-CTC confidence threshold")
    parser.add_argument("--K", type=int, default=2, help="Mask-CTC tokens filled per iteration")
    parser.add_argument("--max-frames", type=int, default=20000, help="feature frames per batch")
    parser.add_argument("--limit", type=int, default=None, help="decode only the first N utterances")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--chunk-size", type=int, default=None,
                        help="streaming models: attention chunk in encoder frames (40 ms each; 0: full "
                             "context); default: the chunk the model was trained with")
    parser.add_argument("--left-chunks", type=int, default=None,
                        help="streaming models: chunks of left context (-1: all); default: the model's")


def run_decode(args: argparse.Namespace) -> dict[str, dict]:
    """Decode and score; returns per method its error counts, rate, I+D and RTF.

    Every input is checked before the first utterance is decoded (methods, checkpoint, set, each item's audio
    and transcript). The output folder is locked for the decode (a second writer is refused with the
    holder's pid) and its result files are published at once, ``summary.json`` last
    (:func:`kdlab.evaluate.results.publish_results`)."""
    import torch

    from kdlab.checkpoint import load_model_from_checkpoint
    from kdlab.data.locks import folder_lock
    from kdlab.evaluate.results import remove_stale_staging
    from kdlab.evaluate.sets import check_records, load_records, resolve_set
    from kdlab.search.decode import check_methods

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    methods = method_list(args.methods)
    model, tokenizer, cmvn, exp_cfg = load_model_from_checkpoint(args.ckpt, device=args.device)
    check_methods(model, methods)
    manifest = resolve_set(args.set, exp_cfg)
    records = load_records(manifest, limit=args.limit)
    check_records(manifest, records)
    with folder_lock(args.out, "decodes into"):
        remove_stale_staging(args.out)
        with streaming_setting(model, getattr(args, "chunk_size", None), getattr(args, "left_chunks", None)) as chunk:
            decoded = _decode_set(args, methods, model, tokenizer, cmvn, records)
        return _score_and_publish(Path(args.out), decoded, tokenizer.unit, chunk)


def method_list(text: str) -> list[str]:
    """``--methods`` → method names; none at all is a ConfigError."""
    from kdlab.config import ConfigError

    methods = [m.strip() for m in text.split(",") if m.strip()]
    if not methods:
        raise ConfigError(f"--methods {text!r}: no decoding method given (e.g. ctc_greedy,maskctc_beam10)")
    return methods


@contextlib.contextmanager
def streaming_setting(model: Any, chunk_size: int | None, left_chunks: int | None) -> Iterator[int]:
    """Decode a streaming model with another chunk size / left context; yields the chunk size in use (0:
    full context or a non-streaming model). A chunk option for a non-streaming model is a ConfigError."""
    from kdlab.config import ConfigError
    from kdlab.search.streaming import chunk_context

    encoder = model.encoder
    if chunk_size is None and left_chunks is None:
        yield getattr(encoder, "chunk_size", 0)
        return
    if not getattr(encoder, "causal", False):
        raise ConfigError("--chunk-size / --left-chunks: the model is not a streaming model "
                          "(train it with model.config chunk_size > 0)")
    chunk = encoder.chunk_size if chunk_size is None else chunk_size
    if chunk < 0 or (left_chunks is not None and left_chunks < -1):
        raise ConfigError(f"--chunk-size {chunk_size} must be >= 0 and --left-chunks {left_chunks} >= -1")
    with chunk_context(model, chunk, left_chunks):
        yield chunk


@dataclasses.dataclass
class Decoded:
    """A decoded set: ids, reference texts, each method's hypotheses, search timings and audio seconds."""

    ids: list[str]
    refs: list[str]
    hyps: dict[str, list[str]]
    timings: dict[str, float]
    audio_s: float
    engines: dict[str, str] | None = None  # id → synthesizer, when the set mixes engines (-unseen sets)


def _decode_set(args: argparse.Namespace, methods: list[str], model: Any, tokenizer: Any, cmvn: Any,
                records: list[dict]) -> Decoded:
    """Decode ``records`` with every method (the encoder runs once per batch)."""
    from kdlab.evaluate.breakdown import engine_groups
    from kdlab.evaluate.sets import audio_seconds, make_batches
    from kdlab.search.decode import decode

    result = Decoded([], [], {m: [] for m in methods}, {}, 0.0, engine_groups(records))
    for batch in make_batches(records, tokenizer, cmvn, args.max_frames):
        out = decode(model, batch, methods, timings=result.timings, beam=args.beam, ctc_weight=args.ctc_weight,
                     end_rule=getattr(args, "end_rule", "beam"), p_thr=args.p_thr, K=args.K)
        result.ids += batch["ids"]
        result.refs += batch["texts"]
        result.audio_s += audio_seconds(batch)
        for m in methods:
            result.hyps[m] += [tokenizer.decode(y) for y in out[m]]
    return result


def _score_and_publish(out: Path, decoded: Decoded, unit: str, chunk: int) -> dict[str, dict]:
    """Write every method's result files into a staging folder, then publish them into ``out`` with the
    summary (``chunk`` > 0: a streaming model's chunk and latency added to each row); returns the summary."""
    from kdlab.evaluate.results import publish_results, staged_results

    with staged_results(out) as staging:
        summary = {m: _score(staging, m, decoded, unit) for m in decoded.hyps}
        if chunk:
            from kdlab.search.streaming import latency_ms

            for row in summary.values():
                row.update(chunk_size=chunk, latency_ms=latency_ms(chunk))
        publish_results(staging, out, summary)
    return summary


def _score(folder: Path, method: str, decoded: Decoded, unit: str) -> dict:
    """Score one method, write its result files into ``folder``, print its line; returns its summary row."""
    from kdlab.evaluate.metrics import error_rate
    from kdlab.evaluate.results import format_summary, write_results

    stats = write_results(folder, method, decoded.ids, decoded.refs, decoded.hyps[method], unit)
    rtf = (decoded.timings["encoder"] + decoded.timings[method]) / decoded.audio_s
    row = {"rate": stats.rate, "sub": stats.sub, "ins": stats.ins, "del": stats.dele,
           "i_plus_d": stats.i_plus_d, "n_ref": stats.n_ref, "rtf": rtf, "unit": unit,
           "utts": len(decoded.ids),
           "cer": error_rate(decoded.refs, decoded.hyps[method], "char").rate}  # CER also for word-scored sets
    by_engine = ""
    if decoded.engines:
        from kdlab.evaluate.breakdown import rates_by_group

        row["by_engine"] = rates_by_group(decoded.ids, decoded.refs, decoded.hyps[method], unit, decoded.engines)
        by_engine = " (" + ", ".join(f"{e} {r:.2f}" for e, r in row["by_engine"].items()) + ")"
    print(f"{method}: {format_summary(stats, unit)} RTF {rtf:.4f}{by_engine}")
    return row


def main(args: argparse.Namespace) -> int:
    run_decode(args)  # writes the result files and summary.json under --out
    return 0
