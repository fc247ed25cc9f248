"""``gluon.data.vision``'s datasets: exact reads of generated idx and CIFAR files, MXNet's
folders and URLs, downloads from a loopback server with SHA-1 checks, hostile files refused
with ``FormatError``, ``transform``/``transform_first``, d2l's Fashion-MNIST loader, and items,
slices and batches of the types MXNet 1.9.1 gives (tests/reference/mxnet_data_loader.json,
written with MXNet by scripts/make_mxnet_data_refs.py)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import socket
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
from reference_cases import vision_files
from remote_servers import RangeServer
from test_gluon_data import describe

import modelpack
from modelpack import gluon
from modelpack.errors import FormatError, IntegrityError, MissingFileError, UnsupportedFeatureError
from modelpack.gluon.data.vision import datasets, readers
from modelpack.nn.devices import NDArray

SPLITS = {True: ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
          False: ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def idx_bytes(array: np.ndarray, *, magic: bytes | None = None, dims: tuple[int, ...] | None = None) -> bytes:
    shape = array.shape if dims is None else dims
    header = (magic or bytes([0, 0, 8, len(shape)])) + struct.pack(f">{len(shape)}I", *shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def images_labels(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n).astype(np.uint8)


def mnist_root(root: Path, n_train: int = 6, n_test: int = 3) -> dict[bool, tuple[np.ndarray, np.ndarray]]:
    root.mkdir(parents=True, exist_ok=True)
    made = {}
    for train, n in ((True, n_train), (False, n_test)):
        images, labels = images_labels(n, seed=int(train))
        (root / SPLITS[train][0]).write_bytes(idx_bytes(images))
        (root / SPLITS[train][1]).write_bytes(idx_bytes(labels))
        made[train] = (images, labels)
    return made


def test_fashion_mnist_items_are_mxnet_s(tmp_path):
    made = mnist_root(tmp_path)
    for train in (True, False):
        data = gluon.data.vision.FashionMNIST(root=str(tmp_path), train=train)
        images, labels = made[train]
        assert len(data) == len(labels)
        for i in range(len(data)):
            image, label = data[i]
            assert isinstance(image, NDArray) and image.shape == (28, 28, 1) and image.dtype == np.uint8
            assert np.array_equal(image[..., 0], images[i])
            # MXNet's numpy mode: a 0-d int32 array
            assert type(label) is NDArray and label.shape == () and label.dtype == np.int32 and label == labels[i]
    assert isinstance(gluon.data.vision.MNIST(root=tmp_path, train=False), gluon.data.Dataset)
    X, y = data[:2]  # d2l's show_images(X.squeeze(axis=-1), ...) of mnist_train[:18]
    assert type(X) is NDArray and X.shape == (2, 28, 28, 1)
    assert type(y) is NDArray and y.dtype == np.int32 and y.asnumpy().tolist() == made[False][1][:2].tolist()


def test_default_root_is_mxnet_home_and_root_is_expanded(tmp_path, monkeypatch):
    mnist_root(tmp_path / "home" / "datasets" / "fashion-mnist")
    monkeypatch.setenv("MXNET_HOME", str(tmp_path / "home"))
    assert len(gluon.data.vision.FashionMNIST(train=False)) == 3
    mnist_root(tmp_path / "user" / "digits", n_test=2)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert len(gluon.data.vision.MNIST(root="~/digits", train=False)) == 2
    monkeypatch.delenv("MXNET_HOME")
    assert datasets.download.data_dir() == tmp_path / "user" / ".mxnet"


def cifar_records(n: int, seed: int, label_bytes: int = 1, limits: tuple[int, ...] = (10,)) -> bytes:
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, 256, (n, label_bytes + 3072), dtype=np.uint8)
    for column, limit in enumerate(limits):
        rows[:, column] %= limit
    return rows.tobytes()


def test_cifar10_reads_the_binary_batches_as_hwc(tmp_path):
    for i in range(1, 6):
        (tmp_path / f"data_batch_{i}.bin").write_bytes(cifar_records(2, i))
    (tmp_path / "test_batch.bin").write_bytes(cifar_records(3, 9))
    train = gluon.data.vision.CIFAR10(root=tmp_path, train=True)
    assert len(train) == 10 and len(gluon.data.vision.CIFAR10(root=tmp_path, train=False)) == 3
    raw = np.frombuffer(cifar_records(2, 2), np.uint8).reshape(2, 3073)
    image, label = train[3]  # batch 2's second record
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8 and label == raw[1, 0]
    for y, x, c in [(0, 0, 0), (5, 17, 1), (31, 2, 2)]:  # plane c, row y, column x
        assert image[y, x, c] == raw[1, 1 + c * 1024 + y * 32 + x]
    augs = gluon.data.vision.transforms.Compose([gluon.data.vision.transforms.RandomFlipLeftRight(),
                                                 gluon.data.vision.transforms.ToTensor()])
    X, y = next(iter(gluon.data.DataLoader(train.transform_first(augs), 4, shuffle=True, num_workers=4)))
    assert X.shape == (4, 3, 32, 32) and X.dtype == np.float32 and y.dtype == np.int32


def test_cifar100_coarse_and_fine_labels(tmp_path):
    (tmp_path / "train.bin").write_bytes(cifar_records(4, 1, 2, (20, 100)))
    (tmp_path / "test.bin").write_bytes(cifar_records(1, 2, 2, (20, 100)))
    raw = np.frombuffer(cifar_records(4, 1, 2, (20, 100)), np.uint8).reshape(4, 3074)
    coarse = gluon.data.vision.CIFAR100(root=tmp_path)
    fine = gluon.data.vision.CIFAR100(root=tmp_path, fine_label=True)
    assert [int(coarse[i][1]) for i in range(4)] == raw[:, 0].tolist()
    assert [int(fine[i][1]) for i in range(4)] == raw[:, 1].tolist()
    assert np.array_equal(fine[0][0][0, 0], raw[0, [2, 2 + 1024, 2 + 2048]])


@pytest.fixture(scope="module")
def loopback():
    served = RangeServer()
    yield served
    served.stop()


@pytest.fixture
def server(loopback, monkeypatch):
    loopback.files.clear()
    loopback.log.clear()
    monkeypatch.setenv("MXNET_GLUON_REPO", loopback.url)  # no trailing slash: one is added
    return loopback


def test_download_checks_sha1_and_renames_into_place(tmp_path, server, monkeypatch):
    made = mnist_root(tmp_path / "served")
    files = {name: (tmp_path / "served" / name).read_bytes() for name in SPLITS[False]}
    for name, data in files.items():
        server.files[f"/gluon/dataset/fashion-mnist/{name}"] = data
    test_split = tuple((name, hashlib.sha1(files[name]).hexdigest()) for name in SPLITS[False])
    monkeypatch.setitem(datasets.MNIST_FILES["fashion-mnist"], False, test_split)
    root = tmp_path / "fresh" / "fashion"
    data = gluon.data.vision.FashionMNIST(root=root, train=False)
    assert np.array_equal(np.stack([data[i][0][..., 0] for i in range(3)]), made[False][0])
    assert sorted(p.name for p in root.iterdir()) == sorted(SPLITS[False])  # nothing else left
    assert [r.path for r in server.log.gets()] == [f"/gluon/dataset/fashion-mnist/{n}" for n in SPLITS[False][::-1]]
    server.log.clear()
    gluon.data.vision.FashionMNIST(root=root, train=False)  # present files are read, not fetched
    assert server.log.gets() == []


def test_a_wrong_sha1_is_refused_and_not_kept(tmp_path, server):
    mnist_root(tmp_path / "served")
    for name in SPLITS[False]:
        server.files[f"/gluon/dataset/mnist/{name}"] = (tmp_path / "served" / name).read_bytes()
    root = tmp_path / "root"
    with pytest.raises(IntegrityError, match=r"/gluon/dataset/mnist/t10k-labels-idx1-ubyte.gz: the downloaded "
                                             r"file's SHA-1 is [0-9a-f]{40}, expected 763e7fa3.*not kept"):
        gluon.data.vision.MNIST(root=root, train=False)
    assert list(root.iterdir()) == []


def closed_port_url() -> str:
    with socket.socket() as probe:  # a port just freed: nothing listens on it
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/"


def test_an_unreachable_repository_says_where_to_put_the_file(tmp_path, monkeypatch, server):
    with pytest.raises(MissingFileError, match=r"t10k-labels-idx1-ubyte.gz: not found, and downloading it from "
                                               r"http://127.0.0.1:\d+/gluon/dataset/mnist/t10k-labels-idx1-ubyte.gz "
                                               r"failed \(.*404.*\); place t10k-labels-idx1-ubyte.gz in "):
        gluon.data.vision.MNIST(root=tmp_path, train=False)
    monkeypatch.setenv("MXNET_GLUON_REPO", closed_port_url())
    with pytest.raises(MissingFileError, match=r"downloading it from http://127.0.0.1.*failed.*MXNET_GLUON_REPO"):
        gluon.data.vision.MNIST(root=tmp_path, train=False)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setenv("MXNET_GLUON_REPO", "file:///etc/")
    with pytest.raises(modelpack.errors.UsageError, match=r"must be an http:// or https:// URL"):
        gluon.data.vision.MNIST(root=tmp_path, train=False)


def cifar_archive(members: dict[str, bytes | None], folder: str = "cifar-10-batches-bin") -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"{folder}/{name}" if folder else name)
            if data is None:  # a symbolic link where a batch should be
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.fixture
def small_cifar(monkeypatch):
    """CIFAR-10's tables with two records per batch file (the real ones hold 10000)."""
    files = {True: tuple((f"data_batch_{i}.bin", 2) for i in range(1, 6)), False: (("test_batch.bin", 2),)}
    monkeypatch.setitem(datasets.CIFAR_FILES, "cifar10", files)
    return {name: cifar_records(2, i) for i, (name, _) in enumerate(files[True] + files[False])}


