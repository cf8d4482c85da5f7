"""The notebooks in a real browser: JupyterLab (what ``kdlab lab`` serves) and Voilà (``kdlab demo``).

For every notebook: open it, Run All, fail on any error output. Then move one control of 02 (p_thr), 03 (B),
04 and 06, wait for the widget's invisible end-of-redraw marker (shown after it has drawn), and check that the
figure (and for 02 the masked-token display) changed. The slider-move → new-figure latencies (browser clock)
go to ``latency.json`` and the main cell of each notebook to ``NN_name.png`` in a temporary folder, or in
``KDLAB_GALLERY_DIR`` (``KDLAB_GALLERY_DIR=docs/gallery`` refreshes the committed gallery). Notebooks run in
smoke mode (``KDLAB_SMOKE=1``).

Needs the system Chromium (``apt-get install -y chromium``; ``.ci/run`` installs it) and the PyPI
``playwright`` package (dev extras); skips when either is missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import browser_support as bs
import pytest

from kdlab.env.browser import launch_browser
from kdlab.lab.jupyter import list_notebooks, resolve_notebook

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
# The suite writes only into temporary folders; KDLAB_GALLERY_DIR=docs/gallery refreshes the committed gallery.
GALLERY = Path(os.environ.get("KDLAB_GALLERY_DIR") or tempfile.mkdtemp(prefix="kdlab-gallery-"))
VIEWPORT = {"width": 1200, "height": 1400}
AT_ONCE = 3  # notebooks running at the same time (page loads, kernel starts and model loads overlap)

# Both browser tests run on one xdist worker (`--dist loadgroup`): two Jupyter servers starting kernels at
# the same time can race for the kernels' ports, and a kernel that never answers leaves the page loading.
pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]


@dataclass(frozen=True)
class Interaction:
    """The control to move in one notebook and what must change in its cell."""

    label: str | None  # regex on the control's description; None: the first control of the notebook
    text_changes: bool = False  # the displayed text (e.g. the masked tokens) must change
    image_changes: bool = True  # the figure must change


INTERACTIONS = {
    "02": Interaction(r"p_?thr|threshold", text_changes=True),
    "03": Interaction(r"^B\b|beam"),
    "04": Interaction(r"^student$"),
    "06": Interaction(r"^model$"),
}


@pytest.fixture(scope="module")
def playwright_api() -> Any:
    reason = bs.environment_skip_reason()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw


@pytest.fixture()
def page_factory(playwright_api: Any) -> Any:
    browser = launch_browser(playwright_api)
    problems: list[str] = []

    def new_page() -> Any:
        page = browser.new_page(viewport=VIEWPORT)
        page.set_default_timeout(60_000)  # generous: other work may share the two cores
        page.on("pageerror", lambda err: problems.append(f"page error: {err}"))
        return page

    new_page.problems = problems
    yield new_page
    browser.close()


def required_notebooks() -> list[Path]:
    return [resolve_notebook(NOTEBOOKS, number) for number in INTERACTIONS]


def interact(page: Any, stem: str, spec: Interaction, shot: Path) -> tuple[dict, list[str]]:
    """Move the notebook's control once; returns its latency record and what did not change as it should."""
    label = re.compile(spec.label, re.I) if spec.label else None
    control = bs.find_control(page.locator(".jp-Notebook"), label)
    if control is None:
        return {}, [f"{stem}: no slider/dropdown/toggle control matching {spec.label!r}"]
    cell = bs.control_cell(control)
    before, value_before = bs.cell_state(cell), bs.control_value(control)
    try:
        latency = bs.timed_change(page, control)
    except AssertionError as err:
        return {}, [f"{stem}: {err}"]
    after, value_after = bs.cell_state(cell), bs.control_value(control)
    bs.screenshot(cell, shot)
    problems = []
    if value_after == value_before:
        problems.append(f"{stem}: the control {bs.describe(control)!r} did not move from {value_before}")
    if spec.image_changes and before.images == after.images:
        problems.append(f"{stem}: the figure did not change ({bs.describe(control)} {value_before} → {value_after})")
    if spec.text_changes and before.text == after.text:
        problems.append(f"{stem}: the displayed text did not change ({bs.describe(control)} "
                        f"{value_before} → {value_after}): {after.text[:120]!r}")
    record = {"control": bs.describe(control), "from": value_before, "to": value_after,
              "latency_s": round(latency, 3)}
    return record, problems


@contextlib.contextmanager
def about(stem: str) -> Iterator[None]:
    """Name the notebook in a browser step's timeout or error."""
    try:
        yield
    except Exception as err:  # playwright's TimeoutError and Error: say which notebook
        raise AssertionError(f"{stem}: {type(err).__name__}: {str(err).splitlines()[0]}") from err


def start_notebook(page: Any, server: bs.Server, path: Path) -> None:
    """Open the notebook and, once its kernel is idle, click Run All (without waiting for it)."""
    with about(path.stem):
        bs.goto_notebook(page, server, path.name)
        bs.wait_notebook_ready(page)
        bs.click_run_all(page)


