"""Pickles and non-numeric arrays: refused from the header, before a byte of data is read."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from craft import edit, npy, npy_with_header, stored_zip
from harness import refused, with_bundle, with_members

from modelpack import nn
from modelpack.errors import FormatError, SchemaError, UnsupportedDtypeError


class _Boom:
    def __reduce__(self):  # what a malicious pickle does: call anything on load
        return (exec, ("raise SystemExit('pickle executed')",))


def test_object_array_with_pickle_payload(tmp_path):
    member = npy_with_header("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", pickle.dumps(_Boom()))
    data = with_members({"w": ("float32", [1])}, {"w.npy": member})
    refused(tmp_path, data, UnsupportedDtypeError, r"member 'w\.npy' has dtype '\|O' \(object: pickled Python objects\)", inspect=False)


def test_numpy_written_object_array(tmp_path):
    data = with_members({"w": ("float32", [2])}, {"w.npy": npy(np.array([None, {}], dtype=object))})
    refused(tmp_path, data, UnsupportedDtypeError, r"'w\.npy' has dtype '\|O' \(object", inspect=False)


@pytest.mark.parametrize(
    ("array", "shown"),
    [
        (np.array(["text"]), r"'<U4' \(text\)"),
        (np.zeros(2, dtype=[("a", "<f4"), ("b", "<i4")]), r"\"\[\('a', '<f4'\), \('b', '<i4'\)\]\" \(structured\)"),
        (np.array(["2024-01-01"], dtype="datetime64[s]"), r"'<M8\[s\]' \(datetime\)"),
        (np.zeros(2, dtype="V8"), r"'\|V8' \(void/structured\)"),
        (np.zeros(2, dtype="longdouble"), r"'<f16' \(not a supported number type\)"),
    ],
    ids=["string", "structured", "datetime", "void", "longdouble"],
)
def test_non_numeric_dtypes(tmp_path, array, shown):
    data = with_members({"w": ("float32", [2])}, {"w.npy": npy(array)})
    refused(tmp_path, data, UnsupportedDtypeError, rf"'w\.npy' has dtype {shown}, which modelpack never loads",
            inspect=False)


def test_manifest_cannot_name_an_object_dtype(tmp_path):
    data = with_members({"w": ("float32", [1])}, {"w.npy": npy(np.zeros(1, np.float32))})
    data = edit(data, manifest=lambda d: d["weights"]["w"].update(dtype="object"))
    refused(tmp_path, data, SchemaError, r"weights\.w\.dtype: Input should be 'bool'")


def test_a_pickle_file_as_the_bundle(tmp_path):
    data = with_bundle({}, pickle.dumps(_Boom()))
    refused(tmp_path, data, FormatError, r"member 'weights\.npz': not an npz weight bundle", inspect=False)


def test_parameter_file_with_pickle_refused(tmp_path):
    path = tmp_path / "evil.params"
    member = npy_with_header("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", pickle.dumps(_Boom()))
    path.write_bytes(stored_zip({"weight.npy": member}))
    dense = nn.Dense(1, in_units=1)
    with pytest.raises(UnsupportedDtypeError, match=r"evil\.params: member 'weight\.npy' has dtype '\|O' \(object"):
        dense.load_parameters(path)
