"""The locked environment and ``kdlab doctor``: the lock covers pyproject.toml, the installed torch pair is the
lock's, and a broken pair is one failing line that names it and the fix."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from kdlab.cli import main as kdlab_main
from kdlab.env import checks, lockfile

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / lockfile.LOCK_NAME

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def pyproject_requirements() -> list[Requirement]:
    """The runtime and every optional extra's requirements named in pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        names += extra
    return [Requirement(r) for r in names]


def test_lock_covers_every_pyproject_requirement() -> None:
    entries = lockfile.read_lock(LOCK)
    assert len(entries) > 100  # torch and the notebooks' stack, transitive ones included
    by_name: dict[str, list[str]] = {}
    for e in entries:
        by_name.setdefault(e.name, []).append(e.version)
    for req in pyproject_requirements():
        versions = by_name.get(canonicalize_name(req.name))
        assert versions, f"{req.name} is in pyproject.toml but not in {LOCK.name}: run ./run.sh lock"
        for v in versions:
            assert req.specifier.contains(v, prereleases=True), f"{LOCK.name} pins {req.name}=={v}, outside {req}"


def test_lock_has_hashes_for_every_entry() -> None:
    lines = LOCK.read_text(encoding="utf-8").splitlines()
    starts = [i for i, line in enumerate(lines) if line and not line.startswith((" ", "#"))]
    assert len(starts) == len(lockfile.read_lock(LOCK))
    for i in starts:  # every entry is followed by its sha256 hashes (pip installs it with --require-hashes)
        assert lines[i + 1].strip().startswith("--hash=sha256:"), lines[i]


def test_torch_pair_is_pinned_exactly_and_installed_as_locked() -> None:
    pinned = {canonicalize_name(r.name): r for r in pyproject_requirements()}
    locked = lockfile.locked_versions(LOCK)
    for name in ("torch", "torchaudio"):
        spec = list(pinned[name].specifier)
        assert len(spec) == 1 and spec[0].operator == "==" and "*" not in spec[0].version, pinned[name]
        assert locked[name] == spec[0].version
        installed = lockfile.installed_version(name)
        assert installed is not None and lockfile.base_version(installed) == locked[name], (
            f"{name} {installed} is installed, the lock has {locked[name]}: ./run.sh install")


def test_read_lock_parses_markers_and_skips_hashes(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text(
        "# header\n"
        "Torch==2.11.0 \\\n    --hash=sha256:aa \\\n    --hash=sha256:bb\n    # via kdlab\n"
        "appnope==1.0.0 ; sys_platform == 'darwin' \\\n    --hash=sha256:cc\n"
        "numpy==2.4.6 ; python_full_version >= '3.10' \\\n    --hash=sha256:dd\n",
        encoding="utf-8")
    entries = lockfile.read_lock(lock)
    assert [(e.name, e.version) for e in entries] == [("torch", "2.11.0"), ("appnope", "1.0.0"),
                                                     ("numpy", "2.4.6")]
    assert entries[1].marker == "sys_platform == 'darwin'"
    applies = {e.name for e in entries if e.applies()}
    assert "numpy" in applies and ("appnope" in applies) == (sys.platform == "darwin")


def test_find_lock_finds_the_checkout_lock() -> None:
    assert lockfile.find_lock() == LOCK
    assert lockfile.find_lock(Path("/")) is None


def test_pair_problem_names_both_versions_and_the_fix() -> None:
    assert checks.pair_problem("2.11.0+cu130", "2.11.0+cu130") is None
    assert checks.pair_problem("2.11.0+cpu", "2.11.0") is None
    line = checks.pair_problem("2.11.0+cu130", "2.11.1")
    assert line is not None and "\n" not in line
    assert "torch 2.11.0+cu130" in line and "torchaudio 2.11.1" in line
    assert "./run.sh install" in line and "pip install torchaudio==2.11.0" in line


def test_broken_library_error_becomes_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    err = OSError("libtorchaudio.so: undefined symbol: torch_exception_get_what_without_backtrace\nmore")
    monkeypatch.setattr(lockfile, "installed_version", lambda name: torch.__version__)
    line = checks.broken_library(err)  # versions match, the library still fails: its first line and the fix
    assert "undefined symbol" in line and "more" not in line and "./run.sh install" in line
    monkeypatch.setattr(lockfile, "installed_version", lambda name: "9.9.9")
    assert "torchaudio 9.9.9" in checks.broken_library(err)


def test_doctor_passes_here(capsys: pytest.CaptureFixture[str]) -> None:
    assert kdlab_main(["doctor"]) == 0
    out = capsys.readouterr().out.splitlines()
    names = [line.split(":", 1)[0].split(maxsplit=1)[1] for line in out[:-1]]
    assert names == ["python", "torch", "torchaudio", "compiled ops", "espeak-ng", "flite, festival",
                     "audio files, tokenizer", "notebooks", "browser tests", "lock"]
    assert not any(line.startswith("FAIL") for line in out)
    assert "Kaldi fbank (8, 80)" in out[3] and "forced_align" in out[3] and "rnnt_loss" in out[3]
    assert out[-1].startswith("kdlab doctor: ")


def test_doctor_fails_with_one_line_on_a_broken_pair(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    real = lockfile.installed_version
    monkeypatch.setattr(lockfile, "installed_version",
                        lambda name: "2.99.1" if name == "torchaudio" else real(name))
    assert kdlab_main(["doctor"]) == 1
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "torchaudio 2.99.1" in err[0] and "./run.sh install" in err[0]
    assert "compiled ops" not in captured.out  # not run: the pair line already says why


def test_lock_check_reports_differences(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text("editdistance==0.0.1 \\\n    --hash=sha256:aa\n", encoding="utf-8")
    monkeypatch.setattr(lockfile, "find_lock", lambda: lock)
    found = checks.check_lock()
    assert found.status == "warn" and "editdistance" in found.detail and "lock 0.0.1" in found.detail
    lock.write_text("torch==0.0.1 \\\n    --hash=sha256:aa\n", encoding="utf-8")
    assert checks.check_lock().status == "fail"


def test_missing_synthesizers_are_a_warning_naming_the_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without flite / festival only mini-en's synthesis stops: the doctor warns (run.sh installs them as root)
    with the apt command, and ``python -m kdlab.env.checks`` names the packages run.sh installs."""
    from kdlab.data.synth import engines

    monkeypatch.setattr(engines.shutil, "which", lambda program: None)
    check = checks.check_synthesizers()
    assert check.status == "warn" and "sudo apt-get install -y flite festival" in check.detail
    assert checks.system_packages()[:2] == ["flite", "festival"]
