"""``kdlab reproduce --family …``: the related KD families trained and compared on the preset's corpus.

Three comparisons (docs/KD_FAMILIES.md), each a small dependency graph beside the paper's experiment, in
``<root>/families/<run>`` with decodings in ``<root>/families/decode/<run>/<set>``:

* ``inter`` — Inter-KD (Yoon et al. 2022): a CTC student with intermediate CTC heads; no KD, KD into the
  final head only, KD into the final and intermediate heads. Teacher: the paper's AR teacher (its CTC).
* ``stream`` — streaming layer-to-layer KD with APC (Shim et al. 2023): a chunk-based streaming CTC
  student; no KD, token-probability KD, layer-to-layer KD through auxiliary non-streaming branches + APC.
  Teacher: the paper's (non-streaming) AR teacher's encoder.
* ``rnnt`` — one-best-path KD for transducers (Yang et al. 2022): a transducer teacher (the AR teacher's
  encoder fine-tuned with the RNN-T loss) and ~10× smaller students: no KD, full-lattice KL, one-best path.

Every run needs the paper's teacher (``ar``: trained by the same graph when missing) for the tokenizer and
CMVN; finished runs are skipped on a re-run, like the paper's stages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kdlab.reproduce.jobs import Job
from kdlab.reproduce.presets import ReproducePreset
from kdlab.reproduce.stages import (
    TEACHER,
    base_config,
    checkpoint_of,
    is_done,
    model_cost,
    stage_job,
    teacher_jobs,
)

FAMILIES_DIR = "families"


@dataclass(frozen=True)
class FamilyRun:
    """One trained model of a KD-family comparison."""

    name: str  # run folder and shipped model name, e.g. "inter-kd"
    family: str  # inter | stream | rnnt
    label: str  # its row in the comparison table
    kind: str  # model kind: ctc | transducer
    model: str  # model preset
    epochs: int
    model_config: dict = field(default_factory=dict)  # ModelConfig overrides (heads, chunks, aux branches)
    kd: dict | None = None  # kd: section without the teacher (method, weights); None: no KD
    teacher: str = TEACHER  # the run whose averaged checkpoint is the KD teacher
    init_encoder_from: str | None = None  # run whose encoder initialises this one (train.init_encoder_from)
    methods: tuple[str, ...] = ("ctc_greedy",)  # decodings reported
    train: dict = field(default_factory=dict)  # TrainConfig overrides
    chunk_sizes: tuple[int, ...] = ()  # streaming runs: other attention chunks decoded on the test sets

    @property
    def deps(self) -> tuple[str, ...]:
        """Jobs this run waits for: the KD teacher and the encoder source (the paper's teacher at least)."""
        return tuple(dict.fromkeys(r for r in (TEACHER, self.teacher if self.kd else None, self.init_encoder_from)
                                   if r))


INTER_STUDENT = {"inter_ctc_layers": [2]}
INTER = [
    FamilyRun("inter-none", "inter", "CTC (InterCTC), no KD", "ctc", "mini-student", 3, INTER_STUDENT),
    FamilyRun("inter-final", "inter", "+ KD, final layer", "ctc", "mini-student", 3, INTER_STUDENT,
              {"method": "ctc"}),
    FamilyRun("inter-kd", "inter", "+ Inter-KD", "ctc", "mini-student", 3, INTER_STUDENT, {"method": "inter"}),
]
# d 80, 4 blocks (0.69 M); chunks of 8 encoder frames (320 ms), every earlier chunk as left context. The
# layer-KD student adds (for training only, 0.35 M) aux branches after blocks 2 and 4, widened to the
# teacher's d 112 and matched to its blocks 3 and 6, and their APC heads.
STREAM_STUDENT = {"d_model": 80, "ffn_dim": 320, "enc_blocks": 4, "chunk_size": 8, "left_chunks": -1}
STREAM_AUX = {**STREAM_STUDENT, "aux_layers": [2, 4], "aux_out_dim": 112}
STREAM_CHUNKS = (2, 4, 16, 0)  # decoded besides the trained chunk 8 (0: full attention context)
STREAM = [
    FamilyRun("stream-none", "stream", "streaming CTC, no KD", "ctc", "mini-teacher", 3, STREAM_STUDENT,
              chunk_sizes=STREAM_CHUNKS),
    FamilyRun("stream-token", "stream", "+ token-probability KD", "ctc", "mini-teacher", 3, STREAM_STUDENT,
              {"method": "ctc"}, chunk_sizes=STREAM_CHUNKS),
    FamilyRun("stream-layer", "stream", "+ layer-to-layer KD + APC", "ctc", "mini-teacher", 3, STREAM_AUX,
              {"method": "layer", "teacher_layers": [3, 6], "apc_shift": 2}, chunk_sizes=STREAM_CHUNKS),
    FamilyRun("stream-layer-token", "stream", "+ layer-to-layer KD + APC + token KD", "ctc", "mini-teacher", 3,
              STREAM_AUX, {"method": "layer", "teacher_layers": [3, 6], "apc_shift": 2, "token_weight": 1.0},
              chunk_sizes=STREAM_CHUNKS),
]
RNNT_METHODS = ("rnnt_greedy", "rnnt_beam4")
RNNT = [
    FamilyRun("rnnt-teacher", "rnnt", "transducer teacher (AR teacher's encoder)", "transducer", "mini-teacher",
              2, init_encoder_from=TEACHER, methods=RNNT_METHODS),
    FamilyRun("rnnt-none", "rnnt", "student, no KD", "transducer", "mini-student", 3, methods=RNNT_METHODS),
    FamilyRun("rnnt-lattice", "rnnt", "student + full-lattice KL", "transducer", "mini-student", 3,
              kd={"method": "lattice"}, teacher="rnnt-teacher", methods=RNNT_METHODS),
    FamilyRun("rnnt-onebest", "rnnt", "student + one-best-path KD", "transducer", "mini-student", 3,
              kd={"method": "onebest"}, teacher="rnnt-teacher", methods=RNNT_METHODS),
]
FAMILY_RUNS: dict[str, list[FamilyRun]] = {"inter": INTER, "stream": STREAM, "rnnt": RNNT}


def family_runs(families: list[str]) -> list[FamilyRun]:
    """The runs of ``families`` ("all": every family), in table order."""
    names = list(FAMILY_RUNS) if "all" in families else families
    unknown = [f for f in names if f not in FAMILY_RUNS]
    if unknown:
        raise ValueError(f"unknown KD family {unknown}; choose from {sorted(FAMILY_RUNS)} or all")
    return [run for family in names for run in FAMILY_RUNS[family]]


def run_dir(root: Path, name: str) -> Path:
    """A run's folder: the paper's teacher at ``<root>/ar``, family runs under ``<root>/families``."""
    return root / name if name == TEACHER else root / FAMILIES_DIR / name


def family_config(preset: ReproducePreset, corpus: Path, root: Path, run: FamilyRun) -> dict:
    """The run's experiment config: the preset's data and schedule, the teacher's tokenizer and CMVN."""
    cfg = base_config(preset, corpus, run.kind, run.model, run.epochs)
    cfg["model"]["config"] = dict(run.model_config)
    cfg["train"]["max_frames"] = preset.student_max_frames or preset.max_frames
    cfg["train"].update(run.train)
    teacher_dir = root / TEACHER
    cfg["data"].update(tokenizer_from=str(teacher_dir), cmvn_from=str(teacher_dir))
    if run.kd is not None:
        cfg["kd"] = {"enabled": True, "teacher": str(checkpoint_of(run_dir(root, run.teacher))), **run.kd}
    if run.init_encoder_from:
        cfg["train"]["init_encoder_from"] = str(checkpoint_of(run_dir(root, run.init_encoder_from)))
    return cfg


def family_job(preset: ReproducePreset, corpus: Path, root: Path, run: FamilyRun) -> Job:
    """The training job of one run (a one-thread ``train`` stage subprocess)."""
    folder = run_dir(root, run.name)

    def make_config() -> dict:
        return {"name": run.name, **family_config(preset, corpus, root, run)}

    cost = run.epochs * model_cost(preset, run.model)
    return stage_job("train", run.name, folder, folder / "train.log", make_config, lambda: is_done(folder),
                     run.deps, cost)


def decode_dir(root: Path, run: str, split: str, chunk: int | None = None) -> Path:
    """Where a run's decoding of ``split`` goes (``<split>-chunk<C>`` for another attention chunk)."""
    return root / FAMILIES_DIR / "decode" / run / (split if chunk is None else f"{split}-chunk{chunk}")


def family_decode_job(root: Path, run: FamilyRun, split: str, chunk: int | None = None) -> Job:
    """One run × set (× chunk size) decoding job (every method of the run)."""
    import sys

    from kdlab.reproduce.eval import decode_stage, decoded

    out, folder, methods = decode_dir(root, run.name, split, chunk), run_dir(root, run.name), list(run.methods)

    def command() -> list[str]:
        argv = [sys.executable, "-m", "kdlab.reproduce.eval", "--run", str(folder), "--set", split,
                "--methods", ",".join(methods), "--out", str(out), "--threads", "1"]
        return argv + ([] if chunk is None else ["--chunk-size", str(chunk)])

    return Job(f"decode-{run.name}-{out.name}", command, out / "decode.log", lambda: decoded(out, methods, False),
               (run.name,), 0.05 * len(methods),
               inline=lambda: decode_stage(checkpoint_of(folder), split, methods, out, False, chunk_size=chunk))


def family_jobs(preset: ReproducePreset, corpus: Path, root: Path, runs: list[FamilyRun],
                splits: list[str]) -> list[Job]:
    """The paper's teacher (prepare + ``ar``), every run's training, and its decodings on ``splits``."""
    teacher = [job for job in teacher_jobs(preset, corpus, root) if job.name != "nbest"]
    train = [family_job(preset, corpus, root, run) for run in runs]
    decode = [family_decode_job(root, run, split, chunk) for run in runs for split in splits
              for chunk in (None, *run.chunk_sizes)]
    return teacher + train + decode
