"""torch.save files read without torch: real files give torch's arrays bit for bit; hostile
files are refused with the file named and nothing run. Most tests need no torch: their files
come from ``torch_writer`` (checked against torch.load where torch is installed)."""

from __future__ import annotations

import io
import os
import pickle
import re
import struct
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torch_writer import (
    global_,
    integer,
    state_dict_file,
    state_dict_pickle,
    tensor,
    tensor_v3,
    text,
    torch_zip,
    tuple_,
)

import modelpack
from modelpack import nn
from modelpack.errors import (
    FileKindError,
    FormatError,
    IntegrityError,
    LimitError,
    MissingParameterError,
    ModelpackError,
    ShapeMismatchError,
    UnsupportedDtypeError,
    UsageError,
)
from modelpack.interop.torch import load, read_state_dict
from modelpack.interop.widened import widened
from modelpack.io.limits import Limits

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "hostile"))
from harness import bounded  # noqa: E402  (the hostile tests' time and memory bound)


def _write(tmp_path, data: bytes, name: str = "model.pt"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _refused(tmp_path, data: bytes, error: type, fragment: str, **kwargs):
    path = _write(tmp_path, data)
    _, caught = bounded(lambda: load(path, **kwargs))
    assert type(caught) is error, f"expected {error.__name__}, got {caught!r}"
    assert str(path) in str(caught)
    assert fragment in str(caught), str(caught)
    return caught


# -- files that are fine -------------------------------------------------------------------


dtypes = st.sampled_from(["float32", "float64", "float16", "int64", "int32", "int16", "int8", "uint8", "bool",
                         "uint16", "uint32", "uint64"])


@settings(max_examples=60)
@given(st.dictionaries(st.from_regex(r"[a-z][a-z0-9_.]{0,12}", fullmatch=True),
                       dtypes.flatmap(lambda d: hnp.arrays(d, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5))),
                       max_size=5),
       st.booleans())
def test_written_arrays_come_back_bitwise(tmp_path_factory, arrays, big_endian):
    path = tmp_path_factory.mktemp("sd") / "sd.pt"
    path.write_bytes(state_dict_file(arrays, big_endian=big_endian))
    loaded = read_state_dict(path)
    assert list(loaded) == list(arrays)
    for name, array in arrays.items():
        assert loaded[name].dtype == array.dtype and loaded[name].shape == array.shape
        assert loaded[name].tobytes() == array.tobytes()


def test_views_share_and_strided_tensors_are_copied(tmp_path):
    storage = np.arange(12, dtype=np.float32)
    entries = {
        "whole": tensor("FloatStorage", "0", 12, 0, (3, 4), (4, 1)),
        "tail": tensor("FloatStorage", "0", 12, 4, (2, 4), (4, 1)),
        "transposed": tensor("FloatStorage", "0", 12, 0, (4, 3), (1, 4)),
        "broadcast": tensor("FloatStorage", "0", 12, 2, (2, 3), (0, 1)),
    }
    path = _write(tmp_path, torch_zip(state_dict_pickle(entries), {"0": storage.tobytes()}))
    loaded = read_state_dict(path)
    full = storage.reshape(3, 4)
    np.testing.assert_array_equal(loaded["whole"], full)
    np.testing.assert_array_equal(loaded["tail"], full[1:])
    np.testing.assert_array_equal(loaded["transposed"], full.T)
    np.testing.assert_array_equal(loaded["broadcast"], np.broadcast_to(storage[2:5], (2, 3)))


def test_load_gives_plain_values_and_read_state_dict_wants_tensors_only(tmp_path):
    body = (global_("collections", "OrderedDict") + b")R(" + text("model") + state_dict_pickle(
        {"w": tensor("FloatStorage", "0", 2, 0, (2,), (1,))})[2:-1] + text("epoch") + integer(3) + b"u.")
    path = _write(tmp_path, torch_zip(b"\x80\x02" + body, {"0": np.ones(2, np.float32).tobytes()}))
    loaded = load(path)
    assert loaded["epoch"] == 3 and loaded["model"]["w"].tolist() == [1.0, 1.0]
    with pytest.raises(FormatError, match=r"model\.pt holds a dict with entries that are not named tensors \('model': dict, 'epoch': int\), not a state_dict; its entry 'model' looks like one"):
        read_state_dict(path)


