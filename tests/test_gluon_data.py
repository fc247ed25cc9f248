"""``gluon.data``: batching, seeded shuffling, and resuming a pass from its saved state;
``last_batch="rollover"``, the default batchify and ``ArrayDataset`` as MXNet 1.9.1's
(tests/reference/mxnet_data_loader.json, written with MXNet by scripts/make_mxnet_data_refs.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import modelpack
from modelpack import gluon, nn
from modelpack.errors import CheckpointError, UsageError
from modelpack.nn.devices import NDArray, on_device

REFERENCE = json.loads((Path(__file__).with_name("reference") / "mxnet_data_loader.json").read_text())


def describe(value: Any) -> Any:
    """A value as the reference script records an MXNet one (an MXNet array is an NDArray)."""
    if isinstance(value, (list, tuple)):
        return {type(value).__name__: [describe(item) for item in value]}
    if isinstance(value, np.ndarray):
        assert type(value) in (NDArray, np.ndarray), type(value)
        array = np.asarray(value)
        return {"array": "ndarray" if type(value) is NDArray else "numpy", "dtype": array.dtype.name,
                "shape": list(array.shape), "values": array.tolist() if array.size <= 64 else None,
                "head": None if array.size <= 64 else array.ravel()[:16].tolist(),
                "sum": float(array.astype(np.float64).sum())}
    if isinstance(value, np.generic):
        return {"scalar": f"numpy.{type(value).__name__}", "value": value.item()}
    return {"scalar": type(value).__name__, "value": value}


def build(expression: str) -> Any:
    """The reference's examples: ``nd(a)`` is an MXNet array there, an NDArray here."""
    return eval(expression, {"onp": np, "nd": lambda array: on_device(np.array(array))})


def dataset(n: int = 10) -> gluon.data.ArrayDataset:
    return gluon.data.ArrayDataset(np.arange(n * 2).reshape(n, 2), np.arange(n) * 10)


def test_batches_in_order_keep_or_discard_the_last():
    loader = gluon.data.DataLoader(dataset(), batch_size=4)
    batches = list(loader)
    assert len(loader) == 3 and [len(y) for _, y in batches] == [4, 4, 2]
    assert np.concatenate([y for _, y in batches]).tolist() == list(range(0, 100, 10))
    assert batches[0][0].tolist() == [[0, 1], [2, 3], [4, 5], [6, 7]]
    discard = gluon.data.DataLoader(dataset(), batch_size=4, last_batch="discard")
    assert len(discard) == 2 and [len(y) for _, y in discard] == [4, 4]
    single = gluon.data.DataLoader(gluon.data.ArrayDataset(np.arange(5)), batch_size=2)
    assert [b.tolist() for b in single] == [[0, 1], [2, 3], [4]]


def test_any_dataset_with_len_and_getitem():
    class Squares:
        def __len__(self) -> int:
            return 5

        def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
            return np.array([i, i * i]), i

    batches = list(gluon.data.DataLoader(Squares(), batch_size=3))
    assert batches[1][0].tolist() == [[3, 9], [4, 16]] and batches[1][1].tolist() == [3, 4]


def test_shuffling_follows_the_seed_and_differs_per_pass():
    def passes(seed: int) -> list[list[int]]:
        modelpack.random.seed(seed)
        loader = gluon.data.DataLoader(dataset(), batch_size=3, shuffle=True)
        return [np.concatenate([y for _, y in loader]).tolist() for _ in range(3)]

    first = passes(0)
    assert first == passes(0) and first != passes(1)
    assert first[0] != first[1] and sorted(first[0]) == list(range(0, 100, 10))
    own = gluon.data.DataLoader(dataset(), batch_size=3, shuffle=True, rng=np.random.default_rng(5))
    again = gluon.data.DataLoader(dataset(), batch_size=3, shuffle=True, rng=np.random.default_rng(5))
    assert [y.tolist() for _, y in own] == [y.tolist() for _, y in again]


