"""Real-browser helpers for tests/test_browser.py: a throw-away JupyterLab (or Voilà) server and Playwright steps.

The server is started with :mod:`kdlab.lab.jupyter` (the code behind ``kdlab lab`` / ``kdlab demo``) on
127.0.0.1 and a free port, with an empty token, temporary Jupyter config/runtime/IPython folders and
``KDLAB_SMOKE=1``. The browser is the system Chromium (``apt-get install -y chromium``) driven by the PyPI
``playwright`` package; ``playwright install`` is never needed.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdlab.env.browser import CHROMIUM, INSTALL_HINT
from kdlab.lab.jupyter import lab_command, server_env, voila_command
from kdlab.widgets.common import MARKER_CLASS

MARKER = f".{MARKER_CLASS}"  # the invisible element every widget shows after it has drawn (widgets.common.show)
GALLERY_MAX_BYTES = 200_000

# JupyterLab user settings: no news/update toasts over the screenshots, every cell kept in the DOM.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A running Jupyter server (``kind`` ``lab`` or ``voila``) and its log file."""

    proc: subprocess.Popen
    url: str
    log: Path
    kind: str

    def log_tail(self, n: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def isolated_env(home: Path) -> dict[str, str]:
    """The server's environment: smoke mode, one thread, Jupyter/IPython state under ``home``."""
    env = server_env(smoke=True)
    for var, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_RUNTIME_DIR", "runtime"),
                     ("IPYTHONDIR", "ipython"), ("JUPYTER_DATA_DIR", "data")):
        env[var] = str(home / sub)
        (home / sub).mkdir(parents=True, exist_ok=True)
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"})
    env.pop("MPLBACKEND", None)  # the notebooks choose `%matplotlib inline`
    settings = home / "config" / "lab" / "user-settings"
    for rel, value in LAB_SETTINGS.items():
        path = settings / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    return env


def copy_notebooks(sources: list[Path], root: Path) -> list[Path]:
    """Copies of the notebooks in the server's root folder (the originals stay untouched)."""
    root.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy2(p, root / p.name)) for p in sources]


def start_lab(root: Path, home: Path, timeout_s: float = 120.0) -> Server:
    """JupyterLab serving ``root`` with an empty token; returns once ``/api/status`` answers."""
    port = free_port()
    extra = ["--IdentityProvider.token=", "--ServerApp.password=", "--LabApp.expose_app_in_browser=True",
             f"--LabApp.workspaces_dir={home / 'workspaces'}"]
    cmd = lab_command(root, port=port, ip="127.0.0.1", open_browser=False, extra=extra)
    if "--allow-root" not in cmd:
        cmd.append("--allow-root")
    server = _spawn(cmd, isolated_env(home), home / "lab.log", f"http://127.0.0.1:{port}", "lab")
    _wait_http(server, "/api/status", timeout_s)
    return server


def start_voila(notebook: Path, home: Path, timeout_s: float = 120.0) -> Server:
    """Voilà showing one notebook (what ``kdlab demo`` runs); returns once its port accepts connections."""
    port = free_port()
    cmd = voila_command(notebook, port=port, ip="127.0.0.1", open_browser=False)
    server = _spawn(cmd, isolated_env(home), home / "voila.log", f"http://127.0.0.1:{port}", "voila")
    _wait_port(server, port, timeout_s)
    return server


def _spawn(cmd: list[str], env: dict[str, str], log: Path, url: str, kind: str) -> Server:
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=log.parent)
    return Server(proc, url, log, kind)