def test_load_parameters_maps_torch_names_onto_the_architecture(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"0.weight": rng.standard_normal((4, 3)).astype(np.float32), "0.bias": np.zeros(4, np.float32),
              "1.weight": rng.random(4).astype(np.float32), "1.bias": rng.random(4).astype(np.float32),
              "1.running_mean": rng.random(4).astype(np.float32), "1.running_var": rng.random(4).astype(np.float32),
              "1.num_batches_tracked": np.array(7, np.int64)}
    path = _write(tmp_path, state_dict_file(arrays))
    net = nn.Sequential()
    net.add(nn.Dense(4, flatten=False), nn.BatchNorm())
    net.load_parameters(path)
    assert net[0].weight.data().tobytes() == arrays["0.weight"].tobytes()
    assert net[1].gamma.data().tobytes() == arrays["1.weight"].tobytes()
    assert net[1].beta.data().tobytes() == arrays["1.bias"].tobytes()
    assert net[1].running_var.data().tobytes() == arrays["1.running_var"].tobytes()


def test_affine_free_norms_get_identity_scale_and_shift(tmp_path):
    path = _write(tmp_path, state_dict_file({"running_mean": np.ones(3, np.float32),
                                             "running_var": np.full(3, 2, np.float32)}))
    net = nn.BatchNorm(in_channels=3)
    net.load_parameters(path)
    assert net.gamma.data().tolist() == [1, 1, 1] and net.beta.data().tolist() == [0, 0, 0]
    layer_norm = nn.LayerNorm(in_channels=3)
    layer_norm.load_parameters(path, ignore_extra=True)
    assert layer_norm.gamma.data().tolist() == [1, 1, 1]


def test_a_missing_layer_is_reported_not_filled(tmp_path):
    path = _write(tmp_path, state_dict_file({"0.weight": np.ones((2, 3), np.float32), "0.bias": np.ones(2, np.float32)}))
    net = nn.Sequential()
    net.add(nn.Dense(2, in_units=3), nn.BatchNorm(in_channels=2))
    with pytest.raises(MissingParameterError, match=r"parameter '1\.gamma'"):
        net.load_parameters(path)


def test_modelpack_load_says_what_a_torch_file_is(tmp_path):
    path = _write(tmp_path, state_dict_file({"w": np.ones(2, np.float32)}))
    with pytest.raises(FileKindError, match=r"is a PyTorch file \(torch\.save\), not .*net\.load_parameters\(path\)"):
        modelpack.load(path)


# -- hostile files ---------------------------------------------------------------------------


class _System:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_os_system_reduce_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "ran"
    data = torch_zip(pickle.dumps(_System(f"touch {marker}"), protocol=2), {})
    _refused(tmp_path, data, FormatError, "global 'posix.system' is not allowed")
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_unknown_globals_are_refused_at_any_protocol(tmp_path, protocol):
    data = torch_zip(pickle.dumps({"w": eval}, protocol=protocol), {})  # noqa: S307  (pickled, never called)
    name = "__builtin__.eval" if protocol < 3 else "builtins.eval"  # pickle's Python 2 spelling
    caught = _refused(tmp_path, data, FormatError, f"global '{name}' is not allowed (allowed: __builtin__.bytes, ")
    assert "collections.OrderedDict, " in str(caught) and "numpy.dtype, " in str(caught)
    assert re.search(r"and \d+ storage type and dtype names\); nothing was run$", str(caught))


@pytest.mark.parametrize(("module", "name"), [("torch.nn", "Module"), ("torch", "load"), ("numpy", "frombuffer"),
                                              ("collections", "defaultdict"), ("torch._utils", "_rebuild_qtensor")])
def test_near_miss_globals_are_refused(tmp_path, module, name):
    data = torch_zip(b"\x80\x02" + global_(module, name) + b".", {})
    _refused(tmp_path, data, FormatError, f"global '{module}.{name}' is not allowed")


