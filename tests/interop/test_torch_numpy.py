"""numpy's values in torch.save files (checkpoints with np.float64 accuracies and np.array means):
read without numpy's pickle code, equal bit for bit to what torch.load makes of them; numpy
pickles that lie, or name anything but plain numbers, refused by name."""

from __future__ import annotations

import io
import os
import pickle
import sys
import zipfile

import numpy as np
import pytest
from torch_writer import (
    global_,
    integer,
    latin1,
    numpy_array,
    numpy_dtype,
    numpy_scalar,
    pickled,
    state_dict_pickle,
    tensor,
    text,
    torch_zip,
    tuple_,
)

from modelpack.errors import FormatError, LimitError, UnsupportedDtypeError
from modelpack.interop.torch import load, read_state_dict
from modelpack.io.limits import Limits

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "hostile"))
from harness import bounded  # noqa: E402  (the hostile tests' time and memory bound)


def _refused(tmp_path, data: bytes, error: type, fragment: str, **kwargs):
    path = tmp_path / "model.pt"
    path.write_bytes(data)
    _, caught = bounded(lambda: load(path, **kwargs))
    assert type(caught) is error, f"expected {error.__name__}, got {caught!r}"
    assert str(path) in str(caught)
    assert fragment in str(caught), str(caught)
    return caught


def _same(ours, theirs, torch, where: str = "") -> None:
    """``ours`` (modelpack's reading) is ``theirs`` (torch.load's), bit for bit, all the way down."""
    if isinstance(theirs, torch.Tensor):
        theirs = theirs.detach().contiguous().numpy()
    if isinstance(theirs, dict):
        assert isinstance(ours, dict) and list(ours) == list(theirs), where
        for key in theirs:
            _same(ours[key], theirs[key], torch, f"{where}.{key}")
    elif isinstance(theirs, (list, tuple)):
        assert type(ours) is type(theirs) and len(ours) == len(theirs), where
        for index, (mine, other) in enumerate(zip(ours, theirs, strict=True)):
            _same(mine, other, torch, f"{where}.{index}")
    elif isinstance(theirs, np.ndarray):  # modelpack's in this machine's byte order, the values the same
        assert isinstance(ours, np.ndarray) and ours.dtype == theirs.dtype.newbyteorder("="), where
        assert ours.shape == theirs.shape and ours.flags.f_contiguous == theirs.flags.f_contiguous, where
        assert ours.flags.writeable, where
        assert ours.tobytes(order="A") == theirs.astype(ours.dtype).tobytes(order="A"), where
    elif isinstance(theirs, np.generic):
        assert type(ours) is type(theirs) and ours.tobytes() == theirs.tobytes(), where
    else:
        assert type(ours) is type(theirs) and ours == theirs, where


def _checkpoint(torch):
    """What a training script saves: weights, optimizer state, and numpy values of every kind."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net(torch.randn(5, 3)).sum().backward()
    opt.step()
    scalars = {name: np.dtype(name).type(value) for name, value in (
        ("float64", 0.91), ("float32", -1.5), ("float16", 3.0), ("int64", 1200), ("int32", -7), ("int8", -128),
        ("uint8", 255), ("uint64", 2**64 - 1), ("complex64", 1 - 2j), ("complex128", 3.5j))}
    arrays = {
        "mean": np.array([0.485, 0.456, 0.406], dtype=np.float32),
        "fortran": np.asfortranarray(rng.standard_normal((3, 4))),
        "zero_d": np.array(3, np.int16), "empty": np.zeros((0, 3), np.float16),
        "big_endian": np.array([1.5, -2.0, np.nan], dtype=">f4"), "big_endian_int": np.arange(4, dtype=">i8"),
        "mask": np.array([[True, False], [False, True]]), "strided": rng.standard_normal((4, 6))[::2, 1::2],
        "c64": (rng.standard_normal(3) + 1j).astype(np.complex64), "u16": np.array([0, 65535], np.uint16),
    }
    return {"model": net.state_dict(), "epoch": 7, "best_acc": np.float64(0.91), "step": np.int64(1200),
            "flag": np.bool_(True), "scalars": scalars, "arrays": arrays, "optimizer": opt.state_dict(),
            "history": [np.float32(0.5), {"mean": arrays["mean"], "w": torch.ones(2)}, (np.int8(3), "text")]}


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_a_real_checkpoint_with_numpy_values_reads_as_torch_load_reads_it(tmp_path, protocol):
    """Protocol 2 is torch.save's; 4 spells bytes as bytes, 5 writes arrays with _frombuffer."""
    torch = pytest.importorskip("torch", reason="torch is not installed: real torch.save files cannot be made")
    path = tmp_path / "checkpoint.pt"
    torch.save(_checkpoint(torch), path, pickle_protocol=protocol)
    _same(load(path), torch.load(path, weights_only=False), torch)


