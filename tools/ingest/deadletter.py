"""The dead-letter file: every document that finally failed, with its reason, as JSON Lines.

One entry per line: ``{"origin", "reason", "id", "source", "attempts"}`` for a
document OpenSearch refused (``source`` is what was sent, so ``--resume`` can
send it again without the input), ``{"origin", "reason", "raw"}`` for an input
record that could not be read.

Why the run writes to ``<file>.partial`` and renames at the end: the file a
``--resume`` run retries must stay whole until that run has finished, or a
kill half-way would lose the dead letters not yet retried. A killed run leaves
its ``.partial`` beside the file; the next ``--resume`` reads both. Each line is
flushed as it is written, so a kill loses nothing written before it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tools.ingest.sources import Document, Malformed


class DeadLetters:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = path.with_name(path.name + ".partial")
        self.count = 0
        self._handle: Any = None

    def previous(self) -> list[dict[str, Any]]:
        """Entries of an earlier run (file, then a killed run's .partial); last one per key wins."""
        entries: dict[str, dict[str, Any]] = {}
        for path in (self.path, self.partial):
            if not path.exists():
                continue
            with path.open(encoding="utf-8") as handle:
                for line in handle:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue  # a line cut by a kill
                    if isinstance(entry, dict) and "reason" in entry:
                        entries[_key(entry)] = entry
        return list(entries.values())

    def open(self) -> None:
        self._handle = self.partial.open("w", encoding="utf-8")

    def _write(self, entry: dict[str, Any]) -> None:
        self._handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self._handle.flush()
        self.count += 1

    def document(self, doc: Document, reason: str) -> None:
        self._write({"origin": doc.origin, "id": doc.id, "reason": reason[:400],
                     "attempts": doc.attempts, "source": doc.source})  # fmt: skip

    def malformed(self, record: Malformed) -> None:
        self._write({"origin": record.origin, "reason": record.reason, "raw": record.raw})

    def carry(self, entry: dict[str, Any]) -> None:
        """An old entry this run could not retry (a malformed line whose file was not given)."""
        self._write(entry)

    def close(self, *, finished: bool) -> None:
        """Finished: the run's entries replace the file (no file when there are none)."""
        if self._handle is None:
            return
        self._handle.close()
        self._handle = None
        if not finished:
            return
        if self.count:
            os.replace(self.partial, self.path)
        else:
            self.partial.unlink(missing_ok=True)
            self.path.unlink(missing_ok=True)


def _key(entry: dict[str, Any]) -> str:
    return f"id:{entry['id']}" if "id" in entry else f"origin:{entry.get('origin')}"


def origin_file(origin: str) -> str:
    """The file part of ``file:line`` / ``file:row N``."""
    return origin.rsplit(":", 1)[0]