@pytest.mark.parametrize(("module", "advice"), [
    ("torch.nn.modules.linear", r"this file pickles a whole module \(torch\.save\(model\)\), not its tensors: "
                                r"save torch\.save\(model\.state_dict\(\), path\)$"),
    ("__main__", r"this file pickles a whole module"),
    ("__torch__.torch.nn.modules.linear", r"this is a TorchScript module \(torch\.jit\.save\): save its weights "
                                          r"with torch\.save\(model\.state_dict\(\), path\)$"),
])
def test_a_whole_pickled_module_is_refused_saying_to_save_its_state_dict(tmp_path, module, advice):
    data = torch_zip(b"\x80\x02" + global_(module, "Linear") + b".", {})
    caught = _refused(tmp_path, data, FormatError, f"global '{module}.Linear' is not allowed (allowed: ")
    assert re.search(rf"nothing was run; {advice}", str(caught)), str(caught)


@pytest.mark.parametrize(("opcode", "name"), [(b"\x81", "NEWOBJ"), (b"i", "INST"), (b"o", "OBJ"),
                                              (b"\x82", "EXT1"), (b"P", "PERSID"), (b"\x92", "NEWOBJ_EX")])
def test_object_building_opcodes_are_refused(tmp_path, opcode, name):
    data = torch_zip(b"\x80\x02" + global_("collections", "OrderedDict") + b")" + opcode + b".", {})
    _refused(tmp_path, data, FormatError, f"({name}) is not allowed")


def test_reduce_may_call_only_allowed_functions(tmp_path):
    data = torch_zip(b"\x80\x02" + text("os.system") + b")R.", {})
    _refused(tmp_path, data, FormatError, "REDUCE calls a str")
    marker_only = torch_zip(b"\x80\x02" + global_("torch", "FloatStorage") + b")R.", {})
    _refused(tmp_path, marker_only, FormatError, "REDUCE calls 'torch.FloatStorage'")


def test_build_on_anything_but_a_dict_is_refused(tmp_path):
    data = torch_zip(b"\x80\x02]}b.", {})
    _refused(tmp_path, data, FormatError, "BUILD on a list is not allowed")


def test_storage_declaring_more_elements_than_its_member_holds(tmp_path):
    entries = {"w": tensor("FloatStorage", "0", 1_000_000_000, 0, (4,), (1,))}
    data = torch_zip(state_dict_pickle(entries), {"0": np.ones(4, np.float32).tobytes()})
    _refused(tmp_path, data, FormatError, "storage '0' declares 1000000000 float32 elements (4000000000 bytes) but its member holds 16 bytes")


def test_tensor_reaching_past_its_storage(tmp_path):
    entries = {"w": tensor("FloatStorage", "0", 4, 2, (2, 2), (2, 1))}
    data = torch_zip(state_dict_pickle(entries), {"0": np.ones(4, np.float32).tobytes()})
    _refused(tmp_path, data, FormatError, "reaches element 5, past the storage's 4 elements")


def test_stride_zero_expansion_is_charged_before_allocation(tmp_path):
    entries = {"w": tensor("FloatStorage", "0", 1, 0, (1_000_000, 1_000_000), (0, 0))}
    data = torch_zip(state_dict_pickle(entries), {"0": np.ones(1, np.float32).tobytes()})
    caught = _refused(tmp_path, data, LimitError, "the tensors' total size with a strided tensor of shape (1000000, 1000000)")
    assert "max_total_bytes" in str(caught)


def test_storages_are_charged_against_the_total_limit(tmp_path):
    data = state_dict_file({"a": np.ones(64, np.float32), "b": np.ones(64, np.float32)})
    _refused(tmp_path, data, LimitError, "with storage '1'", limits=Limits(max_total_bytes=300))


def test_a_storage_member_that_is_missing(tmp_path):
    data = torch_zip(state_dict_pickle({"w": tensor("FloatStorage", "7", 1, 0, (1,), (1,))}), {})
    _refused(tmp_path, data, FormatError, "storage '7' has no member 'archive/data/7'")


def test_a_persistent_id_that_is_not_a_storage(tmp_path):
    data = torch_zip(b"\x80\x02" + tuple_(text("module"), text("os")) + b"Q.", {})
    _refused(tmp_path, data, FormatError, "a persistent id is not a storage reference: ('module', 'os')")


