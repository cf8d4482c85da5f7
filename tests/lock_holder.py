"""A separate process that holds a folder's lock (``kdlab.data.locks.folder_lock``), as a running ``kdlab``
command would, until it is killed."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

HOLD = """
import sys, time
from kdlab.data.locks import folder_lock
with folder_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


def hold_lock(folder: Path) -> subprocess.Popen:
    """Start the holder and return once it holds ``folder``'s lock."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def kill(proc: subprocess.Popen) -> None:
    """``kill -9`` the holder and reap it: its lock is left stale."""
    proc.send_signal(signal.SIGKILL)
    proc.wait()