def test_numpy_1_names_its_module_numpy_core(tmp_path):
    torch = pytest.importorskip("torch", reason="torch is not installed: real torch.save files cannot be made")
    path = tmp_path / "numpy2.pt"
    torch.save({"acc": np.float64(0.25), "mean": np.arange(3, dtype=np.float32), "w": torch.ones(2)}, path)
    with zipfile.ZipFile(path) as original:
        members = {info.filename: original.read(info) for info in original.infolist()}
    pickle_name = next(name for name in members if name.endswith("/data.pkl"))
    assert b"numpy._core.multiarray" in members[pickle_name]
    members[pickle_name] = members[pickle_name].replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as rewritten:
        for name, data in members.items():
            rewritten.writestr(name, data)
    numpy1 = tmp_path / "numpy1.pt"
    numpy1.write_bytes(buffer.getvalue())
    _same(load(numpy1), torch.load(numpy1, weights_only=False), torch)  # numpy 2 still reads numpy 1's name


def test_torch_reads_what_the_test_writer_writes():
    torch = pytest.importorskip("torch", reason="torch is not installed: the test writer is not checked against torch.load")
    values = {"s": numpy_scalar("f8", "<", np.float64(0.75).tobytes()),
              "a": numpy_array((2, 3), "i4", ">", np.arange(6, dtype=">i4").reshape(2, 3).tobytes(order="F"), fortran=True)}
    buffer = io.BytesIO(torch_zip(state_dict_pickle(values), {}))
    loaded = torch.load(buffer, weights_only=False)
    assert loaded["s"] == 0.75 and type(loaded["s"]) is np.float64
    np.testing.assert_array_equal(loaded["a"], np.arange(6).reshape(2, 3))
    assert loaded["a"].flags.f_contiguous


def test_read_state_dict_keeps_numpy_arrays_and_refuses_numpy_scalars_as_it_refuses_ints(tmp_path):
    """numpy arrays are arrays: a flat dict of tensors and arrays is a state_dict; a numpy
    scalar beside them is no more a named tensor than an int."""
    entries = {"w": tensor("FloatStorage", "0", 2, 0, (2,), (1,)),
               "mean": numpy_array((3,), "f4", "<", np.arange(3, dtype=np.float32).tobytes())}
    path = tmp_path / "sd.pt"
    path.write_bytes(torch_zip(state_dict_pickle(entries), {"0": np.ones(2, np.float32).tobytes()}))
    loaded = read_state_dict(path)
    assert list(loaded) == ["w", "mean"] and loaded["mean"].tolist() == [0, 1, 2]
    with_scalar = {**entries, "acc": numpy_scalar("f8", "<", np.float64(0.5).tobytes())}
    path.write_bytes(torch_zip(state_dict_pickle(with_scalar), {"0": np.ones(2, np.float32).tobytes()}))
    with pytest.raises(FormatError, match=r"entries that are not named tensors \('acc': float64\)"):
        read_state_dict(path)


# -- numpy pickles that lie or name more than plain numbers ------------------------------------


def test_raw_bytes_that_are_not_the_shape_s(tmp_path):
    data = torch_zip(pickled(numpy_array((3,), "f4", "<", b"\0" * 8)), {})
    _refused(tmp_path, data, FormatError, "a numpy float32 array of shape (3,) is 12 bytes; its data is 8 bytes")


def test_a_scalar_of_the_wrong_size(tmp_path):
    data = torch_zip(pickled(numpy_scalar("f8", "<", b"\0" * 4)), {})
    _refused(tmp_path, data, FormatError, "a numpy float64 scalar is made of 4 bytes, not its 8 bytes")


@pytest.mark.parametrize("shape", [(-1,), (2, -3), (1,) * 65])
def test_a_malformed_shape(tmp_path, shape):
    data = torch_zip(pickled(numpy_array(shape, "f4", "<", b"")), {})
    _refused(tmp_path, data, FormatError, "a shape is at most 64 sizes, each 0 or more")


def test_a_huge_shape_is_a_limit_before_anything_is_allocated(tmp_path):
    data = torch_zip(pickled(numpy_array((1_000_000, 1_000_000), "f8", "<", b"\0" * 8)), {})
    caught = _refused(tmp_path, data, LimitError, "the tensors' total size with a numpy array of shape (1000000, 1000000)")
    assert "max_total_bytes" in str(caught)


