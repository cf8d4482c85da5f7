"""Working copies of the notebooks for ``kdlab lab``: students run, edit and save these, never the tracked
``notebooks/`` (which are stored without outputs), so Run All and autosave leave ``git status`` clean.

A copy is made when it is missing. When a shipped notebook changes (a ``git pull``), its copy is replaced if
the student never edited its cells; an edited copy is kept and the report says how to get the new one. The
shipped and copied cell hashes live in ``.kdlab-copies.json`` beside the copies.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from kdlab.data.files import write_text_atomic
from kdlab.lab.jupyter import list_notebooks

STATE_NAME = ".kdlab-copies.json"


def cells_hash(path: Path) -> str:
    """A hash of a notebook's cell types and sources (not its outputs, counts or metadata)."""
    cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
    parts = [(c.get("cell_type"), "".join(c.get("source", ""))) for c in cells]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def sync_copies(shipped_dir: Path, work_dir: Path) -> list[str]:
    """Bring ``work_dir`` up to date with ``shipped_dir``'s numbered notebooks; one line per notable action."""
    work_dir.mkdir(parents=True, exist_ok=True)
    state_path = work_dir / STATE_NAME
    state = json.loads(state_path.read_text(encoding="utf-8")) if state_path.is_file() else {}
    report = []
    for src in list_notebooks(shipped_dir):
        line = _sync_one(src, work_dir / src.name, state)
        if line:
            report.append(line)
    write_text_atomic(state_path, json.dumps(state, indent=1) + "\n")
    return report


def _sync_one(src: Path, dst: Path, state: dict[str, dict[str, str]]) -> str | None:
    """Copy, refresh or keep one notebook; updates ``state`` and returns what happened when worth saying."""
    shipped = cells_hash(src)
    seen = state.get(src.name)
    if dst.is_file() and seen and seen["shipped"] == shipped:
        return None  # up to date (edited or not)
    if dst.is_file() and seen and cells_hash(dst) != seen["copied"]:
        return (f"{src.name} changed in {src.parent.name}/; your edited copy is kept "
                f"(delete {dst} to get the new one)")
    if dst.is_file() and not seen and cells_hash(dst) != shipped:
        state[src.name] = {"shipped": shipped, "copied": cells_hash(dst)}
        return f"{dst.name}: kept the copy already in {dst.parent} (it differs from {src.parent.name}/)"
    write_text_atomic(dst, src.read_text(encoding="utf-8"))
    state[src.name] = {"shipped": shipped, "copied": shipped}
    return f"{dst.name}: {'updated from' if seen else 'copied from'} {src.parent.name}/"
