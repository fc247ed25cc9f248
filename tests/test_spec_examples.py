"""The committed example archives of spec/examples/ still load and compute what they say.

These files are never regenerated for a released format version, so this is the test that
old archives stay readable: NAME.mpk are format 1.0, NAME-1.1.mpk format 1.1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import modelpack

EXAMPLES = Path(__file__).resolve().parents[1] / "spec" / "examples"


VERSIONS = {"": "1.0", "-1.1": "1.1"}  # archive name suffix -> format version


@pytest.mark.parametrize("suffix", sorted(VERSIONS))
@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_model_example_output(name, suffix):
    net = modelpack.load(EXAMPLES / f"{name}{suffix}.mpk", integrity="sha256")
    x = np.load(EXAMPLES / f"{name}.input.npy", allow_pickle=False)
    expected = np.load(EXAMPLES / f"{name}.output.npy", allow_pickle=False)
    # Stated tolerance: BLAS builds may round differently across machines.
    np.testing.assert_allclose(net(x), expected, rtol=1e-5, atol=1e-6)
    assert modelpack.inspect(EXAMPLES / f"{name}{suffix}.mpk").metadata == {"example": name}


@pytest.mark.parametrize("suffix", sorted(VERSIONS))
def test_tensor_example_values(suffix):
    tensors = modelpack.load(EXAMPLES / f"tensors{suffix}.mpk", integrity="sha256")
    assert list(tensors) == ["ids", "mask", "scale", "empty", "specials"]
    assert tensors["ids"].dtype == np.int64
    assert tensors["ids"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert tensors["mask"].tolist() == [True, False, True]
    assert tensors["scale"].dtype == np.float16 and tensors["scale"].shape == () and tensors["scale"] == 0.5
    assert tensors["empty"].shape == (0, 4) and tensors["empty"].dtype == np.float32
    specials = tensors["specials"]
    assert np.isnan(specials[0]) and specials[1] == 0 and np.signbit(specials[1])
    assert specials[2] == np.inf and specials[3] == -np.inf and specials[4] == 5e-324


def test_graph_example_output():
    """A traced custom Block (spec §3.3): a Graph over its children, run with no user class."""
    net = modelpack.load(EXAMPLES / "graph-1.1.mpk", integrity="sha256")
    assert type(net) is modelpack.nn.GraphBlock
    assert list(net.collect_params()) == [
        "body.weight", "body.bias", "norm.gamma", "norm.beta", "head.weight", "head.bias",
    ]
    x = np.load(EXAMPLES / "graph.input.npy", allow_pickle=False)
    expected = np.load(EXAMPLES / "graph.output.npy", allow_pickle=False)
    np.testing.assert_allclose(net(x), expected, rtol=1e-5, atol=1e-6)
    assert net(np.concatenate([x, x])).shape == (6, 3)  # the batch size is dynamic
    assert "#const0" in modelpack.inspect(EXAMPLES / "graph-1.1.mpk").weights


def test_examples_have_the_version_their_name_says():
    paths = sorted(EXAMPLES.glob("*.mpk"))
    assert len(paths) == 3 * len(VERSIONS) + 1  # + the traced graph, new in 1.1
    for path in paths:
        suffix = path.stem[len(path.stem.split("-")[0]):]
        assert modelpack.inspect(path).format_version == VERSIONS[suffix], path.name
        assert modelpack.verify(path).ok, path.name
