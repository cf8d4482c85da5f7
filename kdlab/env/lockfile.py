"""``requirements.lock``: the exact versions ``./run.sh`` installs, read back to compare with what is installed.

The lock is written by ``./run.sh lock`` (``uv pip compile --universal --generate-hashes``): one entry per
package and Python/platform range, ``name==version ; marker``, followed by its hashes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

LOCK_NAME = "requirements.lock"
_ENTRY = re.compile(r"^([A-Za-z0-9][^\s\\]*==[^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


@dataclass(frozen=True)
class LockEntry:
    """One pinned package of the lock: its canonical name, exact version and environment marker."""

    name: str
    version: str
    marker: str | None

    def applies(self) -> bool:
        """True when the entry's marker holds for this interpreter and platform."""
        return self.marker is None or Requirement(f"x ; {self.marker}").marker.evaluate()


def find_lock(start: Path | None = None) -> Path | None:
    """The lock of the source checkout kdlab runs from (an editable install), or None."""
    root = (start or Path(__file__)).resolve()
    for folder in [root, *root.parents]:
        if (folder / LOCK_NAME).is_file() and (folder / "pyproject.toml").is_file():
            return folder / LOCK_NAME
    return None


def read_lock(path: Path) -> list[LockEntry]:
    """Every ``name==version [; marker]`` entry of a lock file, in file order."""
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        m = _ENTRY.match(line)
        if m:
            name, version = m.group(1).split("==", 1)
            entries.append(LockEntry(canonicalize_name(name), version, m.group(2)))
    return entries


def locked_versions(path: Path) -> dict[str, str]:
    """Name → version of the entries that apply to this interpreter and platform."""
    return {e.name: e.version for e in read_lock(path) if e.applies()}


def installed_version(name: str) -> str | None:
    """The installed distribution's version, or None when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def differences(path: Path) -> list[tuple[str, str, str | None]]:
    """(name, locked version, installed version or None) of every applicable entry that differs."""
    out = []
    for name, want in locked_versions(path).items():
        have = installed_version(name)
        if have is None or base_version(have) != base_version(want):
            out.append((name, want, have))
    return out


def base_version(version: str) -> str:
    """``2.11.0+cu130`` → ``2.11.0``: the release without a local build label."""
    return version.split("+", 1)[0]
