"""``kdlab lab``: JupyterLab on working copies of the project's notebooks (``runs/lab/``; the tracked
``notebooks/`` stay without outputs), with this environment as the ``python3`` kernel.

Examples::

    ./run.sh lab
    kdlab lab --port 8890 --no-browser
    KDLAB_SMOKE=1 kdlab lab          # every notebook in its quick smoke mode (or: kdlab lab --smoke)
    kdlab lab --in-place             # edit the tracked notebooks themselves (clear outputs before committing)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kdlab.lab.jupyter import (
    add_server_arguments,
    exec_server,
    lab_command,
    notebooks_dir,
    require_modules,
    server_env,
)
from kdlab.lab.workcopy import sync_copies


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_server_arguments(parser, "8888 or the next free", "the notebooks")
    parser.add_argument("--workdir", default=None,
                        help="folder of the working copies (default: runs/lab/ beside the notebooks folder)")
    parser.add_argument("--in-place", action="store_true",
                        help="serve the notebooks folder itself (outputs you save land in it)")


def main(args: argparse.Namespace) -> int:
    """Check the folder and packages, refresh the working copies, then become the JupyterLab server (this
    process is replaced)."""
    shipped = notebooks_dir(args.notebooks)
    require_modules("jupyterlab", "ipykernel", "ipywidgets")
    root = shipped if args.in_place else Path(args.workdir or shipped.parent / "runs" / "lab").resolve()
    if not args.in_place:
        for line in sync_copies(shipped, root):
            print(f"[kdlab lab] {line}")
        print(f"[kdlab lab] serving working copies in {root} ({shipped} stays as shipped; --in-place edits it)",
              flush=True)
    cmd = lab_command(root, port=args.port, ip=args.ip, open_browser=not args.no_browser)
    exec_server(cmd, server_env(smoke=args.smoke))
