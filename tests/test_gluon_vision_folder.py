"""``ImageFolderDataset`` (``modelpack.gluon.data.vision.folder``) with MXNet 1.9.1's
semantics: sorted class folders as labels, sorted image files, warnings for what is skipped,
images decoded on access. Decoding needs Pillow (skipped without it, required in CI's full
pass: see conftest.py); listing a folder does not."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

from modelpack.errors import FormatError, MissingFileError, PathError, UsageError
from modelpack.gluon.data import DataLoader
from modelpack.gluon.data.vision import transforms
from modelpack.gluon.data.vision.folder import ImageFolderDataset
from modelpack.image import ImageLimitError, ImageLimits
from modelpack.nn.devices import NDArray

try:
    import PIL.Image
except ImportError:
    PIL = None  # type: ignore[assignment]

needs_pillow = pytest.mark.skipif(PIL is None, reason='decoding needs Pillow: pip install "modelpack[image]"')


def photo(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def png(array: np.ndarray) -> bytes:
    """A PNG written by hand (zlib only), so the listing tests need no Pillow."""
    import struct
    import zlib

    h, w, _ = array.shape
    rows = b"".join(b"\x00" + array[i].tobytes() for i in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@pytest.fixture
def tree(tmp_path):
    """root/{b_dog,a_cat,c_empty}/..., with files MXNet skips, and the arrays written."""
    root = tmp_path / "root"
    arrays = {}
    for cls, names in {"b_dog": ["2.png", "1.PNG", "10.png"], "a_cat": ["x.png", "notes.txt"], "c_empty": []}.items():
        (root / cls).mkdir(parents=True)
        for k, name in enumerate(names):
            path = root / cls / name
            if name.endswith(".txt"):
                path.write_text("not an image")
                continue
            arrays[str(path)] = photo(6 + k, 9, seed=len(arrays))
            path.write_bytes(png(arrays[str(path)]))
    (root / "README").write_text("a file at the root")
    return root, arrays


def test_listing_follows_mxnet(tree):
    root, _ = tree
    with pytest.warns(UserWarning) as caught:
        ds = ImageFolderDataset(root)
    messages = [str(w.message) for w in caught]
    assert messages == [f"Ignoring {root}/README, which is not a directory.",
                        f"Ignoring {root}/a_cat/notes.txt of type .txt. Only support .jpg, .jpeg, .png"]
    assert ds.synsets == ["a_cat", "b_dog", "c_empty"]  # sorted; an empty class keeps its label
    assert ds.items == [(f"{root}/a_cat/x.png", 0), (f"{root}/b_dog/1.PNG", 1), (f"{root}/b_dog/10.png", 1),
                        (f"{root}/b_dog/2.png", 1)]
    assert len(ds) == 4 and repr(ds) == f"ImageFolderDataset(root={str(root)!r}, 3 classes, 4 images)"
    assert caught[0].filename == __file__  # the warnings point at the caller, as MXNet's


def test_missing_roots_and_bad_flags(tmp_path):
    with pytest.raises(MissingFileError, match=r"no such folder \(ImageFolderDataset reads root/<class>/<image>\)"):
        ImageFolderDataset(tmp_path / "nowhere")
    (tmp_path / "file").write_text("x")
    with pytest.raises(PathError, match=r"file: is a file, not a folder of class folders"):
        ImageFolderDataset(tmp_path / "file")
    with pytest.raises(UsageError, match=r"flag must be 1 \(colour, 3 channels\) or 0"):
        ImageFolderDataset(tmp_path, flag=3)


def test_a_folder_named_like_an_image_is_skipped(tmp_path):
    (tmp_path / "cls" / "odd.jpg").mkdir(parents=True)
    with pytest.warns(UserWarning, match=r"odd.jpg, which is not a file"):
        ds = ImageFolderDataset(tmp_path)
    assert ds.synsets == ["cls"] and ds.items == []


@needs_pillow
def test_items_are_decoded_on_access(tree):
    root, arrays = tree
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = ImageFolderDataset(root)
        gray = ImageFolderDataset(root, flag=0)
    for (path, label), (img, got_label) in zip(ds.items, (ds[i] for i in range(len(ds))), strict=True):
        assert isinstance(img, NDArray) and img.dtype == np.uint8 and got_label == label
        np.testing.assert_array_equal(img, arrays[path])
    assert gray[0][0].shape == (6, 9, 1)
    # lazily: a file replaced after listing is read as it is now; a damaged one fails when read
    first = ds.items[0][0]
    replacement = photo(4, 5, seed=42)
    with open(first, "wb") as stream:
        PIL.Image.fromarray(replacement).save(stream, "JPEG", quality=95)
    assert ds[0][0].shape == (4, 5, 3)
    with open(first, "wb") as stream:
        stream.write(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(FormatError, match=r"a_cat/x.png: "):
        ds[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small = ImageFolderDataset(root, limits=ImageLimits(max_bytes=100))
    with pytest.raises(ImageLimitError, match=r"b_dog/1.PNG: the decoded image's size"):
        small[1]


@needs_pillow
def test_transforms_and_the_data_loader(tree):
    root, arrays = tree
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = ImageFolderDataset(root, transform=lambda img, label: (img.astype(np.float32) / 255, label + 10))
        plain = ImageFolderDataset(root)
    img, label = ds[1]
    assert img.dtype == np.float32 and label == 11
    np.testing.assert_allclose(img, arrays[plain.items[1][0]] / np.float32(255))
    resized = plain.transform_first(transforms.Compose([transforms.Resize((8, 8)), transforms.ToTensor()]))
    batches = list(DataLoader(resized, batch_size=2))
    assert [b[0].shape for b in batches] == [(2, 3, 8, 8), (2, 3, 8, 8)]
    assert [int(v) for b in batches for v in b[1]] == [0, 1, 1, 1]


def test_the_dataset_pickles(tree):
    root, _ = tree
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = ImageFolderDataset(root, flag=0)
    again = pickle.loads(pickle.dumps(ds))
    assert again.items == ds.items and again.synsets == ds.synsets


def test_listing_needs_no_pillow(tree, monkeypatch):
    import sys

    root, _ = tree
    monkeypatch.setitem(sys.modules, "PIL", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = ImageFolderDataset(root)
    assert len(ds) == 4
    with pytest.raises(UsageError, match=r'pip install "modelpack\[image\]"'):
        ds[0]
