"""Reading locust's CSV files: the newest ``Aggregated`` row of a stats history it is still
writing, a stats file, and its numbers ("N/A" before the first answer)."""

from __future__ import annotations

import csv
from pathlib import Path


class HistoryTail:
    """The newest ``Aggregated`` row of a stats history CSV that locust is writing."""

    def __init__(self, path: Path) -> None:
        self.path, self.pos, self.header = path, 0, None
        self.last: dict[str, str] | None = None

    def poll(self) -> dict[str, str] | None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                data = f.read()
        except OSError:
            return self.last
        cut = data.rfind(b"\n")
        if cut < 0:
            return self.last
        self.pos += cut + 1
        for row in csv.reader(data[: cut + 1].decode().splitlines()):
            if self.header is None:
                self.header = row
            elif len(row) == len(self.header) and row[3] == "Aggregated":
                self.last = dict(zip(self.header, row, strict=True))
        return self.last


def read_stats(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    except OSError:
        return []


def num(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "", "N/A") else None
    except ValueError:
        return None