def test_cifar10_downloads_and_extracts_only_its_batches(tmp_path, server, monkeypatch, small_cifar):
    members = {**small_cifar, "batches.meta.txt": b"airplane\n", "../../escape.bin": b"x"}
    archive = cifar_archive(members)
    server.files["/gluon/dataset/cifar10/cifar-10-binary.tar.gz"] = archive
    monkeypatch.setitem(datasets.CIFAR_ARCHIVES, "cifar10",
                        ("cifar-10-binary.tar.gz", hashlib.sha1(archive).hexdigest()))
    test = gluon.data.vision.CIFAR10(root=tmp_path / "c", train=False)
    assert len(test) == 2 and int(test[1][1]) == small_cifar["test_batch.bin"][3073]
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == sorted(["cifar-10-binary.tar.gz", *small_cifar])
    assert not (tmp_path / "escape.bin").exists()


@pytest.mark.parametrize(("change", "message"), [
    ({"test_batch.bin": None}, r"member 'cifar-10-batches-bin/test_batch.bin' is not a regular file of 6146 bytes"),
    ({"test_batch.bin": b"short"}, r"is not a regular file of 6146 bytes \(found 5 bytes"),
    ({"data_batch_3.bin": "drop"}, r"the archive lacks data_batch_3.bin"),
])
def test_hostile_cifar_archives(tmp_path, server, monkeypatch, small_cifar, change, message):
    members = {**small_cifar, **change}
    archive = cifar_archive({k: v for k, v in members.items() if v != "drop"})  # type: ignore[misc]
    server.files["/gluon/dataset/cifar10/cifar-10-binary.tar.gz"] = archive
    monkeypatch.setitem(datasets.CIFAR_ARCHIVES, "cifar10",
                        ("cifar-10-binary.tar.gz", hashlib.sha1(archive).hexdigest()))
    with pytest.raises(FormatError, match=message):
        gluon.data.vision.CIFAR10(root=tmp_path, train=False)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_hostile_idx_files_raise_format_errors(tmp_path):
    images, labels = images_labels(4, 0)
    cases = {
        "bad magic": (idx_bytes(labels, magic=b"\x1f\x8b\x08\x01"), r"not an idx file of unsigned bytes "
                      r"\(magic number 1f8b0801, expected 00000801\)"),
        "float dtype": (idx_bytes(labels, magic=b"\0\0\x0d\x01"), r"not an idx file of unsigned bytes"),
        "wrong rank": (idx_bytes(images), r"an idx file of 3 dimensions, expected 1"),
        "short header": (gzip.compress(b"\0\0\x08\x01\0\0"), r"truncated: the idx dimensions needs 4 bytes, "
                         r"the file holds 2"),
        "dims over data": (idx_bytes(labels, dims=(5,)), r"truncated: its header declares 5 bytes of data "
                           r"\(shape \(5,\)\), the file holds 4"),
        "more than declared": (idx_bytes(labels, dims=(3,)), r"more data than its header declares \(3 bytes"),
        "huge dims": (idx_bytes(labels, dims=(0xFFFFFFFF,)), r"declares 4294967295 bytes of data .* over the "
                      r"limit of 1073741824"),
        "not gzip": (b"\0\0\x08\x01\0\0\0\x04abcd", r"not a valid gzip file"),
        "cut gzip": (idx_bytes(labels)[:-12], r"not a valid gzip file|truncated"),
    }
    for name, (data, message) in cases.items():
        with pytest.raises(FormatError, match=message) as caught:
            readers.read_idx(write(tmp_path / f"{name}.gz", data), 1)
        assert str(caught.value).startswith(str(tmp_path / f"{name}.gz")), name


