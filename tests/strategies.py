"""Hypothesis strategies shared by the archive tests: random valid networks and tensors.

A network is drawn as a stack of layers whose shapes are consistent with a drawn input
shape, sometimes nested in inner Sequentials, in one of three families: feature vectors
(N, F), images (N, C, H, W) and token ids (N, L) for an Embedding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from modelpack import nn

FLOAT_DTYPES = ["float16", "float32", "float64"]
ACTIVATIONS = ["relu", "sigmoid", "tanh", "softrelu", "softsign", "gelu", "silu"]


@dataclass
class Drawn:
    """A built, initialised network, an input for it, and the seed used for its weights."""

    net: nn.Sequential
    x: np.ndarray
    weight_seed: int
    special_fraction: float


def _maybe(draw: st.DrawFn, value: object) -> object:
    return draw(st.sampled_from([None, value]))


@st.composite
def vector_layer(draw: st.DrawFn, depth: int) -> nn.Block:
    choice = draw(st.sampled_from(["dense", "act", "leaky", "elu", "dropout", "ln", "bn", "nest"]))
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    if choice == "dense":
        return nn.Dense(
            draw(st.integers(1, 6)),
            activation=draw(st.sampled_from([None, *ACTIVATIONS])),
            use_bias=draw(st.booleans()),
            flatten=draw(st.booleans()),
            dtype=dtype,
        )
    if choice == "act":
        return nn.Activation(draw(st.sampled_from(ACTIVATIONS)))
    if choice == "leaky":
        return nn.LeakyReLU(draw(st.floats(0, 1)))
    if choice == "elu":
        return nn.ELU(draw(st.floats(0.1, 2)))
    if choice == "dropout":
        return nn.Dropout(draw(st.floats(0, 0.9)))
    if choice == "ln":
        return nn.LayerNorm(epsilon=draw(st.sampled_from([1e-5, 1e-3])), center=draw(st.booleans()),
                            scale=draw(st.booleans()), dtype=dtype)
    if choice == "bn":
        return nn.BatchNorm(axis=1, momentum=draw(st.floats(0.5, 0.99)), dtype=dtype)
    if depth >= 2:
        return nn.Activation("tanh")
    inner = nn.Sequential()
    inner.add(*draw(st.lists(vector_layer(depth + 1), min_size=0, max_size=3)))
    return inner


@st.composite
def image_layer(draw: st.DrawFn, size: int) -> tuple[nn.Block, int]:
    """A layer for NCHW input of spatial size ``size``; returns it and the output size."""
    choice = draw(st.sampled_from(["conv", "maxpool", "avgpool", "bn", "act"]))
    if choice == "conv":
        k = draw(st.integers(1, min(3, size)))
        pad = draw(st.integers(0, 1))
        groups = draw(st.sampled_from([1, 2]))
        layer = nn.Conv2D(
            channels=2 * draw(st.integers(1, 2)), kernel_size=k, strides=draw(st.integers(1, 2)),
            padding=pad, groups=groups, use_bias=draw(st.booleans()),
            activation=draw(st.sampled_from([None, "relu", "tanh"])),
            dtype=draw(st.sampled_from(FLOAT_DTYPES)),
        )
        return layer, (size + 2 * pad - k) // layer._strides[0] + 1
    if choice in ("maxpool", "avgpool") and size >= 2:
        cls = nn.MaxPool2D if choice == "maxpool" else nn.AvgPool2D
        layer = cls(pool_size=2, strides=draw(st.integers(1, 2)), ceil_mode=draw(st.booleans()))
        return layer, layer._out_size(size, 0)
    if choice == "bn":
        return nn.BatchNorm(dtype=draw(st.sampled_from(FLOAT_DTYPES))), size
    return nn.Activation(draw(st.sampled_from(ACTIVATIONS))), size


@st.composite
def networks(draw: st.DrawFn) -> Drawn:
    """A random valid network from the registry, initialised, with a matching input."""
    family = draw(st.sampled_from(["vector", "image", "tokens"]))
    batch = draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    net = nn.Sequential()
    if family == "vector":
        features = draw(st.integers(1, 6))
        x = rng.normal(size=(batch, features))
        net.add(*draw(st.lists(vector_layer(0), min_size=1, max_size=5)))
    elif family == "image":
        channels, size = 2, draw(st.integers(2, 6))
        x = rng.normal(size=(batch, channels, size, size))
        for _ in range(draw(st.integers(1, 3))):
            layer, size = draw(image_layer(size))
            net.add(layer)
            if size < 1:
                break
        net.add(draw(st.sampled_from([nn.GlobalAvgPool2D, nn.GlobalMaxPool2D, nn.Flatten]))())
        net.add(nn.Flatten(), nn.Dense(draw(st.integers(1, 4))))
    else:
        vocab = draw(st.integers(1, 10))
        x = rng.integers(0, vocab, size=(batch, draw(st.integers(1, 4))))
        net.add(nn.Embedding(vocab, draw(st.integers(1, 4)), dtype=draw(st.sampled_from(FLOAT_DTYPES))))
        net.add(nn.Dense(draw(st.integers(1, 4)), flatten=draw(st.booleans())))
    net.initialize(seed=draw(st.integers(0, 1000)))
    with np.errstate(all="ignore"):
        net(x)  # infer deferred shapes
    return Drawn(net, x, draw(st.integers(0, 2**32 - 1)), draw(st.sampled_from([0.0, 0.1, 0.5])))


def special_values(dtype: np.dtype, rng: np.random.Generator, count: int) -> np.ndarray:
    """NaNs with random payloads, ±inf, ±0, subnormals, extremes: the values that break codecs."""
    info = np.finfo(dtype)
    uint = {2: np.uint16, 4: np.uint32, 8: np.uint64}[dtype.itemsize]
    random_bits = rng.integers(0, np.iinfo(uint).max, size=count, dtype=uint, endpoint=True)
    pool = np.concatenate([
        np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, info.max, info.min,
                  info.tiny, info.smallest_subnormal, -info.smallest_subnormal], dtype=dtype),
        random_bits.view(dtype),  # includes NaNs whose payload bits must survive
    ])
    return rng.choice(pool, size=count)


def fill_weights(net: nn.Block, seed: int, special_fraction: float) -> None:
    """Overwrite every parameter with normal values, a fraction of them special."""
    rng = np.random.default_rng(seed)
    for param in net.collect_params().values():
        data = rng.normal(size=param.shape).astype(param.dtype)
        mask = rng.random(param.shape) < special_fraction
        data[mask] = special_values(param.dtype, rng, int(mask.sum()))
        param.set_data(data)


SUPPORTED = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
             "float16", "float32", "float64", "complex64", "complex128"]


@st.composite
def arrays(draw: st.DrawFn) -> np.ndarray:
    """Any storable array: every dtype, 0-d and empty shapes, arbitrary bit patterns."""
    dtype = np.dtype(draw(st.sampled_from(SUPPORTED)))
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=0, max_size=3)))
    raw = draw(st.binary(min_size=int(np.prod(shape)) * dtype.itemsize,
                         max_size=int(np.prod(shape)) * dtype.itemsize))
    if dtype == np.bool_:
        return np.frombuffer(raw, dtype=np.uint8).astype(bool).reshape(shape)
    return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


tensor_names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\"),
    min_size=1, max_size=20,
)

containers = st.one_of(
    arrays(),
    st.lists(arrays(), max_size=4),
    st.lists(arrays(), max_size=4).map(tuple),
    st.dictionaries(tensor_names, arrays(), max_size=4),
)


def documents(text: st.SearchStrategy[str], *, allow_infinity: bool) -> st.SearchStrategy[dict]:
    """Manifest-like plain data: a mapping of ``text`` keys to nested None, bools, ints, ``text``
    and floats (never NaN, which is not equal to itself), in lists and mappings."""
    values = st.recursive(
        st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | text  # FORMAT.md §2.1's integers
        | st.floats(allow_nan=False, allow_infinity=allow_infinity),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
        max_leaves=20,
    )
    return st.dictionaries(text, values, max_size=5)