@pytest.mark.parametrize("big_endian", [False, True])
def test_bfloat16_is_read_as_float32_exactly(tmp_path, big_endian):
    """bfloat16 (a float32's upper half) is read as float32, every value exact, strided views too."""
    halves = np.array([0x3F80, 0xC020, 0x7F80, 0x7F7F, 0x8001, 0x0000], np.uint16)  # 1, -2.5, inf, max, -tiny, 0
    values = (halves.astype(np.uint32) << 16).view(np.float32)
    entries = {"w": tensor("BFloat16Storage", "0", 6, 0, (2, 3), (3, 1)),
               "t": tensor("BFloat16Storage", "0", 6, 1, (2, 2), (1, 3))}
    stored = halves.astype(">u2" if big_endian else "<u2").tobytes()
    path = _write(tmp_path, torch_zip(state_dict_pickle(entries), {"0": stored},
                                      byteorder=b"big" if big_endian else b"little"))
    loaded = read_state_dict(path)
    assert loaded["w"].dtype == np.float32 and loaded["w"].tobytes() == values.reshape(2, 3).tobytes()
    assert loaded["t"].tobytes() == np.ascontiguousarray(values.reshape(2, 3)[:, 1:].T).tobytes()


@pytest.mark.parametrize("name", ["float8_e4m3fn", "float8_e5m2"])
def test_float8_is_read_as_float32_exactly(tmp_path, name):
    bits = np.arange(256, dtype=np.uint8)
    path = _write(tmp_path, torch_zip(state_dict_pickle({"w": tensor_v3(name, "0", 256, 0, (16, 16), (16, 1))}),
                                      {"0": bits.tobytes()}))
    loaded = read_state_dict(path)["w"]
    assert loaded.dtype == np.float32 and loaded.tobytes() == widened(bits, name).reshape(16, 16).tobytes()


@pytest.mark.parametrize("name", ["float8_e4m3fnuz", "complex32", "bits8"])
def test_an_untyped_storage_of_a_dtype_numpy_cannot_hold_is_refused_by_name(tmp_path, name):
    data = torch_zip(state_dict_pickle({"w": tensor_v3(name, "0", 4, 0, (2,), (1,))}), {"0": b"\0" * 4})
    _refused(tmp_path, data, UnsupportedDtypeError, f"storage '0' holds {name} tensors, which numpy cannot hold")


def test_an_untyped_storage_that_is_not_whole_elements(tmp_path):
    data = torch_zip(state_dict_pickle({"w": tensor_v3("uint32", "0", 6, 0, (1,), (1,))}), {"0": b"\0" * 6})
    _refused(tmp_path, data, FormatError, "storage '0' holds 6 bytes, not a whole number of uint32 elements")


def test_an_untyped_tensor_past_its_storage(tmp_path):
    data = torch_zip(state_dict_pickle({"w": tensor_v3("uint16", "0", 8, 2, (3,), (1,))}), {"0": b"\0" * 8})
    _refused(tmp_path, data, FormatError, "reaches element 4, past the storage's 4 elements")


def test_a_v3_tensor_on_a_typed_storage_or_without_a_dtype(tmp_path):
    typed = tensor_v3("uint16", "0", 4, 0, (1,), (1,), storage=("torch", "FloatStorage"))
    data = torch_zip(state_dict_pickle({"w": typed}), {"0": b"\0" * 16})
    _refused(tmp_path, data, FormatError, "a tensor of dtype torch.uint16 is built from a float32 storage '0', "
                                          "not an untyped storage")
    no_dtype = (global_("torch._utils", "_rebuild_tensor_v3") + b"(" + tuple_(
        text("storage"), global_("torch.storage", "UntypedStorage"), text("0"), text("cpu"), integer(4))
        + b"Q" + integer(0) + tuple_(integer(1)) + tuple_(integer(1)) + b"\x89}" + integer(7) + b"tR")
    data = torch_zip(state_dict_pickle({"w": no_dtype}), {"0": b"\0" * 4})
    _refused(tmp_path, data, FormatError, "a tensor of dtype 7 is built from")


def test_a_v3_tensor_with_unknown_arguments(tmp_path):
    data = torch_zip(state_dict_pickle({"w": tensor_v3("uint16", "0", 4, 0, (2,), (1,),
                                                       extra=b"}" + integer(1))}), {"0": b"\0" * 4})
    _refused(tmp_path, data, FormatError, "carries backward hooks or unknown arguments")


