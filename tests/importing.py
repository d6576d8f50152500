"""What the importer tests share."""

from __future__ import annotations


def notes(imported) -> dict[str, str]:
    """An import's note messages by source key path (several on one key joined with ' | ')."""
    out: dict[str, str] = {}
    for note in imported.notes:
        out[note.path] = f"{out[note.path]} | {note.message}" if note.path in out else note.message
    return out
