"""The checks of ``kdlab doctor``: each one imports or calls one thing the project relies on and says, in one
line, what it found.

A check returns a :class:`Check`; ``fail`` means a README command cannot work (its line names the broken
piece and the fix), ``warn`` means something optional is missing (the browser tests skip without Chromium)
or the environment differs from the lock. The compiled ops are called through the package's own functions,
so a pass means kdlab's code path loads, not just the library.
"""

from __future__ import annotations

import io
import os
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass

from kdlab.env import browser, lockfile

REPAIR = "./run.sh install (re-installs requirements.lock into .venv)"


@dataclass(frozen=True)
class Check:
    """One line of the report: ``status`` is ``ok``, ``warn`` or ``fail``."""

    name: str
    status: str
    detail: str


def pair_problem(torch_version: str, torchaudio_version: str) -> str | None:
    """Why a torch/torchaudio pair cannot work together, or None.

    torchaudio's compiled library is built against one torch release, the one with its own version number;
    any other torch leaves symbols undefined (torch 2.11.0 + torchaudio 2.11.1 fails to load).
    """
    t, a = lockfile.base_version(torch_version), lockfile.base_version(torchaudio_version)
    if t == a:
        return None
    return (f"torch {torch_version} and torchaudio {torchaudio_version} are not a pair (torchaudio {a} is built "
            f"for torch {a} only); fix: {REPAIR}, or pip install torchaudio=={t}")


def broken_library(err: BaseException) -> str:
    """One line for an error raised while loading or calling torchaudio's compiled ops."""
    import torch

    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
    try:
        ta = lockfile.installed_version("torchaudio") or "?"
    except Exception:  # noqa: BLE001 - the message must come out whatever broke
        ta = "?"
    pair = pair_problem(torch.__version__, ta) if ta != "?" else None
    return pair or (f"torchaudio {ta} does not load against torch {torch.__version__} ({first}); "
                    f"fix: {REPAIR}")


def check_python() -> Check:
    v = sys.version_info
    text = f"Python {platform.python_version()} ({sys.executable})"
    return Check("python", "ok" if v >= (3, 10) else "fail", text if v >= (3, 10) else f"{text}: kdlab needs ≥ 3.10")


def check_torch() -> Check:
    import torch

    threads = f"{torch.get_num_threads()} threads (interop {torch.get_num_interop_threads()}; "
    threads += f"{os.cpu_count()} cores; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')})"
    if torch.cuda.is_available():
        cuda = f"CUDA {torch.version.cuda}: {torch.cuda.device_count()} × {torch.cuda.get_device_name(0)}"
    else:
        cuda = "CUDA: no GPU visible (the CPU runs everything)"
    return Check("torch", "ok", f"torch {torch.__version__}, {threads}, {cuda}")


def check_torchaudio() -> Check:
    import torch

    ta = lockfile.installed_version("torchaudio")
    if ta is None:
        return Check("torchaudio", "fail", f"torchaudio is not installed; fix: {REPAIR}")
    problem = pair_problem(torch.__version__, ta)
    if problem:
        return Check("torchaudio", "fail", problem)
    import torchaudio

    return Check("torchaudio", "ok", f"torchaudio {torchaudio.__version__} (pairs with torch {torch.__version__})")


def op_fbank() -> str:
    import torch

    from kdlab.data.features import compute_fbank

    feats = compute_fbank(torch.randn(1600) * 0.1)  # 0.1 s at 16 kHz → (8, 80)
    return f"Kaldi fbank {tuple(feats.shape)}"


def op_speed_and_resample() -> str:
    import torch
    import torchaudio.functional as AF

    from kdlab.data.features import speed_perturb

    wave = torch.randn(1600) * 0.1
    fast = speed_perturb(wave, 1.1)
    low = AF.resample(wave, 16000, 8000)
    return f"speed 1.1 ({wave.numel()} → {fast.numel()} samples), resample ({low.numel()})"


def op_forced_align() -> str:
    import torch

    from kdlab.search.ctc import ctc_forced_align

    logp = torch.randn(10, 5).log_softmax(-1)  # (T, V)
    segments = ctc_forced_align(logp, [1, 2, 2])
    return f"forced_align ({len(segments)} segments)"


def op_rnnt_loss() -> str:
    import torch

    from kdlab.models.transducer import rnnt_loss_per_utt

    logits = torch.randn(1, 4, 3, 5, requires_grad=True)  # (B, T', U+1, V)
    loss = rnnt_loss_per_utt(logits, torch.tensor([4]), torch.tensor([[1, 2]]), torch.tensor([2]))
    loss.sum().backward()
    return f"rnnt_loss ({float(loss.detach()):.2f})"


def check_compiled_ops() -> Check:
    """One tiny call of every torchaudio op the project calls."""
    found = []
    for op in (op_fbank, op_speed_and_resample, op_forced_align, op_rnnt_loss):
        try:
            found.append(op())
        except Exception as err:  # noqa: BLE001 - any failure here is the library's
            return Check("compiled ops", "fail", broken_library(err))
    return Check("compiled ops", "ok", ", ".join(found))


def check_espeak() -> Check:
    from kdlab.data.synth.espeak import Espeak

    samples = Espeak.get().synth_isolated("doctor", "en-us")
    status = "ok" if samples.size > 0 else "fail"
    return Check("espeak-ng", status, f"espeakng-loader {lockfile.installed_version('espeakng-loader')}: "
                                      f"'doctor' → {samples.size} samples at 22,050 Hz")


