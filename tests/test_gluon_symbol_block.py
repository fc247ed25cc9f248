"""``net.export(path)`` after ``hybridize()``, and ``gluon.SymbolBlock.imports`` of what Gluon
and modelpack export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelpack import gluon, nn, npx
from modelpack.errors import UsageError

MXNET = Path(__file__).parent / "data" / "mxnet"


class Custom(nn.Block):
    def __init__(self):
        super().__init__()
        self.dense = nn.Dense(3)

    def forward(self, x):
        return npx.relu(self.dense(x)) * 2


def test_a_hybridized_custom_block_exports_on_its_last_input_and_imports_back(tmp_path):
    net = Custom()
    net.initialize(seed=1)
    net.hybridize()
    x = np.random.default_rng(0).random((2, 4), dtype=np.float32)
    net(x)
    written = net.export(str(tmp_path / "custom"), epoch=3)
    assert written == str(tmp_path / "custom-0003.mpk")
    loaded = gluon.SymbolBlock.imports(written, ["data"])
    y = np.random.default_rng(1).random((5, 4), dtype=np.float32)  # another batch size
    np.testing.assert_array_equal(loaded(y), net(y))


def test_a_registered_network_exports_without_a_call(tmp_path):
    net = nn.Sequential()
    net.add(nn.Dense(3, in_units=4))
    net.initialize(seed=2)
    loaded = gluon.SymbolBlock.imports(net.export(str(tmp_path / "seq")), "data")
    x = np.ones((2, 4), dtype=np.float32)
    np.testing.assert_array_equal(loaded(x), net(x))


def test_export_of_a_custom_block_never_called_after_hybridize_names_the_fix(tmp_path):
    net = Custom()
    net.initialize()
    with pytest.raises(UsageError, match=r"call net.hybridize\(\), then net\(x\) once, then net.export\(path\)"):
        net.export(str(tmp_path / "c"))
    net.hybridize(active=True)
    net(np.ones((1, 4), dtype=np.float32))
    net.hybridize(active=False)  # forgets the inputs, as Gluon drops its cached graph
    with pytest.raises(UsageError, match="call net.hybridize"):
        net.export(str(tmp_path / "c"))


def test_imports_reads_a_gluon_export_without_mxnet():
    net = gluon.SymbolBlock.imports(MXNET / "cnn-symbol.json", ["data"], MXNET / "cnn-0000.params")
    x = np.load(MXNET / "cnn-input.npy")
    np.testing.assert_allclose(net(x), np.load(MXNET / "cnn-output.npy"), rtol=1e-5, atol=1e-5)


def test_imports_refuses_wrong_input_names_and_missing_files(tmp_path):
    arith = (MXNET / "arith-symbol.json", MXNET / "arith-0000.params")
    with pytest.raises(UsageError, match=r"the graph's inputs are \['data'\], not \['x'\]"):
        gluon.SymbolBlock.imports(arith[0], ["x"], arith[1])
    with pytest.raises(UsageError, match="needs the export's parameter file"):
        gluon.SymbolBlock.imports(arith[0], ["data"])
    with pytest.raises(UsageError, match="SymbolBlock.imports"):
        gluon.SymbolBlock()
