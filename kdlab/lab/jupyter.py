"""Notebook folder, kernel and server command lines shared by ``kdlab lab``, ``kdlab demo`` and the browser test.

The notebooks name the kernel ``python3``. :func:`server_env` puts this environment's Jupyter data folder
first on ``JUPYTER_PATH``, so ``python3`` is the ipykernel of the Python that runs ``kdlab`` (the ``.venv`` of
``run.sh``), whatever other ``python3`` kernels a user has registered.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path
from typing import NoReturn

from kdlab.errors import UserError

NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
SMOKE_VAR = "KDLAB_SMOKE"
# Voilà starts one kernel (~0.9 GB with kdlab's notebooks) per page load. Jupyter server's culler shuts down a
# kernel that no page is connected to once it has been idle this long (a page that is open keeps its kernel;
# a running cell is never interrupted), checking every CULL_INTERVAL_S.
CULL_IDLE_S = 60
CULL_INTERVAL_S = 10


class LabError(UserError):
    """A missing notebooks folder, an unknown notebook or a missing Jupyter package."""


def default_notebooks_dir() -> Path:
    """``notebooks/`` of the kdlab checkout this package is imported from."""
    return Path(__file__).resolve().parents[2] / "notebooks"


def notebooks_dir(path: str | Path | None = None) -> Path:
    """The notebooks folder (``path`` or :func:`default_notebooks_dir`); :class:`LabError` when it is missing."""
    folder = Path(path) if path is not None else default_notebooks_dir()
    if not folder.is_dir():
        raise LabError(f"notebooks folder not found: {folder} (run from a kdlab checkout or pass --notebooks DIR)")
    return folder.resolve()


def list_notebooks(folder: Path) -> list[Path]:
    """The numbered notebooks ``NN_name.ipynb`` of ``folder``, in order."""
    return sorted(folder.glob(NOTEBOOK_GLOB))


def available(folder: Path) -> str:
    """``01 (01_ctc_alignment), 02 (…)``: the numbered notebooks for an error message."""
    names = [f"{p.name[:2]} ({p.stem})" for p in list_notebooks(folder)]
    return ", ".join(names) if names else "none"


def resolve_notebook(folder: Path, key: str) -> Path:
    """``"02"``, ``"2"``, ``"02_maskctc_masking"`` or a path → the notebook file; :class:`LabError` otherwise."""
    as_path = Path(key)
    if as_path.suffix == ".ipynb" and as_path.is_file():
        return as_path.resolve()
    key = key.removesuffix(".ipynb")
    prefix = f"{int(key):02d}" if key.isdigit() else key
    matches = [p for p in list_notebooks(folder) if p.stem == prefix or p.name.startswith(f"{prefix}_")]
    if len(matches) != 1:
        what = "no" if not matches else "more than one"
        raise LabError(f"{what} notebook {key!r} in {folder}; available: {available(folder)}")
    return matches[0]


def require_modules(*names: str) -> None:
    """:class:`LabError` naming the first of ``names`` that this Python cannot import."""
    for name in names:
        if importlib.util.find_spec(name) is None:
            raise LabError(f"the Python package {name!r} is not installed in {sys.prefix} "
                           "(./run.sh installs it; or pip install -e '.[dev]')")


def ensure_kernelspec() -> Path:
    """This environment's Jupyter data folder, holding a ``python3`` kernelspec (written when missing)."""
    data_dir = Path(sys.prefix) / "share" / "jupyter"
    if not (data_dir / "kernels" / "python3" / "kernel.json").is_file():
        from ipykernel.kernelspec import install

        install(prefix=sys.prefix)  # argv: this Python -m ipykernel_launcher
    return data_dir


def server_env(smoke: bool = False, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a Jupyter server whose ``python3`` kernel is this Python (``KDLAB_SMOKE=1`` if ``smoke``)."""
    env = dict(os.environ if base is None else base)
    paths = [str(ensure_kernelspec())] + [p for p in env.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    env["JUPYTER_PATH"] = os.pathsep.join(paths)
    if smoke:
        env[SMOKE_VAR] = "1"
    return env


def _root_flag() -> list[str]:
    """``--allow-root`` when running as root (containers): Jupyter refuses to start as root without it."""
    return ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []


def lab_command(root: Path, port: int | None = None, ip: str = "localhost", open_browser: bool = True,
                extra: list[str] | None = None) -> list[str]:
    """``python -m jupyterlab`` serving ``root``."""
    cmd = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root}", f"--ServerApp.ip={ip}"]
    if port is not None:
        cmd += [f"--ServerApp.port={port}", "--ServerApp.port_retries=0"]
    if not open_browser:
        cmd.append("--no-browser")
    return cmd + _root_flag() + list(extra or [])


def cull_settings(idle_s: int = CULL_IDLE_S, interval_s: int = CULL_INTERVAL_S) -> list[str]:
    """Jupyter server's own kernel-culling options: a kernel with no connected page, idle for ``idle_s``
    seconds, is shut down (checked every ``interval_s``); busy or connected kernels are kept."""
    return [f"--MappingKernelManager.cull_idle_timeout={idle_s}", f"--MappingKernelManager.cull_interval={interval_s}",
            "--MappingKernelManager.cull_connected=False", "--MappingKernelManager.cull_busy=False"]


def voila_command(notebook: Path, port: int | None = None, ip: str = "localhost", open_browser: bool = True,
                  extra: list[str] | None = None, token: bool = False,
                  cull: tuple[int, int] = (CULL_IDLE_S, CULL_INTERVAL_S)) -> list[str]:
    """``python -m voila`` showing one notebook without its code (outputs and markdown only); the kernel of
    a page that has gone is culled (:func:`cull_settings` with ``cull`` = (idle s, interval s)); ``token``:
    Voilà generates a token that the page's URL must carry (printed, and given to the browser it opens)."""
    cmd = [sys.executable, "-m", "voila", str(notebook), f"--Voila.ip={ip}", "--strip_sources=True",
           "--show_tracebacks=True", *cull_settings(*cull)]
    if token:
        cmd.append("--token")
    if port is not None:
        cmd += [f"--port={port}", "--Voila.port_retries=0"]
    if not open_browser:
        cmd.append("--no-browser")
    return cmd + list(extra or [])


def exec_server(cmd: list[str], env: dict[str, str]) -> NoReturn:
    """Replace this process by the server, so that Ctrl-C and termination signals reach it directly."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(cmd[0], cmd, env)


def add_server_arguments(parser: argparse.ArgumentParser, default_port: str, smoke_what: str) -> None:
    """The options ``kdlab lab`` and ``kdlab demo`` share: port, address, browser, smoke mode, notebooks."""
    parser.add_argument("--port", type=int, default=None, help=f"server port (default: {default_port})")
    parser.add_argument("--ip", default="localhost", help="address to listen on (default: localhost)")
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser; print the URL only")
    parser.add_argument("--smoke", action="store_true", help=f"run {smoke_what} in smoke mode (KDLAB_SMOKE=1)")
    parser.add_argument("--notebooks", default=None, help="notebooks folder (default: notebooks/ of this checkout)")