def test_bool_storage_with_other_bytes(tmp_path):
    data = torch_zip(state_dict_pickle({"m": tensor("BoolStorage", "0", 2, 0, (2,), (1,))}), {"0": b"\x01\x07"})
    _refused(tmp_path, data, FormatError, "bool storage '0' holds bytes other than 0 and 1")


@pytest.mark.parametrize("cut", [1, 10, 40, 100])
def test_truncated_pickles(tmp_path, cut):
    whole = state_dict_pickle({"w": tensor("FloatStorage", "0", 1, 0, (1,), (1,))})
    data = torch_zip(whole[:-cut], {"0": b"\0" * 4})
    caught = _refused(tmp_path, data, FormatError, "member 'archive/data.pkl': byte ")
    assert any(word in str(caught) for word in ("past the end", "no end of line", "needs", "STOP"))


def test_truncated_file(tmp_path):
    data = state_dict_file({"w": np.ones(8, np.float32)})
    _refused(tmp_path, data[: len(data) - 30], FormatError, "truncated")


def test_a_lying_string_length(tmp_path):
    data = torch_zip(b"\x80\x02X" + struct.pack("<I", 2**31) + b"abc.", {})
    _refused(tmp_path, data, FormatError, "a 2147483648-byte field runs past the end of the pickle")


def test_a_huge_integer(tmp_path):
    data = torch_zip(b"\x80\x02\x8b" + struct.pack("<I", 2**30) + b".", {})
    _refused(tmp_path, data, FormatError, "an integer of 1073741824 bytes is over the limit of 64")


def test_memo_read_before_write(tmp_path):
    _refused(tmp_path, torch_zip(b"\x80\x02h\x05.", {}), FormatError, "memo index 5 is read before it is stored")


def test_deep_nesting_is_a_loop_not_a_recursion(tmp_path):
    data = torch_zip(b"\x80\x02" + b"(" * 200_000 + b"]" + b"l" * 200_000 + b".", {})
    assert isinstance(load(_write(tmp_path, data)), list)
    _refused(tmp_path, torch_zip(b"\x80\x02" + b"]" * 1000 + b".", {}), FormatError, "STOP with 1000 values on the stack")


def test_damaged_storage_bytes_fail_the_crc(tmp_path):
    data = bytearray(state_dict_file({"w": np.arange(16, dtype=np.float32)}))
    position = bytes(data).find(np.arange(16, dtype=np.float32).tobytes())
    data[position + 5] ^= 0xFF
    _refused(tmp_path, bytes(data), IntegrityError, "member 'archive/data/0' is damaged: CRC-32")


def test_two_pickles_or_none(tmp_path):
    buffer = io.BytesIO()
    import zipfile

    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a/data.pkl", b"\x80\x02N.")
        archive.writestr("b/data.pkl", b"\x80\x02N.")
    _refused(tmp_path, buffer.getvalue(), FormatError, "exactly one '<name>/data.pkl' member; found ['a/data.pkl', 'b/data.pkl']")


def test_legacy_format_is_named(tmp_path):
    legacy = b"\x80\x02\x8a\x0a" + b"\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19" + b"."
    _refused(tmp_path, legacy, FileKindError, "legacy format")


def test_a_bad_byteorder_record(tmp_path):
    data = torch_zip(b"\x80\x02N.", {}, byteorder=b"middle")
    _refused(tmp_path, data, FormatError, "member 'archive/byteorder' says b'middle'")


def test_rebuild_with_bad_arguments(tmp_path):
    call = (global_("torch._utils", "_rebuild_tensor_v2") + b"(" + tuple_(text("storage"), global_("torch", "FloatStorage"),
            text("0"), text("cpu"), integer(4)) + b"Q" + integer(0) + tuple_(integer(-1)) + tuple_(integer(1)) + b"\x89}tR.")
    data = torch_zip(b"\x80\x02" + call, {"0": b"\0" * 16})
    _refused(tmp_path, data, FormatError, "a tensor on storage '0' has a malformed size (-1,)")


# -- against torch itself --------------------------------------------------------------------


