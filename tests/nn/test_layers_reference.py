"""Every layer type against torch's outputs committed in tests/data (no torch needed).

``scripts/make_layer_refs.py`` wrote them with the pinned torch; each case states its own
tolerance: rtol 1e-5 and atol 1e-6 by default (float32 with a few roundings of slack); for
Dense and Conv2D, atol is 16 float32 roundoffs of the largest sum |x||w| (dot products summed
in another order); 1e-5 for normalisation (mean and variance summed differently). When
torch is installed, the last test recomputes the references and checks the files are current.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from modelpack.nn import registry

DATA = Path(__file__).resolve().parents[1] / "data"
INDEX = json.loads((DATA / "layer_refs.json").read_text(encoding="utf-8"))
ARRAYS = dict(np.load(DATA / "layer_refs.npz", allow_pickle=False))
CASES = {case["name"]: case for case in INDEX["cases"]}


@pytest.mark.parametrize("name", sorted(CASES))
def test_layer_matches_torch_reference(name):
    case = CASES[name]
    layer = registry.layer_type(case["type"]).build(dict(case["config"]))
    params = {key: ARRAYS[f"{name}/param/{key}"] for key in case["params"]}
    if params:
        layer.set_parameters(params, source=name)
    got = layer(ARRAYS[f"{name}/input"])
    want = ARRAYS[f"{name}/output"]
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=case["rtol"], atol=case["atol"])


def test_every_registered_leaf_layer_has_a_reference():
    covered = {case["type"] for case in CASES.values()}
    # recurrent layers and cells: MXNet's own outputs (test_rnn_mxnet.py; torch: test_rnn_torch.py)
    recurrent = json.loads((DATA / "mxnet-rnn" / "cases.json").read_text(encoding="utf-8"))["cases"]
    nodes = [case["architecture"] for case in recurrent]
    while nodes:
        node = nodes.pop()
        covered.add(node["type"])
        nodes.extend(node.get("children", {}).values())
    leaves = {name for name in registry.known_layers() if not registry.layer_type(name).container}
    assert leaves - covered <= {"Dropout"}  # identity at inference; its statistics: test_layers_behaviour


def test_references_are_current():
    pytest.importorskip("torch", reason="torch is not installed: cannot regenerate the references")
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    from make_layer_refs import cases

    fresh = {case["name"]: case for case in cases()}
    assert sorted(fresh) == sorted(CASES)
    for name, case in fresh.items():
        np.testing.assert_array_equal(case["input"], ARRAYS[f"{name}/input"])
        np.testing.assert_allclose(case["output"], ARRAYS[f"{name}/output"], rtol=1e-6, atol=1e-7)
