"""``kdlab demo NN``: classroom mode, one notebook as a clean app (prose, figures and widgets; no code).

The notebook runs in a fresh kernel under Voilà, which shows markdown and outputs and strips the code cells
(the page shows "Running cell i of n" until every cell has run). ``NN`` is the notebook's number (``02`` →
``notebooks/02_*.ipynb``), its name, or a path to an ``.ipynb``. Voilà is used rather than JupyterLab's simple
interface with hidden code cells: it hides every code cell without tagging them, runs the notebook itself on
page load (a student clicks nothing) and gives each visitor a fresh kernel. A kernel whose page has gone
(no connection) is shut down after ``CULL_IDLE_S`` idle seconds (Jupyter server's culler,
:func:`kdlab.lab.jupyter.cull_settings`), so page loads do not pile up kernels; ``--token`` makes the page
need Voilà's generated token.

Examples::

    ./run.sh demo 02
    kdlab demo 03 --port 8867 --no-browser
    kdlab demo 02 --smoke            # fewer utterances, smaller settings (KDLAB_SMOKE=1): starts faster
    kdlab demo 02 --ip 0.0.0.0 --token   # for a classroom network: the URL printed carries the token
"""

from __future__ import annotations

import argparse

from kdlab.lab.jupyter import (
    add_server_arguments,
    exec_server,
    notebooks_dir,
    require_modules,
    resolve_notebook,
    server_env,
    voila_command,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("notebook", help="notebook number (02), name (02_maskctc_masking) or path to an .ipynb")
    add_server_arguments(parser, "Voilà's, 8866 or the next free", "the notebook")
    parser.add_argument("--token", action="store_true",
                        help="require a generated token in the page's URL (printed; use it with --ip 0.0.0.0)")


def main(args: argparse.Namespace) -> int:
    """Resolve the notebook, then become the Voilà server (this process is replaced; it does not return)."""
    notebook = resolve_notebook(notebooks_dir(args.notebooks), args.notebook)
    require_modules("voila", "ipykernel", "ipywidgets")
    print(f"[kdlab demo] {notebook.name}: the page appears once every cell has run", flush=True)
    cmd = voila_command(notebook, port=args.port, ip=args.ip, open_browser=not args.no_browser, token=args.token)
    exec_server(cmd, server_env(smoke=args.smoke))
