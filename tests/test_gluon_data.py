"""``gluon.data``: batching, seeded shuffling, and resuming a pass from its saved state."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import modelpack
from modelpack import gluon
from modelpack.errors import CheckpointError, UsageError


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
    with pytest.raises(UsageError, match=r"last_batch must be 'keep' or 'discard', got 'rollover'"):
        gluon.data.DataLoader(dataset(), batch_size=2, last_batch="rollover")
    with pytest.raises(UsageError, match=r"ArrayDataset arrays must have the same length, got lengths \[3, 2\]"):
        gluon.data.ArrayDataset(np.zeros(3), np.zeros(2))
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