@settings(max_examples=30)
@given(n=st.integers(1, 12), batch=st.integers(1, 5), stop=st.integers(0, 12), last=st.sampled_from(["keep", "discard"]))
def test_a_saved_pass_resumes_where_it_stopped(n, batch, stop, last):
    """Interrupting a pass after ``stop`` batches and resuming in a new loader (another
    process) serves exactly the batches the uninterrupted loader would, this pass and the next."""
    modelpack.random.seed(3)
    loader = gluon.data.DataLoader(dataset(n), batch_size=batch, shuffle=True, last_batch=last)
    uninterrupted = [[y.tolist() for _, y in loader] for _ in range(2)]

    modelpack.random.seed(3)
    loader = gluon.data.DataLoader(dataset(n), batch_size=batch, shuffle=True, last_batch=last)
    batches = iter(loader)
    served = [next(batches)[1].tolist() for _ in range(min(stop, len(loader)))]
    position, order = loader.export_state()
    streams = modelpack.random.get_state()

    modelpack.random.seed(99)  # the new process
    resumed = gluon.data.DataLoader(dataset(n), batch_size=batch, shuffle=True, last_batch=last)
    modelpack.random.set_state(streams)
    resumed.import_state(position, order)
    rest = [y.tolist() for _, y in resumed]
    if 0 < len(served) < len(loader):  # mid-pass: the rest of that pass
        assert served + rest == uninterrupted[0]
        assert [y.tolist() for _, y in resumed] == uninterrupted[1]
    else:  # between passes: the next pass starts afresh
        assert (position, order) == (0, None)


def test_bad_options_and_states_are_refused():
    with pytest.raises(UsageError, match=r"batch_size must be a positive int, got 0"):
        gluon.data.DataLoader(dataset(), batch_size=0)
    with pytest.raises(UsageError, match=r"last_batch must be 'keep', 'discard' or 'rollover', got 'last'"):
        gluon.data.DataLoader(dataset(), batch_size=2, last_batch="last")
    with pytest.raises(UsageError, match=r"ArrayDataset arrays must have the same length, got lengths \[3, 2\]"):
        gluon.data.ArrayDataset(np.zeros(3), np.zeros(2))
    with pytest.raises(UsageError, match=r"ArrayDataset's array 1 has no length: int"):
        gluon.data.ArrayDataset([1, 2], 3)
    with pytest.raises(UsageError, match=r"the examples of a batch have different numbers of fields \[1, 2\]"):
        next(iter(gluon.data.DataLoader([(1,), (2, 3)], 2)))
    with pytest.raises(UsageError, match=r"hold values that make no array"):
        next(iter(gluon.data.DataLoader([None, None], 2)))
    assert len(gluon.data.DataLoader(dataset(), 4, last_batch=None)) == 3  # MXNet's default: keep
    loader = gluon.data.DataLoader(dataset(), batch_size=4)
    with pytest.raises(CheckpointError, match=r"the saved data order is not a permutation of this loader's 10 "
                                              r"examples"):
        loader.import_state(1, np.zeros(10, np.int64))
    with pytest.raises(CheckpointError, match=r"the saved position 4 is past this loader's 3 batches"):
        loader.import_state(4, np.arange(10))


def test_gluon_nn_and_rnn_are_modelpacks_own_modules():
    """d2l's `from mxnet.gluon import nn, rnn` ports by changing the import alone."""
    import modelpack.nn
    import modelpack.nn.rnn
    from modelpack.gluon import nn, rnn

    assert nn is modelpack.nn and rnn is modelpack.nn.rnn
    assert rnn.GRU is modelpack.nn.rnn.GRU
    # d2l's Module.parameters: isinstance(self.collect_params(), gluon.parameter.ParameterDict)
    net = nn.Dense(2)
    assert isinstance(net.collect_params(), gluon.parameter.ParameterDict)
    assert gluon.ParameterDict is modelpack.nn.ParameterDict and gluon.Parameter is modelpack.nn.Parameter


