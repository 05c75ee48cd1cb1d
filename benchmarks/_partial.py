"""Benchmark rows written as they finish, one JSON line each, so that a run cut short by a time
limit (the GPU machine's stages have one) keeps what it measured. The first line is the report's
header; the finished run writes its full JSON and removes the partial file."""

from __future__ import annotations

import json
from pathlib import Path


def start(path: Path, header: dict) -> None:
    path.write_text(json.dumps({"header": header}) + "\n")


def add_row(path: Path, row: dict) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(row) + "\n")
        fh.flush()


def read(path: Path) -> dict:
    """The report so far: the header's fields, the rows written, and ``"partial": True``."""
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {**lines[0]["header"], "rows": lines[1:], "partial": True}
