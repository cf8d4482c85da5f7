"""The stage scheduler of ``kdlab reproduce`` on cheap fake stages: dependencies, the jobs limit, priorities,
failures and re-runs; the real stage graph's shape; evaluation-set names."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from kdlab.errors import UserError
from kdlab.evaluate.sets import SetError, resolve_set
from kdlab.reproduce import reproduce_cli as reproduce
from kdlab.reproduce.jobs import Job, StageFailed, priorities, run_jobs

# A fake stage: record start and end times, sleep, then mark itself done (or fail when asked to).
FAKE = """
import json, sys, time
folder, name, seconds, code = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
start = time.time()
time.sleep(seconds)
if code:
    print("boom: this fake stage fails")
    sys.exit(code)
with open(f"{folder}/{name}.DONE", "w") as f:
    json.dump({"start": start, "end": time.time()}, f)
"""


def fake_job(folder: Path, name: str, deps: tuple[str, ...] = (), seconds: float = 0.3, cost: float = 1.0,
             code: int = 0) -> Job:
    """A job whose subprocess sleeps ``seconds`` and writes ``<name>.DONE`` (its start and end times)."""
    return Job(name, lambda: [sys.executable, "-c", FAKE, str(folder), name, str(seconds), str(code)],
               folder / f"{name}.log", lambda: (folder / f"{name}.DONE").is_file(), deps, cost)


def spans(folder: Path) -> dict[str, tuple[float, float]]:
    runs = {p.name.removesuffix(".DONE"): json.loads(p.read_text()) for p in folder.glob("*.DONE")}
    return {name: (r["start"], r["end"]) for name, r in runs.items()}


def diamond(folder: Path) -> list[Job]:
    """a → {b, c} → d, plus e and f on their own."""
    return [fake_job(folder, "a", cost=5), fake_job(folder, "b", ("a",)), fake_job(folder, "c", ("a",)),
            fake_job(folder, "d", ("b", "c")), fake_job(folder, "e"), fake_job(folder, "f")]


def test_scheduler_respects_dependencies_and_the_jobs_limit(tmp_path):
    lines: list[str] = []
    times = run_jobs(diamond(tmp_path), max_jobs=2, say=lines.append)
    got = spans(tmp_path)
    assert set(times) == set(got) == set("abcdef")
    for job in diamond(tmp_path):
        assert all(got[dep][1] <= got[job.name][0] for dep in job.deps), job.name
    for name, (start, _) in got.items():  # never more than 2 running at any start
        assert sum(s <= start < e for s, e in got.values()) <= 2, name
    assert lines[0].startswith("a: started")  # the longest chain starts first


def inline_job(folder: Path, name: str, order: list[str], deps: tuple[str, ...] = (), cost: float = 1.0) -> Job:
    """A job that runs in process (``max_jobs=1``): appends its name to ``order`` and marks itself done."""
    def work() -> None:
        order.append(name)
        (folder / f"{name}.ok").touch()

    return Job(name, lambda: [], folder / f"{name}.log", lambda: (folder / f"{name}.ok").is_file(), deps, cost,
               inline=work)


def test_scheduler_orders_by_longest_remaining_path(tmp_path):
    order: list[str] = []
    jobs = [inline_job(tmp_path, "short", order, cost=3), inline_job(tmp_path, "head", order, cost=1),
            inline_job(tmp_path, "tail", order, ("head",), cost=5)]
    assert priorities({j.name: j for j in jobs}) == {"short": 3, "head": 6, "tail": 5}
    assert set(run_jobs(jobs, max_jobs=1, say=lambda _: None)) == {"short", "head", "tail"}
    assert order == ["head", "tail", "short"]  # sequential, in process, critical chain first


def test_failing_stage_stops_the_run_with_a_one_line_error(tmp_path):
    jobs = [fake_job(tmp_path, "slow", seconds=20), fake_job(tmp_path, "bad", seconds=0.2, code=3),
            fake_job(tmp_path, "after", ("bad",))]
    with pytest.raises(StageFailed) as err:
        run_jobs(jobs, max_jobs=2, say=lambda _: None)
    message = str(err.value)
    assert "\n" not in message and "bad" in message and str(tmp_path / "bad.log") in message
    assert "boom" in (tmp_path / "bad.log").read_text()
    assert not spans(tmp_path)  # the slow stage was terminated, the dependent one never started


def test_rerun_skips_done_stages(tmp_path):
    run_jobs(diamond(tmp_path), max_jobs=2, say=lambda _: None)
    lines: list[str] = []
    assert run_jobs(diamond(tmp_path), max_jobs=2, say=lines.append) == {}
    assert len(lines) == 6 and all(line.endswith("done already, skipping") for line in lines)


@pytest.mark.parametrize("max_jobs", [1, 2])
def test_a_job_whose_work_another_job_did_is_skipped_when_it_becomes_ready(tmp_path, max_jobs):
    # "adopt" does the work of "also" too (as teacher_from's two adopt stages do); "also" would fail if run
    adopt = fake_job(tmp_path, "adopt")
    also = fake_job(tmp_path, "also", ("adopt",), code=3)
    jobs = [adopt, Job(also.name, also.command, also.log, lambda: adopt.done(), ("adopt",)),
            fake_job(tmp_path, "after", ("also",))]
    lines: list[str] = []
    times = run_jobs(jobs, max_jobs=max_jobs, say=lines.append)
    assert set(times) == {"adopt", "after"} and set(spans(tmp_path)) == {"adopt", "after"}
    assert "also: done already, skipping" in lines and not (tmp_path / "also.log").exists()


def test_cycles_and_unknown_dependencies_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="cycle"):
        run_jobs([fake_job(tmp_path, "x", ("y",)), fake_job(tmp_path, "y", ("x",))], 2)
    with pytest.raises(ValueError, match="unknown"):
        run_jobs([fake_job(tmp_path, "x", ("nope",))], 2)


def test_reproduce_main_reports_a_failed_stage_in_one_line(monkeypatch, capsys):
    def fail(*_args, **_kw):
        raise StageFailed("stage nar-same-fkd failed (exit code 1); see runs/x/nar-same-fkd/train.log")

    monkeypatch.setattr(reproduce, "run", fail)
    args = SimpleNamespace(preset="mini-en", overrides=[], out="runs/x", data_root=None, cache="c", jobs=2, families=[],
                           train_only=False)
    assert reproduce.main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nar-same-fkd" in err and "train.log" in err
    with pytest.raises(UserError, match="--train-only"):  # one line through the CLI's error path, exit 2
        reproduce.main(SimpleNamespace(**{**vars(args), "families": ["inter"], "train_only": True}))


def test_stage_graph_of_the_experiment(tmp_path):
    from kdlab.reproduce import eval as ev
    from kdlab.reproduce import stages as st
    from kdlab.reproduce.presets import get_preset

    preset = get_preset("mini-en")
    splits = ["dev", "test", "dev-other", "test-other"]
    jobs = st.training_jobs(preset, tmp_path / "corpus", tmp_path) + ev.decode_jobs(
        preset, tmp_path, st.eval_names(preset), splits)
    deps = {j.name: set(j.deps) for j in jobs}
    assert deps["ar"] == deps["nar-same-ljca"] == deps["nar-smaller-ljca"] == {"prepare"}
    assert deps["nbest"] == deps["nar-same-fkd"] == deps["nar-smaller-fkd"] == {"ar"}
    assert deps["nar-same-skd"] == {"nar-same-fkd", "nbest"}
    assert deps["decode-nar-smaller-skd-test-other"] == {"nar-smaller-skd"}
    # the L_jca baseline's stage-1 checkpoint is decoded like every student, once its run has finished
    assert deps["decode-nar-same-ljca-stage1-test"] == {"nar-same-ljca"}
    assert st.eval_names(preset)[1:5] == ["nar-same-ljca", "nar-same-ljca-stage1", "nar-same-fkd", "nar-same-skd"]
    prio = priorities({j.name: j for j in jobs})
    after_prepare = sorted(("ar", "nar-same-ljca", "nar-smaller-ljca"), key=lambda n: -prio[n])
    assert after_prepare[0] == "ar" and prio["nar-same-fkd"] > prio["nar-smaller-fkd"]


def test_resolve_set_accepts_every_split_and_the_clean_aliases(tmp_path):
    for split in ("dev", "test", "test-other"):
        (tmp_path / f"{split}.jsonl").write_text("")
    cfg = SimpleNamespace(data=SimpleNamespace(corpus=str(tmp_path), dev=None))
    assert resolve_set("test-clean", cfg) == tmp_path / "test.jsonl"
    assert resolve_set("dev-clean", cfg) == tmp_path / "dev.jsonl"
    assert resolve_set("test-other", cfg) == tmp_path / "test-other.jsonl"
    with pytest.raises(SetError, match="dev, test, test-other"):
        resolve_set("dev-other", cfg)


def test_a_real_corpus_preset_without_data_root_is_one_line_exit_2(tmp_path, capsys):
    """Was a SystemExit (exit 1, outside the one-line error path); now a UserError the CLI prints."""
    from kdlab.cli import main as kdlab_main

    assert kdlab_main(["reproduce", "--preset", "librispeech", "--out", str(tmp_path / "r"),
                       "--cache", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "give --data-root" in err


def test_eval_stage_without_a_stage1_checkpoint_is_one_line_exit_2(tmp_path, capsys):
    from kdlab.reproduce import eval as ev

    run = tmp_path / "nar-same-ljca"
    run.mkdir()
    argv = ["--run", str(run), "--stage1", "--set", "test", "--methods", "ctc_greedy", "--out", str(tmp_path / "o")]
    assert ev.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no stage-1 checkpoint" in err