def test_d2l_loader_options_batchify_fn_num_workers_and_device_api():
    """d2l passes ``num_workers`` (same batches: read in-process) and, for word2vec,
    ``batchify_fn``; its training loops call ``X.as_in_ctx(device)`` on each batch."""
    from modelpack import npx

    modelpack.random.seed(3)
    plain = [y.tolist() for _, y in gluon.data.DataLoader(dataset(), 4, shuffle=True)]
    modelpack.random.seed(3)
    workers = gluon.data.DataLoader(dataset(), 4, shuffle=True, num_workers=4)
    batches = list(workers)
    assert [y.tolist() for _, y in batches] == plain
    X, y = batches[0]
    assert X.as_in_ctx(npx.cpu()) is X and str(y.ctx) == "cpu(0)"

    def batchify(items):  # pad each example's first field to the longest, as d2l's batchify
        width = max(len(x) for x, _ in items)
        return (np.array([list(x) + [0] * (width - len(x)) for x, _ in items]), np.array([t for _, t in items]))

    ragged = [([1], 10), ([1, 2, 3], 20), ([4, 5], 30)]
    out = list(gluon.data.DataLoader(ragged, 2, batchify_fn=batchify))
    assert out[0][0].tolist() == [[1, 0, 0], [1, 2, 3]] and out[1][0].tolist() == [[4, 5]]
    assert out[0][1].tolist() == [10, 20] and out[0][1].as_in_context(npx.cpu()) is out[0][1]
    with pytest.raises(UsageError, match=r"num_workers must be an int >= 0, got -1"):
        gluon.data.DataLoader(dataset(), 2, num_workers=-1)


def test_a_plain_array_is_batched_by_its_first_axis():
    """MXNet batches an array dataset's rows; numpy's own ``take`` would index it flattened."""
    X = np.arange(40, dtype=np.float32).reshape(10, 4)
    batches = list(gluon.data.DataLoader(X, 3))
    assert [b.shape for b in batches] == [(3, 4), (3, 4), (3, 4), (1, 4)]
    np.testing.assert_array_equal(np.concatenate(batches), X)


def test_a_datasets_own_take_is_not_mistaken_for_batching():
    """Only modelpack's ArrayDataset is read a batch at a time through ``take``; another
    dataset's ``take`` may mean something else, so its examples are read one by one."""

    class Pairs:
        def __len__(self) -> int:
            return 5

        def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
            return np.full(2, index, dtype=np.float32), index

        def take(self, count: int) -> list[int]:  # another meaning of the name
            return list(range(count))

    features, labels = next(iter(gluon.data.DataLoader(Pairs(), 3)))
    assert features.shape == (3, 2) and labels.tolist() == [0, 1, 2]


# -- MXNet 1.9.1's references --------------------------------------------------------------------
@pytest.mark.parametrize("case", sorted(REFERENCE["loaders"]))
def test_unshuffled_passes_equal_mxnets(case):
    """Each pass's batches and ``len(loader)`` before, during and after, as MXNet's: with
    ``rollover`` the examples left over start the next pass (lost if its loop is left early)."""
    ref = REFERENCE["loaders"][case]
    loader = gluon.data.DataLoader(gluon.data.ArrayDataset(list(range(ref["n"]))), batch_size=ref["batch_size"],
                                   last_batch=ref["last_batch"])
    for expected in ref["passes"]:
        before, during, batches = len(loader), None, []
        for batch in loader:
            assert type(batch) is NDArray and batch.dtype == np.int64
            batches.append(batch.tolist())
            if len(batches) == 1:
                during = len(loader)
            if expected["stop"] == len(batches):
                break
        assert {"len_before": before, "len_during": during, "batches": batches, "stop": expected["stop"]} == expected
    assert len(loader) == ref["len_after"]


