"""``python -m modelpack demo``: the "file I/O" chapter's flow, end to end, narrated.

It saves and loads tensors, saves a custom network's parameters and loads them into a fresh
copy, then exports architecture *and* weights to one ``.mpk`` archive and loads it back with
no model code — checking each result, so a failure stops the demo with a non-zero exit.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable

import numpy as np

from .. import __version__, nn
from ..api import export, inspect, load, save
from ..errors import UnsupportedBlockError


class MLP(nn.Block):
    """The chapter's network: a hidden Dense layer of 256 ReLUs and a Dense output of 10."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.hidden = nn.Dense(256, activation="relu")
        self.output = nn.Dense(10)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.output(self.hidden(x))


# Run in a new interpreter: only modelpack and numpy are imported, never this module's MLP.
_FRESH_PROCESS = """
import sys, numpy as np, modelpack
net = modelpack.load(sys.argv[1])
print(bool((net(np.load(sys.argv[2])) == np.load(sys.argv[3])).all()))
"""


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise SystemExit(f"demo failed: {what}")
    print(f"   ok: {what}")


def run(workdir: str | None = None, say: Callable[[str], None] = print) -> None:
    """Run the demo in ``workdir`` (kept), or in a temporary folder removed afterwards."""
    if workdir is not None:
        os.makedirs(workdir, exist_ok=True)
        _run(workdir, say)
        say(f"\nDone. Files are in {workdir}")
        return
    with tempfile.TemporaryDirectory(prefix="modelpack-demo-") as folder:
        _run(folder, say)
    say("\nDone (the temporary files are removed; keep them with --workdir DIR).")


def _run(folder: str, say: Callable[[str], None]) -> None:
    path = lambda name: os.path.join(folder, name)  # noqa: E731
    say(f"modelpack {__version__} demo, writing to {folder}\n")

    say("1. Tensors: save and load one array, a list, a dict (paths used exactly as given)")
    x = np.arange(4)
    save(path("x-file"), x)
    _check(np.array_equal(load(path("x-file")), x), "x-file holds np.arange(4)")
    y = np.zeros(4)
    save(path("x-files"), [x, y])
    x2, y2 = load(path("x-files"))
    _check(np.array_equal(x2, x) and np.array_equal(y2, y), "x-files gives back the list [x, y]")
    save(path("mydict"), {"x": x, "y": y})
    _check(sorted(load(path("mydict"))) == ["x", "y"], "mydict gives back {'x': x, 'y': y}")

    say("\n2. Parameters: save a custom MLP's parameters, load them into a fresh MLP")
    net = MLP()
    net.initialize(seed=42)
    X = np.random.default_rng(0).uniform(size=(2, 20))
    Y = net(X)
    say(f"   {net!r}".replace("\n", "\n   "))
    net.save_parameters(path("mlp.params"))
    clone = MLP()
    clone.load_parameters(path("mlp.params"))
    _check(bool((clone(X) == Y).all()), "clone(X) == net(X), bitwise")
    try:
        export(net, path("refused.mpk"))
        raise SystemExit("demo failed: a hand-written forward must not be exported without a trace")
    except UnsupportedBlockError:
        say("   export(MLP) without an example is refused: its forward is Python code")

    say("\n3. Architecture and parameters in one archive: export, then load with no model code")
    export(net, path("mlp.mpk"), example=X, metadata={"description": "D2L file I/O MLP"})
    with zipfile.ZipFile(path("mlp.mpk")) as zf:
        members = ", ".join(f"{i.filename} ({i.file_size} B)" for i in zf.infolist())
    say(f"   traced MLP.forward into mlp.mpk, a zip of: {members}")
    manifest = inspect(path("mlp.mpk"))
    say(f"   manifest: format {manifest.format_version}, {len(manifest.weights)} tensors, "
        f"metadata {manifest.metadata}")
    restored = load(path("mlp.mpk"))
    say(f"   {restored!r}".replace("\n", "\n   "))
    _check(bool((restored(X) == Y).all()), "load('mlp.mpk')(X) == net(X), bitwise, no MLP class used")
    X64 = np.random.default_rng(1).uniform(size=(64, 20))
    _check(bool((restored(X64) == net(X64)).all()), "the loaded graph takes any batch size (64 here)")
    _check(list(restored.collect_params()) == list(net.collect_params()),
           "parameter names match the original class: " + ", ".join(restored.collect_params()))
    np.save(path("X.npy"), X)
    np.save(path("Y.npy"), Y)
    fresh = subprocess.run(
        [sys.executable, "-c", _FRESH_PROCESS, path("mlp.mpk"), path("X.npy"), path("Y.npy")],
        capture_output=True, text=True,
    )
    _check(fresh.returncode == 0 and fresh.stdout.strip() == "True",
           "a fresh Python process that never saw the MLP class loads mlp.mpk and gets Y bitwise")

    say("\n4. A network of registered layers needs no example at all")
    seq = nn.Sequential()
    seq.add(nn.Dense(256, activation="relu"), nn.Dense(10))
    seq.initialize(seed=42)
    Y = seq(X)
    export(seq, path("seq.mpk"))
    restored = load(path("seq.mpk"))
    say(f"   {restored!r}".replace("\n", "\n   "))
    _check(bool((restored(X) == Y).all()), "load('seq.mpk')(X) == seq(X), bitwise")