def _wait_http(server: Server, path: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.kind} server exited ({server.proc.returncode}):\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(server.url + path, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{server.kind} server did not answer {path} in {timeout_s:.0f} s:\n{server.log_tail()}")


def _wait_port(server: Server, port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.kind} server exited ({server.proc.returncode}):\n{server.log_tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{server.kind} server did not listen on {port} in {timeout_s:.0f} s:\n{server.log_tail()}")


# --- the page -----------------------------------------------------------------------------------------------

STDERR_SELECTOR = ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|^\w*(Error|Exception)\b", re.M)

# Records, in the page, when a node holding the marker (or a traceback) is added under `root` (a cell) after `t0`.
OBSERVE_JS = """(root, marker) => {
  const state = {t0: null, t1: null, error: null};
  const obs = new MutationObserver(muts => {
    if (state.t0 === null || state.t1 !== null || state.error !== null) return;
    for (const m of muts) for (const n of m.addedNodes) {
      const text = n.textContent || '';
      if (text.includes('Traceback')) { state.error = text.trim().split('\\n').pop(); return; }
      if (n.nodeType === 1 && (n.matches(marker) || n.querySelector(marker))) {
        state.t1 = performance.now(); return;
      }
    }
  });
  obs.observe(root, {childList: true, subtree: true, characterData: true});
  window.__kdlabUpdate = state;
}"""


@dataclass
class CellState:
    """What a widget's cell shows: its images (data URLs) and its texts without the controls' own."""

    images: list[str] = field(default_factory=list)
    text: str = ""


def cell_state(cell: Any) -> CellState:
    """The images and the displayed text (labels, HTML, printed outputs) of one cell's output area."""
    data = cell.evaluate("""(el) => {
      const out = el.querySelector('.jp-Cell-outputArea') || el;
      const imgs = [...out.querySelectorAll('img')].map(i => i.src);
      const texts = [...out.querySelectorAll('.widget-html-content, .widget-output .jp-RenderedText, '
                                             + '.widget-label:not(.widget-readout), .jp-RenderedHTMLCommon')]
                    .filter(n => !n.closest('.widget-slider, .widget-dropdown, .widget-toggle-buttons'))
                    .map(n => n.innerText.trim());
      return {images: imgs, text: texts.join('\\n')};
    }""")
    return CellState(images=data["images"], text=data["text"])


def page_errors(page: Any) -> list[str]:
    """Tracebacks shown anywhere in the page (cells and widget outputs; JupyterLab and Voilà render them as
    stderr), the last line of each. Warnings (stderr without a traceback) are not errors."""
    texts = page.locator(STDERR_SELECTOR).all_inner_texts()
    return [t.strip().splitlines()[-1] for t in texts if TRACEBACK.search(t)]


MODEL_ERRORS_JS = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const errs = [];
  for (const cell of panel.content.model.cells) {
    if (cell.type !== 'code') continue;
    for (const o of cell.outputs.toJSON()) if (o.output_type === 'error') errs.push(o.ename + ': ' + o.evalue);
  }
  return errs;
}"""

# Run All is over when no cell runs, the kernel is idle, and every code cell has run or one has failed (JupyterLab
# then drops the queued cells). A timer in the page notes when, on the page's clock.
RUN_ALL_JS = """(modelErrors) => {
  const errors = eval(modelErrors);
  const state = {t0: performance.now(), t1: null};
  window.__kdlabRunAll = state;
  const timer = setInterval(() => {
    const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(p => p.innerText.trim());
    const running = prompts.some(t => t === '[*]:');
    const allRun = prompts.length > 0 && prompts.every(t => /^\\[\\d+\\]:$/.test(t));
    const bar = document.querySelector('#jp-main-statusbar');
    const idle = bar !== null && /\\bIdle\\b/.test(bar.innerText);
    if (!running && idle && (allRun || errors().length > 0)) { state.t1 = performance.now(); clearInterval(timer); }
  }, 100);
}"""


def notebook_model_errors(page: Any) -> list[str]:
    """``ename: evalue`` of every error output in the current notebook's model (JupyterLab only)."""
    return page.evaluate(MODEL_ERRORS_JS)


def goto_notebook(page: Any, server: Server, name: str) -> None:
    """Start loading ``name`` in a fresh workspace (returns before JupyterLab has started)."""
    page.goto(f"{server.url}/lab/tree/{name}?reset", wait_until="domcontentloaded", timeout=120_000)


def wait_notebook_ready(page: Any, timeout_ms: float = 180_000) -> None:
    """Until the notebook's cells are shown and its kernel is idle."""
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=timeout_ms)
    page.evaluate("() => window.jupyterapp.shell.collapseLeft()")  # the notebook gets the page's width
    wait_kernel_idle(page, timeout_ms)


def wait_kernel_idle(page: Any, timeout_ms: float) -> None:
    page.wait_for_function("""() => {
      const bar = document.querySelector('#jp-main-statusbar');
      return bar && /\\bIdle\\b/.test(bar.innerText);
    }""", timeout=timeout_ms)


def click_run_all(page: Any) -> None:
    """Run > Run All Cells, through the menu (and start watching for its end, see ``RUN_ALL_JS``)."""
    page.evaluate(RUN_ALL_JS, MODEL_ERRORS_JS)
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator("[data-command='runmenu:run-all']").click()


def wait_run_all(page: Any, timeout_ms: float = 300_000) -> float:
    """Until Run All is over (every cell run, or one failed); its duration in seconds on the page's clock."""
    page.wait_for_function("() => window.__kdlabRunAll && window.__kdlabRunAll.t1 !== null", timeout=timeout_ms)
    return page.evaluate("() => (window.__kdlabRunAll.t1 - window.__kdlabRunAll.t0) / 1000")


def shutdown_kernels(page: Any) -> None:
    page.evaluate("() => window.jupyterapp.serviceManager.sessions.shutdownAll()")


# --- widgets -------------------------------------------------------------------------------------------------

CONTROL_SELECTOR = ".widget-slider, .widget-dropdown, .widget-toggle-buttons"


def find_control(scope: Any, label: re.Pattern[str] | None) -> Any:
    """The first slider / dropdown / toggle-buttons widget under ``scope`` whose description matches ``label``
    (any control when ``label`` is None); None when there is none."""
    for control in scope.locator(CONTROL_SELECTOR).all():
        desc = control.locator(".widget-label").first
        text = desc.inner_text().strip() if desc.count() else ""
        if label is None or label.search(text):
            return control
    return None


