"""Write the conformance vectors of spec/conformance/ and their index.

    python spec/conformance/make_conformance.py

Valid vectors go to ``valid/NAME/``: ``archive.mpk``, the expected tensors (``tensor-K.npy``,
in manifest order), and per run the inputs and expected outputs (``runK-inJ.npy``,
``runK-outJ.npy``), computed by loading the archive with modelpack. Invalid vectors go to
``invalid/NAME.mpk``. A vector whose files exist is never rewritten: committed vectors are the
readers' test data, and a changed writer must not silently change them. ``index.json`` is
rebuilt every time from the declarations and the files on disk. See README.md.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import invalid  # noqa: E402
import valid  # noqa: E402

import modelpack  # noqa: E402

TOLERANCES = {"float16": [1e-2, 1e-3], "float32": [2e-5, 1e-6], "float64": [1e-9, 1e-12]}
STAGES = {
    "open": "reading the manifest refuses it (modelpack.inspect)",
    "load": "the manifest reads; loading the model or its tensors refuses it",
    "sha256": "a load that checks every tensor's SHA-256 refuses it; a CRC-32 load accepts it",
    "verify": "only a full verification refuses it; a loader MAY accept it (FORMAT.md §7.2)",
}


def rel(path: Path) -> str:
    return path.relative_to(HERE).as_posix()


def save_npy(path: Path, array: Any) -> None:
    """An expected value: C order always, so readers need no Fortran-order support."""
    if not path.exists():
        np.save(path, np.array(array, order="C"), allow_pickle=False)


def write_valid(vector: valid.Valid) -> dict[str, Any]:
    folder = HERE / "valid" / vector.name
    archive = folder / "archive.mpk"
    if not archive.exists():
        folder.mkdir(parents=True, exist_ok=True)
        vector.write(archive)
        print(f"wrote {rel(archive)}")
    entry: dict[str, Any] = {"name": vector.name, "about": vector.about, "rules": vector.rules,
                             "archive": rel(archive)}
    with modelpack.open(archive) as opened:
        manifest = opened.manifest
        entry.update(kind=manifest.kind, format_version=manifest.format_version, metadata=manifest.metadata)
        if manifest.layout is not None:
            entry["layout"] = manifest.layout
        tensors = []
        for index, (name, info) in enumerate(manifest.weights.items()):
            path = folder / f"tensor-{index}.npy"
            save_npy(path, opened.get_tensor(name))
            data = np.load(path, allow_pickle=False)
            digest = hashlib.sha256(np.ascontiguousarray(data).reshape(-1).view(np.uint8).data).hexdigest()
            tensors.append({"name": name, "dtype": info.dtype, "shape": list(info.shape),
                            "sha256": digest, "file": rel(path)})
        entry["tensors"] = tensors
    if manifest.kind == "model":
        entry["covers"] = covers(manifest.architecture.model_dump(mode="json"))
    runs = []
    net = modelpack.load(archive) if vector.runs else None
    for k, run in enumerate(vector.runs):
        inputs = []
        for j, array in enumerate(run.inputs):
            path = folder / f"run{k}-in{j}.npy"
            save_npy(path, array)
            inputs.append(rel(path))
        record: dict[str, Any] = {"inputs": inputs}
        if run.error is not None:
            record["error"] = run.error
        else:
            record["outputs"] = write_outputs(folder, k, net(*[np.load(HERE / p) for p in inputs]))
            if vector.tolerance is not None:
                record["tolerance"] = vector.tolerance
        runs.append(record)
    entry["runs"] = runs
    return entry


def write_outputs(folder: Path, run: int, result: Any) -> dict[str, Any]:
    if isinstance(result, dict):
        kind, keys, values = "dict", list(result), list(result.values())
    elif isinstance(result, (tuple, list)):
        kind, keys, values = ("tuple" if isinstance(result, tuple) else "list"), None, list(result)
    else:
        kind, keys, values = "single", None, [result]
    files = []
    for j, value in enumerate(values):
        path = folder / f"run{run}-out{j}.npy"
        save_npy(path, value)
        files.append(rel(path))
    return {"kind": kind, "keys": keys, "values": files}


def covers(tree: dict[str, Any]) -> dict[str, list[str]]:
    """Layer types, ops and dtypes a model's architecture exercises."""
    layers, ops = set(), set()
    stack = [tree]
    while stack:
        node = stack.pop()
        layers.add(node["type"])
        stack.extend(node.get("children", {}).values())
        graph = node.get("config", {}).get("graph") if node["type"] == "Graph" else None
        for item in (graph or {}).get("nodes", []):
            ops.add(item["op"])
    return {"layers": sorted(layers), "ops": sorted(ops)}


def write_invalid(vector: invalid.Invalid) -> dict[str, Any]:
    path = HERE / "invalid" / f"{vector.name}.mpk"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(vector.make())
        print(f"wrote {rel(path)}")
    entry = {"name": vector.name, "about": vector.about, "rule": vector.rule, "stage": vector.stage,
             "error": vector.error, "archive": rel(path)}
    if vector.limits:
        entry["limits"] = vector.limits
    if vector.lazy:
        entry["lazy"] = vector.lazy
    return entry


def main() -> None:
    names = [v.name for v in valid.vectors()] + [v.name for v in invalid.vectors()]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise SystemExit(f"duplicate vector names: {sorted(duplicates)}")
    index = {
        "format_version": "1.5",  # the newest version a vector uses; each vector states its own
        "about": "Conformance vectors for spec/FORMAT.md; see README.md",
        "tolerances": TOLERANCES,
        "stages": STAGES,
        "valid": [write_valid(v) for v in valid.vectors()],
        "invalid": [write_invalid(v) for v in invalid.vectors()],
    }
    (HERE / "index.json").write_text(json.dumps(index, indent=1, ensure_ascii=True) + "\n")
    print(f"index.json: {len(index['valid'])} valid, {len(index['invalid'])} invalid")


if __name__ == "__main__":
    main()