def test_arrays_are_counted_against_the_total(tmp_path):
    raw = np.ones(100, np.float32).tobytes()
    data = torch_zip(pickled(numpy_array((100,), "f4", "<", raw)), {})
    _refused(tmp_path, data, LimitError, "with a numpy array of shape (100,)", limits=Limits(max_total_bytes=800))
    path = tmp_path / "fits.pt"
    path.write_bytes(data)  # the tag b'b' and 400 bytes spelled as text made bytes, then the 400-byte array
    assert load(path, limits=Limits(max_total_bytes=801)).shape == (100,)


def test_a_text_encoded_again_and_again_is_counted(tmp_path):
    """A memoised text, encoded many times, costs its size each time: counted, then refused."""
    encode = global_("_codecs", "encode") + b"h\x00" + text("latin1") + b"\x86R"
    data = torch_zip(b"\x80\x02(" + text("x" * 1000) + b"q\x00" + encode * 100 + b"l.", {})
    _refused(tmp_path, data, LimitError, "with bytes a pickle spells as text", limits=Limits(max_total_bytes=50_000))


def test_an_object_array_is_refused_by_name_and_nothing_is_unpickled(tmp_path):
    data = torch_zip(pickle.dumps({"o": np.array([1, "a"], dtype=object)}, protocol=2), {})
    _refused(tmp_path, data, UnsupportedDtypeError, "a numpy value of dtype 'O8' (Python objects, which are never unpickled) is not read")


@pytest.mark.parametrize(("value", "code"), [(np.array(["ab"]), "'U2'"), (np.zeros(2, dtype=[("a", "<i4")]), "'V4'"),
                                             (np.datetime64("2024-01-01"), "'M8'"), (np.longdouble(1), "'f16'")])
def test_other_dtypes_than_plain_numbers_are_refused_by_name(tmp_path, value, code):
    data = torch_zip(pickle.dumps(value, protocol=2), {})
    _refused(tmp_path, data, UnsupportedDtypeError, f"a numpy value of dtype {code} (not a plain number) is not read")


def test_codecs_encode_with_another_encoding(tmp_path):
    data = torch_zip(pickled(numpy_array((1,), "u1", "|", b"\x01", encoding="utf-8")), {})
    _refused(tmp_path, data, FormatError, "_codecs.encode is read only as encode(text, 'latin1') (numpy's bytes); "
                                          "found encode('b', 'utf-8')")


def test_reconstruct_of_another_class(tmp_path):
    data = torch_zip(pickled(numpy_array((1,), "u1", "|", b"\x01", cls=("collections", "OrderedDict"))), {})
    _refused(tmp_path, data, FormatError, "numpy's _reconstruct is called with collections.OrderedDict, (0,), b'b'")


def test_bytes_may_be_made_only_empty(tmp_path):
    data = torch_zip(pickled(global_("__builtin__", "bytes") + integer(10**9) + b"\x85R"), {})
    _refused(tmp_path, data, FormatError, "__builtin__.bytes called with arguments it does not take")


def test_a_dtype_state_that_is_not_a_plain_number_s(tmp_path):
    flags = tuple_(integer(3), text("|"), b"NNN", integer(-1), integer(-1), integer(63))
    data = torch_zip(pickled(numpy_dtype("u1", "|", state=flags)), {})
    _refused(tmp_path, data, FormatError, "numpy dtype uint8 has the state (3, '|', None, None, None, -1, -1, 63)")
    _refused(tmp_path, torch_zip(pickled(numpy_dtype("f4", "|")), {}), FormatError, "numpy dtype float32 has the byte order '|'")


def test_bool_values_with_other_bytes(tmp_path):
    data = torch_zip(pickled(numpy_array((2,), "b1", "|", b"\x01\x07")), {})
    _refused(tmp_path, data, FormatError, "a numpy bool value holds bytes other than 0 and 1")


def test_a_placeholder_used_before_its_build_or_built_twice(tmp_path):
    reconstruct = (global_("numpy._core.multiarray", "_reconstruct") + global_("numpy", "ndarray") + integer(0) + b"\x85"
                   + latin1(b"b") + b"\x87R")
    _refused(tmp_path, torch_zip(pickled(reconstruct + b"\x85"), {}), FormatError,
             "a numpy array is used before BUILD gives its state")
    twice = numpy_dtype("f4", "<") + tuple_(integer(3), text("<"), b"NNN", integer(-1), integer(-1), integer(0)) + b"b"
    _refused(tmp_path, torch_zip(pickled(twice), {}), FormatError, "BUILD gives a numpy dtype its state a second time")


def test_frombuffer_in_an_unknown_order(tmp_path):
    call = (global_("numpy._core.numeric", "_frombuffer") + b"(" + latin1(b"\0" * 4) + numpy_dtype("f4", "<")
            + tuple_(integer(1)) + text("K") + b"tR")
    _refused(tmp_path, torch_zip(pickled(call), {}), FormatError, "a numpy array's order is 'K', not 'C' or 'F'")