def test_gzip_bombs_are_not_decompressed_past_the_header(tmp_path):
    # 64 MB of zeros behind a header declaring 10 bytes: refused after reading 11
    bomb = io.BytesIO()
    with gzip.GzipFile(fileobj=bomb, mode="wb", compresslevel=1) as out:
        out.write(b"\0\0\x08\x01" + struct.pack(">I", 10))
        for _ in range(64):
            out.write(bytes(1 << 20))
    with pytest.raises(FormatError, match=r"more data than its header declares \(10 bytes"):
        readers.read_idx(write(tmp_path / "bomb.gz", bomb.getvalue()), 1)
    # a header declaring 500 MB in a file of a few dozen bytes: refused before allocating it
    liar = gzip.compress(b"\0\0\x08\x03" + struct.pack(">3I", 500_000, 1000, 1))
    with pytest.raises(FormatError, match=r"declares 500000000 bytes .* more than a gzip file of \d+ bytes can hold"):
        readers.read_idx(write(tmp_path / "liar.gz", liar), 3)


def test_mismatched_counts_and_bad_cifar_records(tmp_path):
    mnist_root(tmp_path)
    (tmp_path / SPLITS[False][1]).write_bytes(idx_bytes(np.zeros(2, np.uint8)))
    with pytest.raises(FormatError, match=r"t10k-images-idx3-ubyte.gz: 3 images, but .*t10k-labels.* holds 2 labels"):
        gluon.data.vision.FashionMNIST(root=tmp_path, train=False)
    with pytest.raises(FormatError, match=r"3074 bytes is not a whole number of 3073-byte CIFAR records"):
        readers.read_records(write(tmp_path / "a.bin", bytes(3074)), 1, (10,))
    with pytest.raises(FormatError, match=r"0 bytes is not a whole number"):
        readers.read_records(write(tmp_path / "b.bin", b""), 1, (10,))
    with pytest.raises(FormatError, match=r"b.bin: record 1 has label 10, expected one of 0..9"):
        readers.read_records(write(tmp_path / "b.bin", bytes(3073) + b"\x0a" + bytes(3072)), 1, (10,))


