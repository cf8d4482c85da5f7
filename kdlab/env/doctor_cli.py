"""``kdlab doctor``: the environment's self-check, run by ``./run.sh`` right after every install.

Examples::

    ./run.sh doctor
    kdlab doctor --browser      # also start headless Chromium through playwright once

One line per check (``ok``, ``warn``, ``FAIL``), then one summary line; the exit code is 1 when a check
failed (the summary repeats the first failure: what is broken and the fix), else 0.
"""

from __future__ import annotations

import argparse
import sys

from kdlab.env.checks import Check, run_checks

MARKS = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--browser", action="store_true",
                        help="also start headless Chromium through playwright and load a page")


def summary(results: list[Check]) -> str:
    """The closing line: the first failure, or how many checks passed."""
    failed = [c for c in results if c.status == "fail"]
    if failed:
        return f"kdlab doctor: {len(failed)} of {len(results)} checks failed; {failed[0].name}: {failed[0].detail}"
    warned = sum(c.status == "warn" for c in results)
    return f"kdlab doctor: {len(results) - warned} checks ok" + (f", {warned} warnings" if warned else "")


def main(args: argparse.Namespace) -> int:
    results = run_checks(launch_browser=args.browser)
    for c in results:
        print(f"{MARKS[c.status]} {c.name}: {c.detail}")
    line = summary(results)
    failed = any(c.status == "fail" for c in results)
    print(line, file=sys.stderr if failed else sys.stdout)
    return 1 if failed else 0