def test_torch_reads_what_the_test_writer_writes(tmp_path):
    torch = pytest.importorskip("torch", reason="torch is not installed: the test writer is not checked against torch.load")
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([True, False]), "c": np.arange(3, dtype=np.int64)}
    # uint16/32/64 on untyped storages: little-endian only, as torch.load swaps an untyped
    # storage's bytes by its own dtype (uint8), never the tensor's (this reader swaps them)
    untyped = {"d": np.array([1, 65535], np.uint16), "e": np.array([[2**63 + 1]], np.uint64)}
    for big_endian, written in ((True, arrays), (False, {**arrays, **untyped})):
        path = _write(tmp_path, state_dict_file(written, big_endian=big_endian))
        loaded = torch.load(path, weights_only=True)
        for name, array in written.items():
            np.testing.assert_array_equal(loaded[name].numpy(), array)


def test_real_torch_save_files_bitwise(tmp_path):
    torch = pytest.importorskip("torch", reason="torch is not installed: real torch.save files cannot be made")
    torch.manual_seed(0)
    base = torch.randn(6, 5)
    state = {
        "plain": torch.randn(3, 4), "half": torch.randn(5).half(), "double": torch.randn(2, 2).double(),
        "long": torch.arange(7), "bool": torch.tensor([True, False, True]), "scalar": torch.tensor(2.5),
        "view": base[2:], "transposed": base.t(), "expanded": torch.randn(3, 1).expand(3, 4),
        "empty": torch.zeros(0, 3), "param": torch.nn.Parameter(torch.randn(2)),
    }
    path = tmp_path / "state.pt"
    torch.save(state, path)
    loaded = read_state_dict(path)
    assert list(loaded) == list(state)
    for name, value in state.items():
        expected = value.detach().contiguous().numpy()
        assert loaded[name].dtype == expected.dtype and loaded[name].shape == expected.shape
        assert loaded[name].tobytes() == expected.tobytes(), name


def test_real_torch_files_of_the_dtypes_numpy_lacks_or_saved_untyped(tmp_path):
    """bfloat16 and float8 come back as torch's ``.float()`` gives them, bit for bit (NaNs too);
    uint16/32/64 (saved on untyped storages) as they are; strided views of both."""
    torch = pytest.importorskip("torch", reason="torch is not installed: real torch.save files cannot be made")
    torch.manual_seed(0)
    bits = torch.from_numpy(np.arange(256, dtype=np.uint8))
    state = {
        "bf16": torch.randn(4, 3).to(torch.bfloat16), "bf16_view": torch.randn(4, 3).to(torch.bfloat16)[1:, ::2],
        "e4m3": bits.view(torch.float8_e4m3fn), "e5m2": bits.view(torch.float8_e5m2).reshape(16, 16).t(),
        "u16": torch.tensor([[1, 2, 3], [4, 5, 65535]], dtype=torch.uint16).t(),
        "u32": torch.tensor([0, 2**32 - 1], dtype=torch.uint32), "u64": torch.tensor([2**63 + 5], dtype=torch.uint64),
    }
    path = tmp_path / "state.pt"
    torch.save(state, path)
    loaded = read_state_dict(path)
    for name, value in state.items():
        widen = value.dtype in (torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2)
        expected = (value.float() if widen else value).contiguous().numpy()
        assert loaded[name].dtype == expected.dtype and loaded[name].shape == expected.shape, name
        assert loaded[name].tobytes() == expected.tobytes(), name


def test_real_module_state_dict_through_load_parameters(tmp_path):
    torch = pytest.importorskip("torch", reason="torch is not installed")
    from modelpack.interop.torch import from_torch

    module = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3), torch.nn.ReLU(),
                                 torch.nn.Flatten(), torch.nn.Linear(12, 2), torch.nn.LayerNorm(2)).eval()
    module[1].running_mean.uniform_()
    path = tmp_path / "cnn.pt"
    torch.save(module.state_dict(), path)
    net = from_torch(module)
    net.initialize(force_reinit=True, seed=1)
    net.load_parameters(path)
    x = np.random.default_rng(0).standard_normal((2, 2, 4, 4)).astype(np.float32)
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(net(x), expected, rtol=1e-5, atol=1e-5)


# -- through convert and the command line -----------------------------------------------------