def test_transform_and_transform_first_as_mxnet(tmp_path):
    arrays = gluon.data.ArrayDataset(np.arange(4), np.arange(4) * 10)
    doubled = arrays.transform_first(lambda x: x * 2)
    assert [doubled[i] for i in range(4)] == [(0, 0), (2, 10), (4, 20), (6, 30)]
    summed = arrays.transform(lambda x, y: x + y, lazy=False)
    assert isinstance(summed, gluon.data.SimpleDataset) and [summed[i] for i in range(4)] == [0, 11, 22, 33]
    calls = []
    lazy = gluon.data.SimpleDataset([1, 2]).transform(lambda x: calls.append(x) or x)
    assert calls == [] and lazy[1] == 2 and calls == [2]  # a single field is passed as it is
    mnist_root(tmp_path)
    legacy = gluon.data.vision.MNIST(root=tmp_path, train=False, transform=lambda x, y: (x.shape, y + 1))
    assert legacy[0][0] == (28, 28, 1)


def test_d2l_load_data_fashion_mnist_runs_end_to_end(tmp_path, monkeypatch):
    made = mnist_root(tmp_path / "datasets" / "fashion-mnist", n_train=10, n_test=5)
    monkeypatch.setenv("MXNET_HOME", str(tmp_path))

    def load_data_fashion_mnist(batch_size, resize=None):  # d2l's, MXNet edition, as written
        dataset = gluon.data.vision
        trans = [dataset.transforms.ToTensor()]
        if resize:
            trans.insert(0, dataset.transforms.Resize(resize))
        trans = dataset.transforms.Compose(trans)
        mnist_train = dataset.FashionMNIST(train=True).transform_first(trans)
        mnist_test = dataset.FashionMNIST(train=False).transform_first(trans)
        return (gluon.data.DataLoader(mnist_train, batch_size, shuffle=True, num_workers=4),
                gluon.data.DataLoader(mnist_test, batch_size, shuffle=False, num_workers=4))

    modelpack.random.seed(0)
    train_iter, test_iter = load_data_fashion_mnist(4, resize=64)
    batches = list(train_iter)
    assert [len(y) for _, y in batches] == [4, 4, 2]
    X, y = batches[0]
    assert isinstance(X, NDArray) and X.shape == (4, 1, 64, 64) and X.dtype == np.float32
    assert y.dtype == np.int32 and y.shape == (4,)
    assert sorted(np.concatenate([b[1] for b in batches]).tolist()) == sorted(made[True][1].tolist())
    X, y = next(iter(test_iter))
    assert X.shape == (4, 1, 64, 64) and y.tolist() == made[False][1][:4].tolist()
    assert 0.0 <= float(X.min()) and float(X.max()) <= 1.0
    plain, _ = load_data_fashion_mnist(5)
    assert next(iter(plain))[0].shape == (5, 1, 28, 28)


