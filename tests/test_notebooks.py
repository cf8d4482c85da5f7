"""Every notebook under notebooks/ runs top to bottom in smoke mode (KDLAB_SMOKE=1) without an error
output, and is stored without outputs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("jupyter_client")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} hold outputs (clear them before committing)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_first_code_cell_is_tagged_parameters(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert "parameters" in first.metadata.get("tags", []), f"{path.name}: first code cell lacks the parameters tag"
    assert "KDLAB_SMOKE" in first.source


def _run_cells(nb, cwd: Path, env: dict[str, str]) -> list[str]:
    """Execute every code cell in a fresh kernel; returns the error messages (``ename: evalue``).

    Uses jupyter_client's blocking client, which (unlike nbclient) never writes to the kernel while a cell
    runs: nbclient's Output-widget support sends widget state on the shell channel, and after such a send it
    could notice the cell's ``execute_reply`` only at the cell timeout (``tests/test_widgets_common.py``).
    """
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", cwd=str(cwd), env={**os.environ, **env}, startup_timeout=180)
    errors: list[str] = []

    def hook(msg: dict) -> None:
        if msg["msg_type"] == "error":
            errors.append(f"{msg['content']['ename']}: {msg['content']['evalue']}")

    try:
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            reply = kc.execute_interactive(cell.source, timeout=600, output_hook=hook, allow_stdin=False)
            if reply["content"]["status"] == "error" and not errors:
                errors.append(f"{reply['content']['ename']}: {reply['content']['evalue']}")
            if errors:
                break
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return errors


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_runs_in_smoke_mode(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    errors = _run_cells(nb, path.parent, {"KDLAB_SMOKE": "1", "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"})
    assert not errors, f"{path.name}: {errors[0]}"


def test_runner_reports_an_error_cell(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1"),
                                         nbformat.v4.new_code_cell("raise ValueError('bad cell')"),
                                         nbformat.v4.new_code_cell("y = 2")])
    assert _run_cells(nb, tmp_path, {}) == ["ValueError: bad cell"]