@pytest.mark.parametrize("case", sorted(REFERENCE["batchify"]))
def test_default_batchify_equals_mxnets(case):
    """Containers (a list per tuple, nested tuples field by field), kinds, dtypes (Python ints
    int64, floats float64) and values of MXNet's default batch."""
    ref = REFERENCE["batchify"][case]
    examples = build(ref["examples"])
    batch = next(iter(gluon.data.DataLoader(gluon.data.SimpleDataset(examples), batch_size=len(examples))))
    assert describe(batch) == ref["batch"]


@pytest.mark.parametrize("case", sorted(REFERENCE["array_datasets"]))
def test_array_dataset_items_and_batches_equal_mxnets(case):
    """Fields are kept as given (ragged lists give their inner lists, a 1-D array's items are
    numpy scalars); the batch read at once equals MXNet's, item by item, batch."""
    ref = REFERENCE["array_datasets"][case]
    data = gluon.data.ArrayDataset(*build(ref["fields"]))
    assert {str(i): describe(data[int(i)]) for i in ref["items"]} == ref["items"]
    if ref["batch_size"]:
        assert describe(next(iter(gluon.data.DataLoader(data, batch_size=ref["batch_size"])))) == ref["batch"]


def test_ragged_lists_serve_d2l_word2vec_through_its_batchify():
    """d2l's word2vec: ArrayDataset(centers, contexts, negatives) of lists of different
    lengths, batched by its own batchify_fn (padding), shuffled."""
    centers, contexts = [1, 2, 3, 4, 5], [[2], [1, 3, 4], [2, 4], [3], [4, 1, 2, 3]]
    negatives = [[7, 8], [9], [7, 9, 8, 6], [6], [8]]
    data = gluon.data.ArrayDataset(centers, contexts, negatives)
    assert data[1] == (2, [1, 3, 4], [9]) and data[1][1] is contexts[1]

    def batchify(items):  # d2l's, abridged
        width = max(len(c) + len(n) for _, c, n in items)
        rows = [c + n + [0] * (width - len(c) - len(n)) for _, c, n in items]
        return (np.array([[center] for center, _, _ in items]), np.array(rows))

    modelpack.random.seed(0)
    loader = gluon.data.DataLoader(data, 2, shuffle=True, batchify_fn=batchify)
    seen = [row for centers_batch, _ in loader for row in centers_batch[:, 0].tolist()]
    assert sorted(seen) == centers
    with pytest.raises(UsageError, match=r"fields of different shapes, which cannot be stacked; pass a batchify_fn"):
        next(iter(gluon.data.DataLoader(data, 3)))


def test_array_fields_are_still_read_a_batch_at_a_time():
    """An array field is indexed once per batch; its items are never read one by one."""
    X = np.arange(20, dtype=np.float32).reshape(10, 2)

    class Counted(np.ndarray):
        reads = 0

        def __getitem__(self, index):
            Counted.reads += 1
            return np.ndarray.__getitem__(self, index)

    data = gluon.data.ArrayDataset(X.view(Counted), np.arange(10))
    batches = list(gluon.data.DataLoader(data, 4))
    assert Counted.reads == 3 and type(batches[0][1]) is NDArray
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), X)


# -- rollover and checkpoints --------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 13), batch=st.integers(1, 6), stop=st.integers(0, 14), first=st.integers(0, 2))
def test_a_saved_rollover_pass_resumes_with_its_carried_examples(n, batch, stop, first):
    """Shuffled with ``rollover``: after ``first`` whole passes (leaving examples over),
    interrupting the next after ``stop`` batches (mid-pass, at its end, or between passes) and
    resuming in a new loader serves exactly what the uninterrupted loader serves, carried
    examples included, that pass and the next two."""
    def make() -> gluon.data.DataLoader:
        return gluon.data.DataLoader(gluon.data.ArrayDataset(np.arange(n) * 10), batch_size=batch, shuffle=True,
                                     last_batch="rollover")

    modelpack.random.seed(4)
    loader = make()
    uninterrupted = [[b.tolist() for b in loader] for _ in range(first + 3)]

    modelpack.random.seed(4)
    loader = make()
    for _ in range(first):
        list(loader)
    batches = iter(loader)
    served = [next(batches).tolist() for _ in range(min(stop, len(loader)))]
    position, order = loader.export_state()
    streams = modelpack.random.get_state()

    modelpack.random.seed(99)  # the new process
    resumed = make()
    modelpack.random.set_state(streams)
    resumed.import_state(position, order)
    if position:  # mid-pass: the rest of that pass
        assert served + [b.tolist() for b in resumed] == uninterrupted[first]
        done = first + 1
    else:  # between passes (before this one, or after its last batch): what is left over starts the next
        assert order is None or 0 < len(order) < batch
        assert served in ([], uninterrupted[first])
        done = first + bool(served)
    assert [[b.tolist() for b in resumed] for _ in range(first + 3 - done)] == uninterrupted[done:]


