"""The README's Python examples run as written (in order, sharing one namespace)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) >= 4
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for number, block in enumerate(blocks):
        if "net2 = modelpack.load" in block:  # the one-line teaser before any net exists
            continue
        exec(compile(block, f"README.md block {number}", "exec"), namespace)  # noqa: S102
    assert (tmp_path / "mlp.mpk").exists() and (tmp_path / "x-file").exists()