def test_left_out_vision_names_say_what_to_do():
    """The same refusal in both namespaces MXNet code spells, from the one table in ``datasets``;
    ImageFolderDataset is in both (d2l's dcgan writes ``gluon.data.vision.datasets.ImageFolderDataset``)."""
    for name in ("ImageListDataset", "ImageRecordDataset"):
        for module in (gluon.data.vision, gluon.data.vision.datasets):
            where = module.__name__.removeprefix("modelpack.")
            with pytest.raises(UnsupportedFeatureError, match=rf"^{where}.{name} is not supported by modelpack: "
                                                              r"read the images with modelpack\.image\.imread.*ArrayDataset"):
                getattr(module, name)
    assert gluon.data.vision.ImageFolderDataset is gluon.data.vision.datasets.ImageFolderDataset
    with pytest.raises(UnsupportedFeatureError, match=r"gluon.data.vision has MNIST, FashionMNIST"):
        gluon.data.vision.SVHN  # noqa: B018
    with pytest.raises(UnsupportedFeatureError, match=r"gluon.data.vision.datasets has MNIST, FashionMNIST, CIFAR10, "
                                                      r"CIFAR100, ImageFolderDataset$"):
        gluon.data.vision.datasets.SVHN  # noqa: B018
    assert set(gluon.data.vision.datasets.__all__) < set(gluon.data.vision.__all__)
    assert all(getattr(gluon.data.vision, name) is getattr(gluon.data.vision.datasets, name)
               for name in gluon.data.vision.datasets.__all__)


# -- MXNet 1.9.1's references: the generators are scripts/make_mxnet_data_refs.py's ----------------
VISION = json.loads((Path(__file__).with_name("reference") / "mxnet_data_loader.json").read_text())["vision"]


def float_image(data, label):
    return data.astype("float32") / 255, label


@pytest.fixture(scope="module")
def reference_roots(tmp_path_factory):
    root = tmp_path_factory.mktemp("mxnet_reference")
    vision_files(root)
    return {"MNIST": lambda **kw: gluon.data.vision.MNIST(root=root / "mnist", **kw),
            "FashionMNIST": lambda **kw: gluon.data.vision.FashionMNIST(root=root / "fashion-mnist", **kw),
            "CIFAR10": lambda **kw: gluon.data.vision.CIFAR10(root=root / "cifar10", **kw),
            "CIFAR100_fine": lambda **kw: gluon.data.vision.CIFAR100(root=root / "cifar100", fine_label=True, **kw)}


@pytest.mark.parametrize("case", sorted(VISION))
def test_items_slices_and_batches_are_mxnets(case, reference_roots):
    """Items, slices (d2l's naive Bayes: ``X, Y = mnist_test[:n]`` then ``Y.asnumpy()``), the
    same through ``transform=`` and ``transform_first``, and a loader's batch: MXNet's kinds
    (NDArrays, labels included), dtypes, shapes and values."""
    name, split = case.rsplit("_", 1)
    make = reference_roots[name]
    plain, transformed = make(train=split == "train"), make(train=split == "train", transform=float_image)
    firsts = plain.transform_first(lambda data: data.astype("float32"))
    got = {"len": len(plain), "item": describe(plain[2]), "slice": describe(plain[:4]),
           "transform_item": describe(transformed[1]), "transform_slice": describe(transformed[:4]),
           "transform_first_item": describe(firsts[2]),
           "loader_batch": describe(next(iter(gluon.data.DataLoader(plain, batch_size=3))))}
    assert got == VISION[case]
    assert transformed[:4][1].asnumpy().dtype == np.int32
