"""``kdlab lab`` and ``kdlab demo``: notebook lookup, one-line errors, the kernel they give the notebooks and the
server command each becomes (tests/test_browser.py starts those servers for real)."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from kdlab.cli import main as kdlab_main
from kdlab.lab.jupyter import (
    CULL_IDLE_S,
    LabError,
    lab_command,
    list_notebooks,
    notebooks_dir,
    resolve_notebook,
    server_env,
    voila_command,
)
from kdlab.lab.workcopy import sync_copies


def _notebook(path: Path) -> Path:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# title")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    for name in ("01_ctc_alignment", "02_maskctc_masking", "10_more"):
        _notebook(tmp_path / f"{name}.ipynb")
    (tmp_path / "scratch.ipynb").write_text("{}")  # not numbered: not a course notebook
    return tmp_path


def test_list_notebooks_keeps_numbered_ones_in_order(folder: Path) -> None:
    assert [p.stem for p in list_notebooks(folder)] == ["01_ctc_alignment", "02_maskctc_masking", "10_more"]


@pytest.mark.parametrize("key", ["02", "2", "02_maskctc_masking", "02_maskctc_masking.ipynb"])
def test_resolve_notebook_by_number_or_name(folder: Path, key: str) -> None:
    assert resolve_notebook(folder, key).name == "02_maskctc_masking.ipynb"


def test_resolve_notebook_by_path(folder: Path) -> None:
    path = folder / "10_more.ipynb"
    assert resolve_notebook(folder, str(path)) == path.resolve()


def test_unknown_notebook_lists_the_available_ones(folder: Path) -> None:
    with pytest.raises(LabError, match=r"no notebook '07'.*available: 01 \(01_ctc_alignment\), 02 .*10 \(10_more\)"):
        resolve_notebook(folder, "07")


def test_missing_folder_is_a_lab_error(tmp_path: Path) -> None:
    with pytest.raises(LabError, match="notebooks folder not found"):
        notebooks_dir(tmp_path / "nope")


def test_cli_errors_are_one_line(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert kdlab_main(["demo", "07", "--notebooks", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kdlab demo: error: no notebook '07'") and err.count("\n") == 1
    assert kdlab_main(["lab", "--notebooks", str(folder / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kdlab lab: error: notebooks folder not found") and err.count("\n") == 1


def test_python3_kernel_is_this_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under the servers' environment the notebooks' kernel ``python3`` starts this Python's ipykernel."""
    from jupyter_client.kernelspec import KernelSpecManager

    env = server_env(smoke=True, base={"JUPYTER_PATH": "/elsewhere"})
    assert env["KDLAB_SMOKE"] == "1" and env["JUPYTER_PATH"].endswith(os.pathsep + "/elsewhere")
    monkeypatch.setenv("JUPYTER_PATH", env["JUPYTER_PATH"])
    spec = KernelSpecManager().get_kernel_spec("python3")
    first = env["JUPYTER_PATH"].split(os.pathsep)[0]
    assert Path(spec.resource_dir).parent.parent == Path(first)
    assert spec.argv[0] in ("python", sys.executable) and "ipykernel_launcher" in spec.argv


def test_command_lines(tmp_path: Path) -> None:
    lab = lab_command(tmp_path, port=9999, open_browser=False)
    assert lab[:3] == [sys.executable, "-m", "jupyterlab"]
    assert f"--ServerApp.root_dir={tmp_path}" in lab and "--no-browser" in lab and "--ServerApp.port=9999" in lab
    voila = voila_command(tmp_path / "02_x.ipynb", port=9998)
    assert voila[:4] == [sys.executable, "-m", "voila", str(tmp_path / "02_x.ipynb")]
    assert "--strip_sources=True" in voila and "--port=9998" in voila and "--no-browser" not in voila


class _Exec(Exception):
    """Raised instead of replacing the test process by a server."""


def _run_cli(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], dict[str, str]]:
    """``kdlab <argv>`` in-process up to the point where it would become the server: (command, environment)."""
    def fake_execve(path: str, args: list[str], env: dict[str, str]) -> None:
        raise _Exec(args, env)

    monkeypatch.setattr(os, "execve", fake_execve)
    with pytest.raises(_Exec) as caught:
        kdlab_main(argv)
    return caught.value.args


def test_kdlab_lab_becomes_jupyterlab_on_working_copies(folder: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work"
    argv = ["lab", "--notebooks", str(folder), "--workdir", str(work), "--port", "8899", "--no-browser"]
    cmd, env = _run_cli(argv, monkeypatch)
    assert cmd[:3] == [sys.executable, "-m", "jupyterlab"]
    assert f"--ServerApp.root_dir={work.resolve()}" in cmd and "--ServerApp.port=8899" in cmd
    assert env["JUPYTER_PATH"].split(os.pathsep)[0].endswith("share/jupyter") and "KDLAB_SMOKE" not in env
    assert [p.name for p in list_notebooks(work)] == [p.name for p in list_notebooks(folder)]
    cmd, _ = _run_cli(["lab", "--notebooks", str(folder), "--in-place", "--no-browser"], monkeypatch)
    assert f"--ServerApp.root_dir={folder.resolve()}" in cmd


def _edit(path: Path, text: str) -> None:
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell(text))
    nbformat.write(nb, path)