def check_synthesizers() -> Check:
    """flite and festival (Debian packages) speak mini-en beside espeak-ng; absent, only its synthesis fails."""
    from kdlab.data.synth import engines

    need = engines.missing(engines.ENGINES)
    if need:
        return Check("flite, festival", "warn", f"missing Debian packages {' '.join(need)}: mini-en's corpus "
                     f"(./run.sh reproduce, kdlab data synth) cannot be synthesized; fix: sudo apt-get install -y "
                     f"{' '.join(need)} (./run.sh installs them itself when run as root)")
    said = []
    for voice in ("flite:kal16", "festival:kal_diphone"):
        samples, rate = engines.synth_external("doctor", voice)
        if samples.size == 0:
            return Check("flite, festival", "fail", f"{voice} said nothing for 'doctor'; fix: sudo apt-get "
                         f"install --reinstall -y {' '.join(engines.EXTERNAL[engines.engine_of(voice)].packages)}")
        said.append(f"{voice} {samples.size} samples at {rate:,} Hz")
    return Check("flite, festival", "ok", f"{engines.version('flite').split(' (')[0]}, festival "
                 f"{engines.version('festival').split(' (')[0]}: 'doctor' → " + ", ".join(said))


def system_packages() -> list[str]:
    """The Debian packages kdlab's commands need that are not installed (``python -m kdlab.env.checks``)."""
    from kdlab.data.synth import engines

    return engines.missing(engines.ENGINES)


def check_audio_io() -> Check:
    import numpy as np
    import sentencepiece
    import soundfile

    buf = io.BytesIO()
    soundfile.write(buf, np.zeros(160, dtype=np.float32), 16000, format="WAV")
    buf.seek(0)
    data, _ = soundfile.read(buf)
    return Check("audio files, tokenizer", "ok", f"soundfile {soundfile.__version__} (libsndfile "
                 f"{soundfile.__libsndfile_version__}, wav round trip {len(data)} samples), "
                 f"sentencepiece {sentencepiece.__version__}")


def check_notebooks() -> Check:
    names = ["jupyterlab", "voila", "ipywidgets", "ipykernel", "matplotlib", "pandas"]
    versions = {n: lockfile.installed_version(n) for n in names}
    missing = [n for n, v in versions.items() if v is None]
    if missing:
        return Check("notebooks", "fail", f"missing {', '.join(missing)} (./run.sh lab and demo need them); "
                                          f"fix: {REPAIR}")
    return Check("notebooks", "ok", ", ".join(f"{n} {v}" for n, v in versions.items()))


def check_browser(launch: bool = False) -> Check:
    """Chromium and playwright for tests/test_browser.py; missing ones skip those tests (a warning)."""
    pw = lockfile.installed_version("playwright")
    if not browser.CHROMIUM.exists():
        return Check("browser tests", "warn", f"{browser.CHROMIUM} not found, the browser tests will skip "
                                              f"({browser.INSTALL_HINT}); playwright {pw}")
    if pw is None:
        return Check("browser tests", "warn", f"the Python package playwright is missing, the browser tests "
                                              f"will skip; fix: {REPAIR}")
    text = f"{browser.chromium_version()} with playwright {pw}"
    if launch:
        title = browser.page_title("<title>kdlab doctor</title>")
        if title != "kdlab doctor":
            return Check("browser tests", "fail", f"{text}: a page loaded through playwright read {title!r}")
        text += ": a page loaded headless"
    return Check("browser tests", "ok", text)


def check_lock() -> Check:
    """Installed versions against ``requirements.lock`` (only in a source checkout that has one)."""
    path = lockfile.find_lock()
    if path is None:
        return Check("lock", "ok", "no requirements.lock beside this install (kdlab installed into your own "
                                   "environment): versions not compared")
    locked = lockfile.locked_versions(path)
    diff = lockfile.differences(path)
    if not diff:
        return Check("lock", "ok", f"all {len(locked)} packages of {path.name} for this platform installed at "
                                   "the locked versions")
    shown = "; ".join(f"{n} {have or 'missing'} (lock {want})" for n, want, have in diff[:5])
    more = f" and {len(diff) - 5} more" if len(diff) > 5 else ""
    core = any(n in ("torch", "torchaudio") for n, _, _ in diff)
    return Check("lock", "fail" if core else "warn",
                 f"{len(diff)} of {len(locked)} packages differ from {path.name}: {shown}{more}; fix: {REPAIR}")


def guarded(name: str, check: Callable[[], Check]) -> Check:
    """Run one check; an exception becomes that check's one failing line."""
    try:
        return check()
    except Exception as err:  # noqa: BLE001 - reported, never a traceback
        if name in ("torchaudio", "compiled ops"):
            return Check(name, "fail", broken_library(err))
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        return Check(name, "fail", f"{type(err).__name__}: {first}; fix: {REPAIR}")


def run_checks(launch_browser: bool = False) -> list[Check]:
    """Every check, in the order a broken install is best explained (the interpreter first)."""
    checks: list[tuple[str, Callable[[], Check]]] = [
        ("python", check_python), ("torch", check_torch), ("torchaudio", check_torchaudio),
        ("compiled ops", check_compiled_ops), ("espeak-ng", check_espeak), ("flite, festival", check_synthesizers),
        ("audio files, tokenizer", check_audio_io), ("notebooks", check_notebooks),
        ("browser tests", lambda: check_browser(launch_browser)), ("lock", check_lock),
    ]
    results: list[Check] = []
    for name, check in checks:
        if name == "compiled ops" and results[-1].status == "fail":
            continue  # the pair does not load: the torchaudio line already says why
        results.append(guarded(name, check))
        if name == "torch" and results[-1].status == "fail":
            break  # nothing after it can load
    return results


if __name__ == "__main__":  # ./run.sh: the Debian packages to install, space-separated ("" when none)
    print(" ".join(system_packages()))