def control_cell(control: Any) -> Any:
    """The notebook cell (JupyterLab) or output cell (Voilà) holding a widget."""
    return control.locator("xpath=ancestor::div[contains(@class,'jp-Cell')][1]")


def describe(control: Any) -> str:
    desc = control.locator(".widget-label").first
    return desc.inner_text().strip() if desc.count() else "(no description)"


def change_control(page: Any, control: Any) -> None:
    """Move a slider to its other end (End, or Home when at the maximum), select the next dropdown option, or
    click the next toggle button: one value change, so one update."""
    classes = control.get_attribute("class") or ""
    if "widget-slider" in classes:
        handle = control.locator(".noUi-handle[role=slider]").first
        at_max = handle.get_attribute("aria-valuenow") == handle.get_attribute("aria-valuemax")
        handle.focus()
        page.keyboard.press("Home" if at_max else "End")
    elif "widget-dropdown" in classes:
        select = control.locator("select")
        values = select.locator("option").evaluate_all("(os) => os.map(o => o.value)")
        current = select.input_value()
        select.select_option(values[(values.index(current) + 1) % len(values)])
    else:
        buttons = control.locator("button")
        classes = [buttons.nth(i).get_attribute("class") or "" for i in range(buttons.count())]
        active = next(i for i, c in enumerate(classes) if "mod-active" in c)
        buttons.nth((active + 1) % buttons.count()).click()


def control_value(control: Any) -> str:
    classes = control.get_attribute("class") or ""
    if "widget-slider" in classes:
        return control.locator(".widget-readout").first.inner_text().strip()
    if "widget-dropdown" in classes:
        return control.locator("select").input_value()
    return control.locator("button.mod-active").first.inner_text()


def timed_change(page: Any, control: Any, timeout_ms: float = 60_000) -> float:
    """Change ``control`` and return the seconds until its cell shows a new update marker (browser clock);
    AssertionError when the cell shows a traceback instead."""
    cell = control_cell(control)
    cell.evaluate(OBSERVE_JS, MARKER)
    page.evaluate("() => { window.__kdlabUpdate.t0 = performance.now(); }")
    change_control(page, control)
    page.wait_for_function("() => window.__kdlabUpdate.t1 !== null || window.__kdlabUpdate.error !== null",
                           timeout=timeout_ms)
    state = page.evaluate("() => window.__kdlabUpdate")
    if state["error"] is not None:
        raise AssertionError(f"{describe(control)}: the widget failed: {state['error']}")
    return (state["t1"] - state["t0"]) / 1000.0


# --- screenshots ---------------------------------------------------------------------------------------------

def main_cell(page: Any) -> Any:
    """The cell to show in the gallery: the first one holding a widget control, else the last one with a figure."""
    cells = page.locator(".jp-Notebook .jp-Cell")
    with_control = cells.filter(has=page.locator(CONTROL_SELECTOR))
    if with_control.count():
        return with_control.first
    with_image = cells.filter(has=page.locator(".jp-OutputArea-output img"))
    return with_image.last if with_image.count() else None


def screenshot(element: Any, path: Path, max_bytes: int = GALLERY_MAX_BYTES) -> Path:
    """A PNG of one element, shrunk (fewer colours, then smaller) until it is under ``max_bytes``.

    Inside a JupyterLab notebook (which scrolls in its own panel) the element is scrolled to the panel's top
    and cut at the panel's bottom: what a user sees of a tall cell, without the surrounding Lab chrome."""
    path.parent.mkdir(parents=True, exist_ok=True)
    page = element.page
    scroller = element.locator("xpath=ancestor::div[contains(@class,'jp-WindowedPanel-outer')][1]")
    if scroller.count():
        element.evaluate("(el) => el.scrollIntoView({block: 'start'})")
        box, view = element.bounding_box(), scroller.bounding_box()
        top, bottom = max(box["y"], view["y"]), min(box["y"] + box["height"], view["y"] + view["height"])
        page.screenshot(path=str(path), animations="disabled",
                        clip={"x": box["x"], "y": top, "width": box["width"], "height": bottom - top})
    else:
        element.screenshot(path=str(path), animations="disabled")
    _shrink_png(path, max_bytes)
    return path


def _shrink_png(path: Path, max_bytes: int) -> None:
    from PIL import Image

    if path.stat().st_size <= max_bytes:
        return
    img = Image.open(path).convert("RGB")
    scale = 1.0
    while True:
        size = (max(1, int(img.width * scale)), max(1, int(img.height * scale)))
        small = img.resize(size, Image.LANCZOS) if scale < 1 else img
        small.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
        if path.stat().st_size <= max_bytes or scale < 0.3:
            return
        scale *= 0.8


def python_has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def environment_skip_reason() -> str | None:
    """Why the browser test cannot run here (no Chromium, no playwright), or None."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} not found ({INSTALL_HINT})"
    if not python_has("playwright"):
        return "the Python package playwright is not installed (pip install -e '.[dev]')"
    return None