def test_working_copies_follow_the_shipped_notebooks_but_keep_a_students_edits(folder: Path,
                                                                               tmp_path: Path) -> None:
    work = tmp_path / "work"
    assert len(sync_copies(folder, work)) == 3 and sync_copies(folder, work) == []
    nb = nbformat.read(work / "01_ctc_alignment.ipynb", as_version=4)
    nb.cells[0].outputs = []  # a run and a save change outputs only: the copy still counts as unedited
    nb.metadata["saved"] = True
    nbformat.write(nb, work / "01_ctc_alignment.ipynb")
    _edit(work / "02_maskctc_masking.ipynb", "my notes")
    _edit(folder / "01_ctc_alignment.ipynb", "new upstream cell")
    _edit(folder / "02_maskctc_masking.ipynb", "new upstream cell")
    report = sync_copies(folder, work)
    assert report[0] == f"01_ctc_alignment.ipynb: updated from {folder.name}/"
    assert report[1].startswith("02_maskctc_masking.ipynb changed") and "edited copy is kept" in report[1]
    assert "new upstream cell" in (work / "01_ctc_alignment.ipynb").read_text()
    assert "my notes" in (work / "02_maskctc_masking.ipynb").read_text()
    assert "new upstream cell" not in (work / "02_maskctc_masking.ipynb").read_text()


def test_kdlab_demo_becomes_voila_on_one_notebook(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cmd, env = _run_cli(["demo", "2", "--notebooks", str(folder), "--smoke"], monkeypatch)
    assert cmd[:4] == [sys.executable, "-m", "voila", str(folder.resolve() / "02_maskctc_masking.ipynb")]
    assert env["KDLAB_SMOKE"] == "1"


def test_demo_culls_kernels_of_gone_pages_and_can_require_a_token(folder: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    cmd, _ = _run_cli(["demo", "2", "--notebooks", str(folder), "--no-browser"], monkeypatch)
    assert f"--MappingKernelManager.cull_idle_timeout={CULL_IDLE_S}" in cmd
    assert "--MappingKernelManager.cull_connected=False" in cmd and "--token" not in cmd
    cmd, _ = _run_cli(["demo", "2", "--notebooks", str(folder), "--token"], monkeypatch)
    assert "--token" in cmd


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kernels(server: subprocess.Popen) -> int:
    """The server's running ipykernel processes (a culled kernel not yet reaped, a zombie, does not count)."""
    import psutil

    def running_kernel(child: psutil.Process) -> bool:
        try:
            return child.status() != psutil.STATUS_ZOMBIE and "ipykernel" in " ".join(child.cmdline())
        except psutil.Error:  # gone or a zombie meanwhile
            return False

    return sum(map(running_kernel, psutil.Process(server.pid).children()))


def _load_page(url: str, timeout_s: float = 60.0) -> str:
    """One page load (the notebook runs in a fresh kernel) returning the page's HTML; no browser keeps it open
    (no websocket to its kernel), so the page is gone at once."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as resp:
                return resp.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _wait_kernels(server: subprocess.Popen, n: int, timeout_s: float = 20.0) -> int:
    """The server's kernel count once it is ``n`` or ``timeout_s`` has passed."""
    deadline = time.monotonic() + timeout_s
    while _kernels(server) != n and time.monotonic() < deadline:
        time.sleep(0.5)
    return _kernels(server)


async def _pages(server: subprocess.Popen, url: str) -> list[int]:
    """Kernel counts: three page loads with the first page kept open (its websocket), then that page closed."""
    from tornado.websocket import websocket_connect

    kernel_id = re.search(r"kernelId[^0-9a-f]*([0-9a-f-]{36})", _load_page(url)).group(1)
    ws = await websocket_connect(f"{url.replace('http', 'ws')}api/kernels/{kernel_id}/channels")
    _load_page(url)
    _load_page(url)
    counts = [_kernels(server)]
    counts.append(await asyncio.to_thread(_wait_kernels, server, 1))
    ws.close()
    counts.append(await asyncio.to_thread(_wait_kernels, server, 0))
    return counts


def test_voila_shuts_down_the_kernels_of_closed_pages_only(tmp_path: Path) -> None:
    """Three page loads, the first page kept open: ``kdlab demo``'s Voilà command (culling after 2 s here,
    60 s in use) keeps the open page's kernel and shuts down the other two, then the first once its page
    closes; before, each load left a kernel running (~0.9 GB with kdlab's notebooks)."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1 + 1\nx")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "01_tiny.ipynb")
    port = _free_port()
    cmd = voila_command(tmp_path / "01_tiny.ipynb", port=port, ip="127.0.0.1", open_browser=False, cull=(2, 1))
    env = server_env(base={**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
                           "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "IPYTHONDIR": str(tmp_path / "ipython")})
    with open(tmp_path / "voila.log", "wb") as log:
        server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        counts = asyncio.run(_pages(server, f"http://127.0.0.1:{port}/"))
    finally:
        server.terminate()
        server.wait(30)
    assert counts[0] >= 1 and counts[1:] == [1, 0], ((tmp_path / "voila.log").read_text()[-2000:], counts)
