"""``kdlab lab``: JupyterLab on the project's notebooks, with this environment as the ``python3`` kernel.

Examples::

    ./run.sh lab
    kdlab lab --port 8890 --no-browser
    KDLAB_SMOKE=1 kdlab lab          # every notebook in its quick smoke mode (or: kdlab lab --smoke)
"""

from __future__ import annotations

import argparse

from kdlab.lab.jupyter import (
    add_server_arguments,
    exec_server,
    lab_command,
    notebooks_dir,
    require_modules,
    server_env,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_server_arguments(parser, "8888 or the next free", "the notebooks")


def main(args: argparse.Namespace) -> int:
    """Check the folder and packages, then become the JupyterLab server (this process is replaced)."""
    root = notebooks_dir(args.notebooks)
    require_modules("jupyterlab", "ipykernel", "ipywidgets")
    cmd = lab_command(root, port=args.port, ip=args.ip, open_browser=not args.no_browser)
    exec_server(cmd, server_env(smoke=args.smoke))
