"""The committed example archives of spec/examples/ still load and compute what they say.

These files are never regenerated for a released format version, so this is the test that
old archives stay readable: NAME.mpk are format 1.0, NAME-1.1.mpk format 1.1, NAME-1.2.mpk format
1.2 (which adds checkpoint-1.2.mpk), NAME-1.3.mpk format 1.3 (which adds tied-1.3.mpk),
NAME-1.5.mpk format 1.5 (every tensor's offset in the bundle recorded). Format 1.4 added only
sharded indexes and has no examples of its own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import modelpack

EXAMPLES = Path(__file__).resolve().parents[1] / "spec" / "examples"


VERSIONS = {"": "1.0", "-1.1": "1.1", "-1.2": "1.2", "-1.3": "1.3", "-1.5": "1.5"}  # archive name suffix -> format version


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


@pytest.mark.parametrize("version", ["1.3", "1.5"])
def test_tied_example_output(version):
    """Shared parameters (spec §3.1, 1.3): stored once, tied again on load."""
    net = modelpack.load(EXAMPLES / f"tied-{version}.mpk", integrity="sha256")
    assert net[1].weight is net[2].weight and net[1].bias is net[2].bias
    assert modelpack.inspect(EXAMPLES / f"tied-{version}.mpk").ties == {"2.weight": "1.weight", "2.bias": "1.bias"}
    x = np.load(EXAMPLES / "tied.input.npy", allow_pickle=False)
    expected = np.load(EXAMPLES / "tied.output.npy", allow_pickle=False)
    np.testing.assert_allclose(net(x), expected, rtol=1e-5, atol=1e-6)


def test_examples_have_the_version_their_name_says():
    paths = sorted(EXAMPLES.glob("*.mpk"))
    # mlp, cnn, tensors of every version; the traced graph from 1.1, the checkpoint from 1.2, tied from 1.3
    assert len(paths) == 3 * len(VERSIONS) + 4 + 3 + 2
    for path in paths:
        suffix = path.stem[len(path.stem.split("-")[0]):]
        assert modelpack.inspect(path).format_version == VERSIONS[suffix], path.name
        assert modelpack.verify(path).ok, path.name


@pytest.mark.parametrize("version", ["1.2", "1.5"])
def test_checkpoint_example(tmp_path, version):
    """A checkpoint (spec §11): its model loads alone, and it restores a run exactly."""
    import shutil

    import modelpack.random
    from modelpack import gluon, nn

    path = EXAMPLES / f"checkpoint-{version}.mpk"
    info = modelpack.inspect(path).checkpoint
    assert info is not None and info.step == 3 and info.trainer is not None
    assert info.trainer.optimizer == "adam" and set(info.trainer.update_counts.values()) == {3}
    assert info.data[0].position == 3 and list(info.rng) == ["noise"] and info.random.seed == 0
    assert info.state == {"epoch": 0, "history": [1.5, 1.25]}
    net = modelpack.load(path, integrity="sha256")
    assert isinstance(net, nn.Sequential) and len(net) == 3

    shutil.copy(path, tmp_path / "ckpt-0000000003.mpk")
    fresh = nn.Sequential()
    fresh.add(nn.Dense(8, activation="relu"), nn.Dropout(0.5), nn.Dense(3))
    fresh.initialize()
    trainer = gluon.Trainer(fresh.collect_params(), "adam")
    loader = gluon.data.DataLoader(gluon.data.ArrayDataset(np.zeros((10, 4), np.float32)), batch_size=2, shuffle=True)
    ckpt = modelpack.Checkpointer(tmp_path)
    assert ckpt.restore(fresh, trainer=trainer, rng={"noise": np.random.default_rng()}, data=loader) == 3
    assert ckpt.state["ema"].tolist() == [0.0, 1.0, 2.0] and len(list(loader)) == 2  # the pass's rest
    assert fresh[0].weight.data().tobytes() == net[0].weight.data().tobytes()
    assert modelpack.random.get_state()["seed"] == 0


@pytest.mark.parametrize("name", ["mlp", "cnn", "graph", "tied", "tensors", "checkpoint"])
def test_format_1_5_examples_record_every_offset(name):
    """Format 1.5 (spec §2.2 offset): each tensor records where its member starts in the bundle,
    the place the bundle's own directory gives, and a lazy open reads each tensor from there."""
    import io
    import zipfile

    path = EXAMPLES / f"{name}-1.5.mpk"
    weights = modelpack.inspect(path).weights
    with zipfile.ZipFile(path) as outer, zipfile.ZipFile(io.BytesIO(outer.read("weights.npz"))) as bundle:
        starts = {info.filename[: -len(".npy")]: info.header_offset for info in bundle.infolist()}
    assert {tensor: info.offset for tensor, info in weights.items()} == starts
    whole = modelpack.load(path) if name == "tensors" else None
    with modelpack.open(path, integrity="sha256") as archive:
        for tensor in weights:
            array = archive.get_tensor(tensor)
            if whole is not None:
                assert array.tobytes() == whole[tensor].tobytes()