def finish_notebook(page: Any, stem: str) -> tuple[float, list[str]]:
    """Wait for Run All to end: its seconds, and error outputs or a missing marker or figure as problems.
    Screenshot into the gallery the main cell, as the notebook left it."""
    run_s = bs.wait_run_all(page)
    problems = [f"{stem}: {e}" for e in bs.notebook_model_errors(page) + bs.page_errors(page)]
    if stem[:2] in INTERACTIONS and not page.locator(f".jp-Notebook {bs.MARKER}").count():
        problems.append(f"{stem}: no widget showed its {bs.MARKER!r} marker after drawing")
    main = bs.main_cell(page)
    if main is None:
        problems.append(f"{stem}: no widget or figure to show")
    else:
        bs.screenshot(main, GALLERY / f"{stem}.png")
    return run_s, problems


def finish(pages: dict[str, Any], stem: str, records: dict[str, dict]) -> list[str]:
    with about(stem):
        run_s, problems = finish_notebook(pages[stem], stem)
    records[stem] = {"run_all_s": round(run_s, 1)}
    return problems


def test_notebooks_in_jupyterlab(page_factory: Any, tmp_path: Path) -> None:
    """Every notebook runs in the browser without an error; the listed widgets redraw when moved.

    Up to ``AT_ONCE`` notebooks run at the same time, one tab and one kernel each; the controls are moved only
    once every notebook has finished, one at a time, so that the latencies are those of one user."""
    required_notebooks()  # a missing 02/03/04/06 fails here, naming the ones there are
    paths = bs.copy_notebooks(list_notebooks(NOTEBOOKS), tmp_path / "root")
    server = bs.start_lab(tmp_path / "root", tmp_path)
    records: dict[str, dict] = {}
    problems: list[str] = []
    try:
        pages: dict[str, Any] = {}
        running: list[str] = []
        for path in paths:
            if len(running) == AT_ONCE:  # wait for the oldest running notebook before starting another one
                problems += finish(pages, running.pop(0), records)
            pages[path.stem] = page_factory()
            start_notebook(pages[path.stem], server, path)
            running.append(path.stem)
        for stem in running:
            problems += finish(pages, stem, records)
        for stem, page in pages.items():
            spec = INTERACTIONS.get(stem[:2])
            if spec is not None and not any(p.startswith(f"{stem}:") for p in problems):
                with about(stem):
                    change, found = interact(page, stem, spec, tmp_path / f"{stem}-changed.png")
                records[stem].update(change)
                problems += found + [f"{stem} after the change: {e}" for e in bs.page_errors(page)]
        bs.shutdown_kernels(next(iter(pages.values())))
    finally:
        server.stop()
    problems += page_factory.problems
    print_latencies(records)
    assert not problems, "\n".join(problems)
    write_latencies(records)
    missing = [s for s in records if s[:2] in INTERACTIONS and "latency_s" not in records[s]]
    assert not missing, f"no latency measured for {missing}"


def test_demo_in_voila(page_factory: Any, tmp_path: Path) -> None:
    """``kdlab demo 02``: the Voilà app shows prose, figures and widgets but no code, and the p_thr slider works."""
    source = resolve_notebook(NOTEBOOKS, "02")
    (notebook,) = bs.copy_notebooks([source], tmp_path / "root")
    server, page = open_demo(page_factory, notebook, tmp_path)
    try:
        page.locator(bs.MARKER).first.wait_for(state="attached", timeout=120_000)  # the widgets have drawn
        control = bs.find_control(page, re.compile(INTERACTIONS["02"].label, re.I))
        assert control is not None, "no p_thr slider in the demo page"
        before = bs.cell_state(bs.control_cell(control))
        latency = bs.timed_change(page, control)
        after = bs.cell_state(bs.control_cell(control))
        code = page.locator(".jp-CodeMirrorEditor, .jp-InputArea-editor").count()
        errors = bs.page_errors(page)
        bs.screenshot(page.locator("body"), tmp_path / "demo-02.png")
    finally:
        server.stop()
    print(f"[browser] kdlab demo 02: p_thr move → new figure {latency:.3f} s")
    assert not errors + page_factory.problems, errors + page_factory.problems
    assert code == 0, f"the demo page shows {code} code editors"
    assert before.images != after.images, "the figure did not change in the demo"


def open_demo(page_factory: Any, notebook: Path, home: Path, timeout_s: float = 120.0) -> tuple[Any, Any]:
    """A Voilà server on ``notebook`` and a page that has loaded it: Voilà sends the page once every cell has
    run (6–12 s with the other test worker busy on both cores). The server's log is printed if it has not."""
    server = bs.start_voila(notebook, home)
    page = page_factory()
    try:
        page.goto(server.url, wait_until="load", timeout=timeout_s * 1000)
    except Exception:  # playwright's TimeoutError
        print(f"[browser] the Voilà page did not load:\n{server.log_tail()}")
        server.stop()
        raise
    return server, page


def print_latencies(records: dict[str, dict]) -> None:
    for stem, rec in records.items():
        if "latency_s" in rec:
            print(f"[browser] {stem}: {rec['control']} {rec['from']} → {rec['to']}: {rec['latency_s']:.3f} s")


def write_latencies(records: dict[str, dict]) -> None:
    """``latency.json`` in the gallery (only after a run without problems)."""
    GALLERY.mkdir(parents=True, exist_ok=True)
    payload = {"measured": time.strftime("%Y-%m-%d"),
               "mode": f"KDLAB_SMOKE=1, JupyterLab, headless Chromium; run_all_s: {AT_ONCE} notebooks at once",
               "latency_s": "control moved → the widget's end-of-redraw marker shown (browser clock)",
               "notebooks": records}
    (GALLERY / "latency.json").write_text(json.dumps(payload, indent=1) + "\n")
