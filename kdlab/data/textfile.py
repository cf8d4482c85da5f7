"""Reading UTF-8 text files line by line with errors that name the file and line."""

from __future__ import annotations

from pathlib import Path


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
