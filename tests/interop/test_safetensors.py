"""safetensors files read without safetensors (interop.safetensors): files the real package
writes come back bitwise (bf16 and float8 as torch's ``.float()``), a torch state_dict saved with
it loads into modelpack's layers, and each malformed header is refused naming the file."""

from __future__ import annotations

import io
import json
import os
import struct
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import modelpack
from modelpack import nn
from modelpack.errors import FileKindError, FormatError, LimitError, UnsupportedDtypeError
from modelpack.interop.safetensors import read_safetensors
from modelpack.io.limits import Limits
from modelpack.io.sniff import KINDS, is_safetensors, sniff

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "hostile"))
from harness import bounded  # noqa: E402  (the hostile tests' time and memory bound)


def _file(header: dict | bytes, data: bytes = b"") -> bytes:
    """A safetensors file by hand: the header's length, the header, the data."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def _entry(dtype: str, shape: list, begin: int, end: int) -> dict:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


# -- files the real package writes ------------------------------------------------------------


dtypes = st.sampled_from(["float32", "float64", "float16", "int64", "int32", "int16", "int8", "uint8", "bool",
                          "uint16", "uint32", "uint64"])


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.from_regex(r"[a-z][a-z0-9_.]{0,12}", fullmatch=True),
                       dtypes.flatmap(lambda d: hnp.arrays(d, hnp.array_shapes(min_dims=0, max_dims=4,
                                                                                min_side=0, max_side=5))),
                       max_size=5))
def test_numpy_save_file_comes_back_bitwise(tmp_path_factory, arrays):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    path = tmp_path_factory.mktemp("st") / "a.safetensors"
    safetensors_numpy.save_file(arrays, str(path), metadata={"format": "np", "epoch": "3"})
    loaded, metadata = read_safetensors(path)
    assert metadata == {"format": "np", "epoch": "3"}
    assert sorted(loaded) == sorted(arrays)
    for name, array in arrays.items():
        assert loaded[name].dtype == array.dtype and loaded[name].shape == array.shape, name
        assert loaded[name].tobytes() == array.tobytes(), name
        assert loaded[name].flags.writeable and loaded[name].dtype.isnative


def test_torch_save_file_with_bf16_and_float8_comes_back_as_torch_widens_them(tmp_path):
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    torch.manual_seed(0)
    tensors = {"w": torch.randn(3, 4), "b": torch.randn(7).to(torch.bfloat16), "i": torch.arange(6).reshape(2, 3),
               "e4": torch.randn(5).to(torch.float8_e4m3fn), "e5": torch.randn(5).to(torch.float8_e5m2),
               "h": torch.randn(2, 2).half(), "flag": torch.tensor([True, False])}
    path = tmp_path / "t.safetensors"
    safetensors_torch.save_file(tensors, str(path))
    loaded, metadata = read_safetensors(str(path))
    assert metadata == {}
    for name, tensor in tensors.items():
        expected = tensor.float() if name in ("b", "e4", "e5") else tensor
        assert loaded[name].dtype == expected.numpy().dtype, name
        assert loaded[name].tobytes() == expected.numpy().tobytes(), name


def test_header_order_and_a_file_object(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    data = safetensors_numpy.save({"z": np.ones(2, np.float32), "a": np.zeros(3, np.int8)})
    loaded, _ = read_safetensors(io.BytesIO(data))
    assert list(loaded) == list(json.loads(data[8:8 + struct.unpack("<Q", data[:8])[0]]))
    assert loaded["z"].tolist() == [1, 1] and loaded["a"].tolist() == [0, 0, 0]


def test_a_file_of_no_tensors(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    path = tmp_path / "empty.safetensors"
    safetensors_numpy.save_file({}, str(path))
    assert read_safetensors(path) == ({}, {})
    assert read_safetensors(io.BytesIO(_file({"__metadata__": None}))) == ({}, {})


def test_empty_tensors_may_share_an_offset():
    data = _file({"a": _entry("F32", [0], 0, 0), "b": _entry("F32", [2, 0], 0, 0), "c": _entry("U8", [1], 0, 1)},
                 b"\x07")
    loaded, _ = read_safetensors(io.BytesIO(data))
    assert loaded["a"].shape == (0,) and loaded["b"].shape == (2, 0) and loaded["c"].tolist() == [7]


def test_torch_layers_saved_with_safetensors_load_into_modelpack_layers(tmp_path):
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                                 torch.nn.Linear(4 * 5 * 5, 3)).eval()
    module[1].running_mean.uniform_(-1, 1)
    module[1].running_var.uniform_(0.5, 2)
    path = tmp_path / "model.safetensors"
    safetensors_torch.save_file(module.state_dict(), str(path))
    net = nn.Sequential()
    net.add(nn.Conv2D(4, 3, padding=1, in_channels=2), nn.BatchNorm(in_channels=4), nn.Flatten(),
            nn.Dense(3, in_units=100))
    net.load_parameters(str(path))
    x = np.random.default_rng(0).standard_normal((2, 2, 5, 5)).astype(np.float32)
    np.testing.assert_allclose(net(x), module(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-5)
    assert net[3].weight.data().tobytes() == module[3].weight.detach().numpy().tobytes()


def test_sniff_names_it_and_modelpack_load_points_to_the_readers(tmp_path):
    data = _file({"w": _entry("F32", [1], 0, 4)}, bytes(4))
    assert sniff(io.BytesIO(data)) is KINDS["safetensors"] and is_safetensors(io.BytesIO(data))
    assert not is_safetensors(io.BytesIO(b"PK\x03\x04" + bytes(20)))
    path = tmp_path / "w.safetensors"
    path.write_bytes(data)
    with pytest.raises(FileKindError, match=r"w\.safetensors is a safetensors file, not .*net\.load_parameters"
                                            r".*read_safetensors\(path\)"):
        modelpack.load(path)


# -- hostile files ----------------------------------------------------------------------------


def _refused(tmp_path, data: bytes, error: type, fragment: str, **kwargs):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(data)
    _, caught = bounded(lambda: read_safetensors(path, **kwargs))
    assert type(caught) is error, f"expected {error.__name__}, got {caught!r}"
    assert str(path) in str(caught) and fragment in str(caught), str(caught)
    return caught


_W = _entry("F32", [2], 0, 8)
HOSTILE = {
    "header-past-the-file": (struct.pack("<Q", 50) + b"{}", FormatError, "header length 50 reaches past"),
    "huge-header": (struct.pack("<Q", 2**63) + b"{}", FormatError, "over safetensors' limit"),
    "no-length": (b"\x02\x00", FormatError, "the file ends 6 bytes into reading the header length"),
    "not-utf8": (_file(b'{"\xff": 1}'), FormatError, "header is not UTF-8"),
    "not-json": (_file(b"{nope}"), FormatError, "header is not valid JSON"),
    "not-an-object-start": (_file(b" {}"), FormatError, "does not start with '{'"),
    "deep-nesting": (_file(b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"), FormatError, "not valid JSON"),
    "nan": (_file(b'{"w": {"dtype": "F32", "shape": [NaN], "data_offsets": [0, 0]}}'), FormatError,
            "not valid JSON"),
    "duplicate-tensor": (_file(b'{"w": {}, "w": {}}'), FormatError, "header names 'w' twice"),
    "duplicate-key": (_file(b'{"w": {"dtype": "F32", "dtype": "F32", "shape": [0], "data_offsets": [0, 0]}}'),
                      FormatError, "header names 'dtype' twice"),
    "missing-key": (_file({"w": {"dtype": "F32", "shape": [2]}}, bytes(8)), FormatError,
                    "tensor 'w' has keys ['dtype', 'shape']; a tensor has exactly"),
    "extra-key": (_file({"w": {**_W, "strides": [1]}}, bytes(8)), FormatError, "has keys ['data_offsets', 'dtype', "
                  "'shape', 'strides']"),
    "unknown-dtype": (_file({"w": _entry("F128", [1], 0, 16)}, bytes(16)), UnsupportedDtypeError,
                      "has dtype 'F128', not a dtype modelpack knows; modelpack reads BOOL, U8"),
    "unheld-dtype": (_file({"w": _entry("F8_E8M0", [1], 0, 1)}, bytes(1)), UnsupportedDtypeError,
                     "has dtype 'F8_E8M0', a dtype numpy cannot hold"),
    "dtype-not-a-name": (_file({"w": _entry(7, [1], 0, 1)}, bytes(1)), FormatError, "has dtype 7, not a name"),
    "negative-shape": (_file({"w": _entry("F32", [-2], 0, 8)}, bytes(8)), FormatError,
                       "has shape [-2], not a list of at most 64 non-negative integers"),
    "float-shape": (_file({"w": _entry("F32", [2.0], 0, 8)}, bytes(8)), FormatError, "has shape [2.0]"),
    "bool-shape": (_file({"w": _entry("F32", [True], 0, 4)}, bytes(4)), FormatError, "has shape [True]"),
    "deep-shape": (_file({"w": _entry("F32", [1] * 65, 0, 4)}, bytes(4)), FormatError, "at most 64"),
    "reversed-offsets": (_file({"w": _entry("F32", [0], 8, 0)}, bytes(8)), FormatError,
                         "data_offsets [8, 0], not [begin, end] with 0 <= begin <= end"),
    "offsets-outside": (_file({"w": _entry("F32", [2], 4, 12)}, bytes(8)), FormatError,
                        "tensor 'w' at data_offsets [4, 12] leaves bytes 0 to 4 unused"),
    "offsets-past-the-end": (_file({"w": _entry("F32", [2], 0, 8)}, bytes(4)), FormatError,
                             "tensors cover 8 bytes of data, but the file holds 4 after the header"),
    "overlap": (_file({"a": _entry("F32", [2], 0, 8), "b": _entry("F32", [1], 4, 8)}, bytes(8)), FormatError,
                "tensor 'b' at data_offsets [4, 8] overlaps the tensor before it"),
    "hole": (_file({"a": _entry("F32", [1], 0, 4), "b": _entry("F32", [1], 8, 12)}, bytes(12)), FormatError,
             "tensor 'b' at data_offsets [8, 12] leaves bytes 4 to 8 unused"),
    "trailing-bytes": (_file({"a": _entry("F32", [1], 0, 4)}, bytes(12)), FormatError,
                       "cover 4 bytes of data, but the file holds 12"),
    "span-mismatch": (_file({"w": _entry("F32", [3], 0, 8)}, bytes(8)), FormatError,
                      "tensor 'w' of shape (3,) and dtype F32 takes 12 bytes, but its data_offsets [0, 8] span 8"),
    "huge-shape": (_file({"w": _entry("F64", [2**40, 2**40], 0, 8)}, bytes(8)), FormatError, "span 8"),
    "bad-metadata": (_file({"__metadata__": {"a": 1}}), FormatError, "'__metadata__' is not a map of strings"),
    "bool-bytes": (_file({"w": _entry("BOOL", [2], 0, 2)}, b"\x01\x02"), FormatError,
                   "BOOL tensor 'w' holds bytes other than 0 and 1"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_files_are_refused_naming_the_file(tmp_path, case):
    data, error, fragment = HOSTILE[case]
    _refused(tmp_path, data, error, fragment)


def test_too_many_tensors(tmp_path):
    header = {f"t{i}": _entry("U8", [0], 0, 0) for i in range(5)}
    caught = _refused(tmp_path, _file(header), LimitError, "its number of tensors (5) is over the limit of 4",
                      limits=Limits(max_tensors=4))
    assert caught.limit == "max_tensors"


def test_total_bytes_count_widened_floats_before_allocation(tmp_path):
    data = _file({"w": _entry("BF16", [4], 0, 8)}, bytes(8))
    _refused(tmp_path, data, LimitError, "the tensors' total size (with 16- and 8-bit floats read as float32) (24)",
             limits=Limits(max_total_bytes=23))
    assert read_safetensors(io.BytesIO(data), limits=Limits(max_total_bytes=24))[0]["w"].dtype == np.float32


def test_the_header_is_bounded_by_the_manifest_limit(tmp_path):
    _refused(tmp_path, _file(b"{}" + b" " * 98), LimitError, "its header's size (100)",
             limits=Limits(max_manifest_bytes=99))
