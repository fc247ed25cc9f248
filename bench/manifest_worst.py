"""How long can the worst manifest the limits admit keep a reader busy? (spec/FORMAT.md §8)

    python bench/manifest_worst.py [--repeat 3] [--compare]

Builds archives whose manifests sit just inside the default ``Limits`` (bytes, YAML nodes,
architecture nodes) in every shape that is expensive to read — YAML scalars that need type
resolution, JSON refused only at its last byte, the most tensors, the
most layers, the largest traced graph, one huge string, and mixtures — and times
``modelpack.load`` on each until it returns or refuses (parse, version, hash, schema,
building the model). The target is under 2 s for every one. With ``--compare``, PyYAML's
own ``CSafeLoader`` (what a plain YAML reader would use) parses the same text, for scale.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import time
from collections.abc import Callable, Iterator

import yaml

import modelpack
from modelpack.errors import ModelpackError
from modelpack.format.container import MANIFEST_HASH_PREFIX
from modelpack.io.limits import DEFAULT_LIMITS
from modelpack.io.safeyaml import YAML_NODE_COST

TARGET_SECONDS = 2.0
_SHA = "0" * 64
_MARGIN = 64  # nodes left for the fixed fields around the bulk of each manifest


def _archive(manifest: str) -> bytes:
    """An archive of this manifest (hash in the comment) and an empty weight bundle."""
    import hashlib
    import zipfile

    raw = manifest.encode("utf-8")
    bundle = io.BytesIO()
    zipfile.ZipFile(bundle, "w").close()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("manifest.yaml", raw)
        archive.writestr("weights.npz", bundle.getvalue())
        archive.comment = MANIFEST_HASH_PREFIX + hashlib.sha256(raw).hexdigest().encode()
    return out.getvalue()


_YAML_HEAD = (
    "format: modelpack\nformat_version: '1.1'\nproducer: worst\nkind: tensors\nlayout: dict\nweights: {}\n"
)


def _json(body: str, kind: str = "tensors") -> str:
    layout = '"layout": "dict", ' if kind == "tensors" else ""
    head = f'"format": "modelpack", "format_version": "1.1", "producer": "worst", "kind": "{kind}"'
    return f"{{{head}, {layout}{body}}}"


def _tensors(count: int) -> str:
    entry = f'{{"dtype": "float32", "shape": [1], "sha256": "{_SHA}"}}'
    return ", ".join(f'"t{i}": {entry}' for i in range(count))


def _layers(count: int) -> str:
    children = ", ".join(f'"{i}": {{"type": "Flatten"}}' for i in range(count))
    return f'"architecture": {{"type": "Sequential", "children": {{{children}}}}}'


def _graph(count: int) -> str:
    nodes = [{"op": "scalar", "outputs": ["v0"], "attrs": {"value": 1.5}}]
    nodes += [{"op": "add", "inputs": [f"v{i}", f"v{i}"], "outputs": [f"v{i + 1}"]} for i in range(count - 1)]
    graph = {"inputs": [], "nodes": nodes, "outputs": {"kind": "single", "values": [f"v{count - 1}"]}}
    return '"architecture": ' + json.dumps({"type": "Graph", "config": {"graph": graph}})


def candidates() -> Iterator[tuple[str, str]]:
    """(what, manifest text) for each shape of worst case, sized from the default limits."""
    limits = DEFAULT_LIMITS
    nodes = limits.max_manifest_nodes - _MARGIN
    yaml_nodes = limits.max_manifest_nodes // YAML_NODE_COST - _MARGIN
    layers = limits.max_architecture_nodes - 2
    pairs = "".join(f"  k{i}: v\n" for i in range(yaml_nodes // 2))
    yield "YAML: metadata pairs", _YAML_HEAD + "metadata:\n" + pairs
    yield "YAML: floats to resolve", _YAML_HEAD + "metadata: [" + ", ".join(["1.5"] * yaml_nodes) + "]\n"
    yield "YAML: words to resolve", _YAML_HEAD + "metadata: [" + ", ".join(["1x"] * yaml_nodes) + "]\n"
    yield "YAML: empty mappings", _YAML_HEAD + "metadata: [" + ", ".join(["{}"] * yaml_nodes) + "]\n"
    doubt = ", ".join(["1.5"] * nodes)
    yield "JSON refused at its last byte (1e5)", _json(f'"weights": {{}}, "metadata": [{doubt}], "x": 1e5')
    yield "JSON: tensors", _json(f'"weights": {{{_tensors(nodes // 9)}}}')  # 9 nodes each
    pairs = ", ".join(f'"k{i}": "v"' for i in range(nodes // 2))
    yield "JSON: metadata pairs", _json(f'"weights": {{}}, "metadata": {{{pairs}}}')
    yield "JSON: Sequential of Flatten layers", _json(f'{_layers(layers)}, "weights": {{}}', "model")
    yield "JSON: traced graph", _json(f'{_graph(layers)}, "weights": {{}}', "model")
    big = "x" * (limits.max_manifest_bytes - 4096)
    yield "JSON: one huge string", _json(f'"weights": {{}}, "metadata": {{"k": "{big}"}}')
    yield "YAML: one huge string", _YAML_HEAD + f"metadata:\n  k: {big}\n"
    rest = nodes - 12 * layers  # a graph node takes about 12 nodes of text
    mixed = f'{_graph(layers)}, "weights": {{{_tensors(rest // 9)}}}'
    yield "JSON: traced graph + tensors", _json(mixed, "model")


def _load(data: bytes) -> str:
    try:
        modelpack.load(io.BytesIO(data))
        return "loaded"
    except ModelpackError as exc:
        return type(exc).__name__


def _median(step: Callable[[], object], repeat: int) -> tuple[float, float, object]:
    """Median wall and CPU seconds (CPU time does not count other processes' load)."""
    walls, cpus, result = [], [], None
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = step()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--compare", action="store_true", help="also time PyYAML's CSafeLoader on each text")
    args = parser.parse_args(argv)
    limits = DEFAULT_LIMITS
    print(f"default limits: {limits.max_manifest_bytes} bytes, {limits.max_manifest_nodes} nodes "
          f"({limits.max_manifest_nodes // YAML_NODE_COST} outside the JSON subset), "
          f"{limits.max_architecture_nodes} layers and graph nodes; "
          f"{platform.python_implementation()} {platform.python_version()}, "
          f"PyYAML {yaml.__version__} (libyaml {'yes' if yaml.__with_libyaml__ else 'no'})\n")
    header = f"{'manifest':<36}{'MB':>6}  {'wall (s)':>8}  {'CPU (s)':>7}  {'CPU ÷ 2 s':>9}  outcome"
    print(header + ("    PyYAML CSafeLoader (s)" if args.compare else ""))
    worst = 0.0
    for what, text in candidates():
        data = _archive(text)
        wall, cpu, outcome = _median(lambda data=data: _load(data), args.repeat)
        worst = max(worst, cpu)
        line = f"{what:<36}{len(text) / 1e6:>6.1f}  {wall:>8.2f}  {cpu:>7.2f}  "
        line += f"{cpu / TARGET_SECONDS:>9.2f}  {outcome}"
        if args.compare:
            start = time.perf_counter()
            yaml.load(text, Loader=yaml.CSafeLoader)  # noqa: S506 - the safe loader, for scale
            line += f"    {time.perf_counter() - start:.2f}"
        print(line)
    print(f"\nworst: {worst:.2f} s of CPU (target: under {TARGET_SECONDS:.0f} s; wall time also counts "
          "whatever else the machine is running)")
    return 0 if worst < TARGET_SECONDS else 1


if __name__ == "__main__":
    raise SystemExit(main())