def test_convert_a_state_dict_onto_an_mpk_architecture(tmp_path):
    from cli.test_cli import cli, user_error

    net = nn.Sequential()
    net.add(nn.Dense(3, in_units=2), nn.BatchNorm(in_channels=3))
    net.initialize(seed=0)
    modelpack.export(net, tmp_path / "arch.mpk")
    rng = np.random.default_rng(0)
    arrays = {"0.weight": rng.standard_normal((3, 2)).astype(np.float32), "0.bias": np.ones(3, np.float32),
              "1.weight": np.full(3, 2, np.float32), "1.bias": np.zeros(3, np.float32),
              "1.running_mean": np.zeros(3, np.float32), "1.running_var": np.ones(3, np.float32),
              "1.num_batches_tracked": np.array(0, np.int64)}
    path = _write(tmp_path, state_dict_file(arrays), "weights.pt")
    converted = modelpack.convert(path, architecture=tmp_path / "arch.mpk")
    assert converted[1].gamma.data().tolist() == [2, 2, 2]
    run = cli("convert", path, "--architecture", tmp_path / "arch.mpk", "-o", tmp_path / "out.mpk")
    assert run.returncode == 0, run.stderr
    loaded = modelpack.load(tmp_path / "out.mpk")
    assert loaded[0].weight.data().tobytes() == arrays["0.weight"].tobytes()
    assert modelpack.inspect(tmp_path / "out.mpk").metadata["converter"] == "modelpack convert (PyTorch)"
    with pytest.raises(UsageError, match=r"convert takes one torch state_dict file and an architecture .*found 1 "
                                         r"file\(s\) and no architecture; for its tensors alone, "):
        modelpack.convert(path)
    user_error(cli("convert", path, "-o", tmp_path / "x.mpk", "--input-shape", "x=N,2"),
               "--input-shape applies to a Gluon export (-symbol.json), not to arrays")
    with pytest.raises(UsageError, match=r"^input_shapes applies to a Gluon export \(-symbol\.json\); a torch "
                                         r"state_dict file's weights go into the architecture as it is"):
        modelpack.convert(path, architecture=tmp_path / "arch.mpk", input_shapes={"x": (None, 2)})
    assert not (tmp_path / "x.mpk").exists()


def test_group_norm_weights_load_per_group_and_per_channel_ones_are_refused(tmp_path):
    """modelpack's GroupNorm holds one gamma per group (MXNet's); torch's GroupNorm one per channel."""
    net = nn.GroupNorm(3)
    per_group = _write(tmp_path, state_dict_file({"weight": np.arange(3, dtype=np.float32),
                                                  "bias": np.ones(3, np.float32)}))
    net.load_parameters(per_group)
    assert net.gamma.data().tolist() == [0, 1, 2] and net.beta.data().tolist() == [1, 1, 1]
    per_channel = _write(tmp_path, name="channels.pt", data=state_dict_file({"weight": np.ones(6, np.float32), "bias": np.zeros(6, np.float32)}))
    with pytest.raises(ShapeMismatchError, match=r"parameter 'gamma' expected shape \(3,\) .*found \(6,\)"):
        nn.GroupNorm(3).load_parameters(per_channel)


def test_a_storage_without_memory_is_refused_naming_the_file_and_the_storage(tmp_path, monkeypatch):
    from modelpack.io import pages

    def starved(shape, dtype):
        raise MemoryError

    path = tmp_path / "sd.pt"
    path.write_bytes(state_dict_file({"w": np.arange(6, dtype=np.float32)}))
    monkeypatch.setattr(pages, "fresh_array", starved)
    with pytest.raises(ModelpackError, match=r"sd\.pt.*storage '0': out of memory for its 24 bytes"):
        read_state_dict(path)


def test_widening_counts_against_the_total_size(tmp_path):
    """A bfloat16 storage's float32 copy is counted before it is allocated: 100 values are 200
    bytes read and 400 more widened."""
    data = torch_zip(state_dict_pickle({"w": tensor("BFloat16Storage", "0", 100, 0, (100,), (1,))}),
                     {"0": b"\0" * 200})
    _refused(tmp_path, data, LimitError, "with storage '0' read as float32", limits=Limits(max_total_bytes=599))
    assert read_state_dict(_write(tmp_path, data, "fits.pt"), limits=Limits(max_total_bytes=600))["w"].shape == (100,)
