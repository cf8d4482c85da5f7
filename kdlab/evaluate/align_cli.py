"""``kdlab align``: CTC forced alignment of one utterance's transcript to a model's CTC posteriors.

Prints one line per token: piece, start and end time (s), mean frame probability. Times are in encoder
frames × 40 ms (10 ms fbank shift × 4 subsampling).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

INPUT_ERRORS = (ValueError,)  # an utterance that cannot be aligned (exit 2)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="checkpoint inside a run folder")
    parser.add_argument("--set", default="test",
                        help="a split of the run's corpus (test = test-clean, dev, test-other, ...) | PATH.jsonl")
    parser.add_argument("--utt", required=True, help="utterance id in the set")
    parser.add_argument("--text", default=None, help="align this text instead of the manifest transcript")
    parser.add_argument("--json", default=None, help="also write the segments to this JSON file")


def align_utterance(args: argparse.Namespace) -> list[dict]:
    import torch

    from kdlab.checkpoint import load_model_from_checkpoint
    from kdlab.data.features import FRAME_SHIFT_S
    from kdlab.data.tokenizer import normalize_text
    from kdlab.evaluate.sets import load_records, make_batches, resolve_set
    from kdlab.nn.subsampling import SUBSAMPLING
    from kdlab.search.ctc import ctc_forced_align

    model, tokenizer, cmvn, exp_cfg = load_model_from_checkpoint(args.ckpt)
    records = load_records(resolve_set(args.set, exp_cfg), ids=[args.utt])
    batch = next(iter(make_batches(records, tokenizer, cmvn, max_frames=10**9)))
    if args.text is not None:
        tokens = tokenizer.encode(normalize_text(args.text, tokenizer.lang))
    else:
        tokens = batch["tokens"][0, : batch["token_lens"][0]].tolist()
    if not tokens:
        raise ValueError(f"utterance {args.utt!r}: nothing to align (empty transcript)")
    with torch.inference_mode():
        enc, enc_lens = model.encode(batch["feats"], batch["feat_lens"])
        logp = model.ctc_log_probs(enc)[0, : enc_lens[0]]  # (T', V)
    try:
        segments = ctc_forced_align(logp, tokens)
    except ValueError as err:
        raise ValueError(f"utterance {args.utt!r}: {err}") from err
    step = SUBSAMPLING * FRAME_SHIFT_S
    return [{"token": s.token, "piece": tokenizer.id_to_piece(s.token), "start_s": round(s.start * step, 3),
             "end_s": round(s.end * step, 3), "start_frame": s.start, "end_frame": s.end, "score": s.score}
            for s in segments]


def main(args: argparse.Namespace) -> int:
    segments = align_utterance(args)
    for s in segments:
        print(f"{s['piece']}\t{s['start_s']:.2f}\t{s['end_s']:.2f}\t{s['score']:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(segments, ensure_ascii=False, indent=1) + "\n")
    return 0
