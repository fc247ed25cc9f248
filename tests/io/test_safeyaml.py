"""The manifest's YAML reader (io.safeyaml): plain data parsed exactly, everything else refused
with YAMLRefused saying what; and it is the only place that parses YAML."""

from __future__ import annotations

import re
from pathlib import Path

import modelpack


def test_manifest_reader_is_the_only_manifest_reader():
    """Guard against a second, unchecked YAML path creeping in: only safeyaml parses YAML."""
    package = Path(modelpack.__file__).parent
    loaders = re.compile(r"(?<![\w.])yaml\.(safe_load|load|full_load|unsafe_load|compose|parse)\b|CSafeLoader\(")
    offenders = [
        f"{path.name}:{number}"
        for path in package.rglob("*.py") if path.name != "safeyaml.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if loaders.search(line)
    ]
    assert offenders == []