def test_rollover_carried_examples_go_through_a_checkpoint_file(tmp_path):
    """Checkpointer.save/restore keeps a rollover loader's carried examples, both after a pass
    (position 0, the examples as the order) and in the middle of the next (which starts with them)."""
    net = nn.Dense(1, in_units=1)
    net.initialize()

    def make() -> gluon.data.DataLoader:
        return gluon.data.DataLoader(gluon.data.ArrayDataset(np.arange(10)), batch_size=4, shuffle=True,
                                     last_batch="rollover")

    modelpack.random.seed(1)
    loader = make()
    expected = [[b.tolist() for b in loader] for _ in range(3)]  # 2, 3 and 2 batches
    assert len(expected[1][0]) == 4 and [len(p) for p in expected] == [2, 3, 2]

    modelpack.random.seed(1)
    loader = make()
    list(loader)  # two batches, 2 examples left over
    between = modelpack.Checkpointer(tmp_path / "between").save(1, net, data=loader)
    assert modelpack.inspect(between).kind == "checkpoint"
    batches = iter(loader)
    next(batches)  # the carried examples and 2 new ones
    modelpack.Checkpointer(tmp_path / "mid").save(2, net, data=loader)

    modelpack.random.seed(7)  # the new process
    resumed = make()
    assert modelpack.Checkpointer(tmp_path / "between").restore(net, data=resumed) == 1
    assert len(resumed) == 3 and [[b.tolist() for b in resumed] for _ in range(2)] == expected[1:]
    modelpack.random.seed(7)
    resumed = make()
    assert modelpack.Checkpointer(tmp_path / "mid").restore(net, data=resumed) == 2
    assert [b.tolist() for b in resumed] == expected[1][1:]
    assert [b.tolist() for b in resumed] == expected[2]


def test_rollover_states_that_do_not_fit_are_refused():
    loader = gluon.data.DataLoader(gluon.data.ArrayDataset(np.arange(10)), batch_size=4, last_batch="rollover")
    with pytest.raises(CheckpointError, match=r"the saved carried examples are not 1 to 3 of this loader's 10 examples"):
        loader.import_state(0, np.arange(4))
    with pytest.raises(CheckpointError, match=r"the saved carried examples are not 1 to 3"):
        loader.import_state(0, np.array([3, 10]))
    with pytest.raises(CheckpointError, match=r"not at most 3 carried examples then a permutation of this loader's 10"):
        loader.import_state(1, np.arange(9))
    with pytest.raises(CheckpointError, match=r"not at most 3 carried examples then a permutation"):
        loader.import_state(1, np.concatenate([[1, 2], np.arange(9), [1]]))
    with pytest.raises(CheckpointError, match=r"the saved position 4 is past this loader's 3 batches"):
        loader.import_state(4, np.concatenate([[7, 8], np.arange(10)]))
    with pytest.raises(CheckpointError, match=r"not a list of example indices"):
        loader.import_state(1, np.arange(10.0))
    loader.import_state(0, np.array([8, 9]))  # a carry fits: the next pass starts with it
    assert len(loader) == 3 and [b.tolist() for b in loader][0] == [8, 9, 0, 1]
