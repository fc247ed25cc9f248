"""BENCHMARKS.md is made of sections, one per script and setting: each run replaces its own."""

from __future__ import annotations

import re
from pathlib import Path

REPORT = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def write_section(heading: str, lines: list[str], report: Path = REPORT) -> None:
    """Replace the section that starts with ``heading`` by ``lines`` (or append it)."""
    text = report.read_text(encoding="utf-8")
    section = re.compile(re.escape(heading) + r".*?(?=\n## |\Z)", flags=re.S)
    body = "\n".join(lines).rstrip("\n")
    new = section.sub(lambda _: body, text) if section.search(text) else text.rstrip("\n") + "\n\n" + body
    report.write_text(new.rstrip("\n") + "\n", encoding="utf-8")
    print(f"updated {report}")
