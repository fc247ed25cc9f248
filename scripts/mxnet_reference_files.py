"""What each MXNet reference script does around its cases, written once: check that the
MXNet it runs under is the one the references are pinned to, start from an empty folder,
and list what was written with the versions that wrote it.

Run only inside the MXNet virtual environment (see the scripts' docstrings).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import mxnet as mx
import numpy as onp

MXNET_VERSION = "1.9.1"


def start(out: Path) -> bool:
    """Whether this is the pinned MXNet; if so, ``out`` exists and holds no files (folders
    inside it belong to other scripts and stay)."""
    if mx.__version__ != MXNET_VERSION:
        print(f"expected mxnet {MXNET_VERSION}, found {mx.__version__}", file=sys.stderr)
        return False
    out.mkdir(parents=True, exist_ok=True)
    for path in out.iterdir():
        if path.is_file():
            path.unlink()
    return True


def write_manifest(out: Path) -> None:
    """``MANIFEST.json``: the MXNet and numpy versions, and every file in ``out`` (a folder
    in it is another script's)."""
    (out / "MANIFEST.json").write_text(json.dumps(
        {"mxnet": mx.__version__, "numpy": onp.__version__,
         "files": sorted(p.name for p in out.iterdir() if p.is_file() and p.name != "MANIFEST.json")},
        indent=1) + "\n")
