"""Manifests that cost the most to read within the limits: an architecture of more layers or
graph nodes than ``max_architecture_nodes`` is refused before any of it is validated, and
the worst manifest the default limits admit reads in under 2 s of CPU
(``bench/manifest_worst.py``)."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import pytest
from craft import archive, stored_zip
from harness import refused

import modelpack
from modelpack import Limits
from modelpack.errors import LimitError

BENCH = Path(__file__).resolve().parents[2] / "bench" / "manifest_worst.py"


def _model(architecture: dict) -> bytes:
    text = json.dumps({"format": "modelpack", "format_version": "1.1", "producer": "x", "kind": "model",
                       "architecture": architecture, "weights": {}})
    return archive(text.encode(), stored_zip({}))


def _flatten_layers(count: int) -> dict:
    return {"type": "Sequential", "children": {str(i): {"type": "Flatten"} for i in range(count)}}


def _graph(count: int) -> dict:
    nodes = [{"op": "scalar", "outputs": ["v0"], "attrs": {"value": 1.5}}]
    nodes += [{"op": "negative", "inputs": [f"v{i}"], "outputs": [f"v{i + 1}"]} for i in range(count - 1)]
    return {"type": "Graph", "config": {"graph": {"inputs": [], "nodes": nodes,
                                                  "outputs": {"kind": "single", "values": [f"v{count - 1}"]}}}}


def test_too_many_layers(tmp_path):
    refused(tmp_path, _model(_flatten_layers(10_000)), LimitError,
            r"hostile\.mpk: manifest\.yaml: the architecture's layers and graph nodes \(10001\) is over the limit of 10000; "
            r"pass limits=modelpack\.Limits\(max_architecture_nodes=\.\.\.\) to allow more")


def test_too_many_graph_nodes(tmp_path):
    nested = {"type": "Sequential", "children": {"0": _graph(60), "1": {"type": "Sequential", "children": {"0": _graph(50)}}}}
    refused(tmp_path, _model(nested), LimitError, r"the architecture's layers and graph nodes \(114\) is over the limit of 100",
            limits=Limits(max_architecture_nodes=100))
    path = tmp_path / "fits.mpk"
    path.write_bytes(_model(nested))
    assert modelpack.load(path, limits=Limits(max_architecture_nodes=114))[0]() == -1.5


@pytest.mark.slow
def test_worst_manifest_within_the_default_limits_reads_in_under_two_seconds():
    spec = importlib.util.spec_from_file_location("manifest_worst", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    started = time.process_time()
    assert bench.main(["--repeat", "1"]) == 0
    assert time.process_time() - started < 60
