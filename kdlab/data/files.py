"""Files: UTF-8 lines read with errors that name the file and line; atomic writes (temp file + rename)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def utf8_lines(path: str | Path, error: type[Exception] = ValueError) -> list[str]:
    """The lines of a UTF-8 text file (without line ends); a line that is not valid UTF-8 raises ``error``
    with a one-line message ``<path>:<line>: not valid UTF-8 (...)``."""
    path = Path(path)
    lines = []
    for lineno, raw in enumerate(path.read_bytes().splitlines(), 1):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as err:
            raise error(f"{path}:{lineno}: not valid UTF-8 ({err.reason} at byte {err.start} of the line: "
                        f"{raw[max(0, err.start - 10): err.start + 10]!r}); re-encode the file as UTF-8") \
                from None
    return lines


@contextlib.contextmanager
def atomic_file(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """Open a temp file beside ``path`` (``.<name>.<random>.tmp``); on a clean exit fsync it and
    ``os.replace`` it onto ``path``, on any error remove it.

    A crash at any point leaves either the previous file or the new one under ``path``, never a partial
    file. The file gets the mode the umask gives new files (e.g. 0644). Text modes write UTF-8.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # mode 0600
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`atomic_file`); returns ``path``."""
    with atomic_file(path) as f:
        f.write(text)
    return Path(path)


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
