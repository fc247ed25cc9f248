"""``modelpack.image`` against MXNet 1.9.1 (references written by
``scripts/make_mxnet_image_refs.py`` with real MXNet, which decodes and resizes with OpenCV
3.4.2), and image files as hostile input.

Tolerances, as measured: decoding is bit-exact for every PNG, BMP and TIFF case and for
JPEG (libjpeg-turbo on both sides; the test allows 1 level for JPEG in case another
libjpeg-turbo rounds an IDCT differently); the one known difference is a 16-bit colour PNG
read as gray (Pillow keeps 8 of its 16 bits): within 1 level, 3 with a gamma (libpng's
16-bit gamma tables, not emulated). Resizing is
bit-exact for uint8 (OpenCV's fixed point, emulated) and float32 for every interpolation;
crops are exact.

Tests that decode need Pillow and are skipped without it, except in CI's full pass
(``MODELPACK_REQUIRE_ORACLES=1``, see conftest.py), where Pillow must be installed.
"""

from __future__ import annotations

import io
import json
import os
import struct
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from fuzzing import time_bound

import modelpack
from modelpack import image
from modelpack.errors import (
    FormatError,
    InputError,
    LimitError,
    MissingFileError,
    PathError,
    UnsupportedFeatureError,
    UsageError,
)
from modelpack.image import geometry
from modelpack.nn.devices import NDArray

try:
    import PIL.Image
except ImportError:  # the newcomer's install: no Pillow
    PIL = None  # type: ignore[assignment]

needs_pillow = pytest.mark.skipif(PIL is None, reason='decoding needs Pillow: pip install "modelpack[image]"')

REFERENCE = Path(__file__).parent / "reference"
META = json.loads((REFERENCE / "mxnet_image.json").read_text())
BLOBS = {name: dict(np.load(REFERENCE / f"mxnet_image_{name}.npz")) for name in ("decode", "resize")}
JPEG_TOLERANCE = 1  # measured 0
# the one known difference: 16-bit colour PNGs read as gray (Pillow keeps 8 of 16 bits)
GRAY16_TOLERANCE = {"png_rgb16": 1, "png_rgb16_gamma": 3}


def ref(key: str) -> np.ndarray:
    """A named array of the references (each .npz holds one flat array per dtype)."""
    dtype, shape, offset = META["arrays"][key]
    blob = BLOBS["decode" if key.startswith(("file:", "decode:", "refused:")) else "resize"][dtype]
    return blob[offset : offset + int(np.prod(shape))].reshape(shape)


def encoded(array: np.ndarray, fmt: str = "PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    PIL.Image.fromarray(array).save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def photo(h: int = 7, w: int = 9, c: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)


# ---------------------------------------------------------------- decoding, against MXNet

DECODES = [(name, flag, to_rgb) for name in META["decode"] for flag, to_rgb in META["flags"]]
DECODES += [(name, 1, False) for name in META["bgr"]]


@needs_pillow
@pytest.mark.parametrize(("name", "flag", "to_rgb"), DECODES, ids=[f"{n}-{f}-{int(t)}" for n, f, t in DECODES])
def test_decoding_equals_mxnet(name, flag, to_rgb):
    expected = ref(f"decode:{name}:{flag}:{int(to_rgb)}")
    got = image.imdecode(ref(f"file:{name}").tobytes(), flag=flag, to_rgb=to_rgb)
    assert isinstance(got, NDArray) and got.dtype == np.uint8 and got.shape == expected.shape
    diff = np.abs(got.astype(int) - expected.astype(int)).max()
    if META["decode"][name]["format"] == "JPEG":
        assert diff <= JPEG_TOLERANCE
    elif flag == 0 and name in GRAY16_TOLERANCE:
        assert diff <= GRAY16_TOLERANCE[name]
    else:
        assert diff == 0


@needs_pillow
def test_exif_orientation_turns_camera_files_only_as_mxnet():
    # MXNet reads the size of a JFIF file itself and decodes it ignoring the EXIF tag; a
    # camera file (EXIF first) is decoded by OpenCV with its orientation applied
    upright = image.imdecode(ref("file:jpeg_exif_orient1").tobytes()).asnumpy()
    assert upright.shape == (9, 14, 3)
    assert image.imdecode(ref("file:jpeg_exif_orient6").tobytes()).shape == (14, 9, 3)
    assert image.imdecode(ref("file:jpeg_jfif_orient6").tobytes()).shape == (9, 14, 3)
    np.testing.assert_array_equal(image.imdecode(ref("file:jpeg_exif_orient3").tobytes()), upright[::-1, ::-1])


@needs_pillow
@pytest.mark.parametrize("name", sorted(META["refused"]))
def test_formats_mxnet_does_not_read_are_refused(name):
    assert META["refused"][name] != "decoded"  # MXNet's OpenCV refused them too
    with pytest.raises(FormatError, match=r"imdecode's buffer \(\d+ bytes\): not an image file modelpack "
                                          r"decodes \(JPEG, PNG, BMP, TIFF"):
        image.imdecode(ref(f"refused:{name}").tobytes())


@needs_pillow
def test_imread_reads_a_file_as_imdecode_its_bytes(tmp_path):
    path = tmp_path / "cat.png"
    path.write_bytes(ref("file:png_palette").tobytes())
    for flag in (0, 1):
        np.testing.assert_array_equal(image.imread(path, flag), ref(f"decode:png_palette:{flag}:1"))
        np.testing.assert_array_equal(image.imread(str(path), flag=flag), image.imdecode(path.read_bytes(), flag))
    as_array = np.frombuffer(path.read_bytes(), np.uint8)
    np.testing.assert_array_equal(image.imdecode(as_array), image.imread(path))
    out = np.zeros((11, 13, 3), np.uint8)
    assert image.imread(path, out=out) is out and np.array_equal(out, ref("decode:png_palette:1:1"))


@needs_pillow
def test_imread_missing_files_and_folders(tmp_path):
    with pytest.raises(MissingFileError, match=r"nothing\.png: no such image file"):
        image.imread(tmp_path / "nothing.png")
    with pytest.raises(PathError, match=r"is a folder, not an image file"):
        image.imread(tmp_path)
    if hasattr(os, "mkfifo"):  # a pipe among a dataset's files: refused, never waited on
        os.mkfifo(tmp_path / "pipe.png")
        with pytest.raises(PathError, match=r"pipe\.png: cannot be read \(.*pipe\.png is a pipe, socket or device\)"):
            with time_bound(10.0):
                image.imread(tmp_path / "pipe.png")


@needs_pillow
def test_decode_arguments_are_checked():
    data = ref("file:png_rgb").tobytes()
    with pytest.raises(UsageError, match=r"flag must be 1 \(colour, 3 channels\) or 0 \(gray, 1 channel\), as MXNet's; got 2"):
        image.imdecode(data, flag=2)
    with pytest.raises(UsageError, match=r"imdecode takes bytes, bytearray or a uint8 array, got str; to read a file by its name use imread"):
        image.imdecode("cat.png")
    with pytest.raises(UsageError, match=r"imdecode takes a uint8 buffer, got an array of float32"):
        image.imdecode(np.zeros(4, np.float32))
    with pytest.raises(FormatError, match=r"imdecode's buffer \(0 bytes\): empty"):
        image.imdecode(b"")
    with pytest.raises(UsageError, match=r"imdecode's out= must be an array of shape \(11, 13, 3\)"):
        image.imdecode(data, out=np.zeros((2, 2, 3), np.uint8))


# ---------------------------------------------------------------- hostile files


def png_declaring(width: int, height: int, colour_type: int = 2) -> bytes:
    """A PNG whose header declares width × height 8-bit pixels, with almost no data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


@needs_pillow
def test_a_declared_size_over_the_limit_is_refused_before_decoding():
    # 9000 × 9000 RGBA = 324,000,000 bytes > 256 MiB; below Pillow's own pixel guard
    with pytest.raises(image.ImageLimitError) as caught:
        image.imdecode(png_declaring(9000, 9000, colour_type=6))
    assert str(caught.value) == (
        "imdecode's buffer (69 bytes): the decoded image's size in bytes (9000×9000×4, from its PNG header) "
        "(324000000) is over the limit of 268435456; pass limits=modelpack.image.ImageLimits(max_bytes=...) "
        "to allow more")
    assert isinstance(caught.value, LimitError) and isinstance(caught.value, FormatError)
    assert (caught.value.limit, caught.value.value, caught.value.allowed) == ("max_bytes", 324000000, 256 << 20)
    small = ref("file:png_rgb").tobytes()  # 13 wide, 11 high, 3 channels: 429 bytes
    with pytest.raises(image.ImageLimitError, match=r"\(13×11×3, from its PNG header\) \(429\) is over the limit of 428"):
        image.imdecode(small, limits=image.ImageLimits(max_bytes=428))
    assert image.imdecode(small, limits=image.ImageLimits(max_bytes=429)).shape == (11, 13, 3)
    gray16 = ref("file:png_gray16").tobytes()  # 16-bit samples count twice; flag=1 asks for 3 channels
    with pytest.raises(image.ImageLimitError, match=r"\(13×11×3×2, from its PNG header\) \(858\)"):
        image.imdecode(gray16, limits=image.ImageLimits(max_bytes=857))
    with pytest.raises(UsageError, match=r"ImageLimits.max_bytes must be a positive int, found 0"):
        image.ImageLimits(max_bytes=0)


@needs_pillow
def test_pillow_s_own_bomb_guard_becomes_a_limit_error():
    with pytest.raises(image.ImageLimitError, match=r"its pixel count \(3600000000\) is over the limit of \d+; "
                                                    r"Pillow's own guard refuses it \(PIL.Image.MAX_IMAGE_PIXELS\)"):
        image.imdecode(png_declaring(60000, 60000))


@needs_pillow
@pytest.mark.parametrize("name", ["png_rgb", "png_rgb_interlaced", "jpeg_420", "jpeg_progressive", "bmp_rgb", "tiff_rgb"])
def test_truncated_files_are_errors_never_partial_images(name):
    data = ref(f"file:{name}").tobytes()
    for cut in (len(data) // 2, len(data) - 40):
        with pytest.raises(FormatError, match=r"imdecode's buffer \(\d+ bytes\): the (\w+ )?image (is damaged or truncated|header is damaged)"):
            image.imdecode(data[:cut])


@needs_pillow
def test_damaged_bytes_are_format_errors():
    data = bytearray(ref("file:png_rgb").tobytes())
    data[40] ^= 0xFF  # inside IDAT: its CRC no longer matches
    with pytest.raises(FormatError, match=r"imdecode's buffer \(\d+ bytes\)"):
        image.imdecode(bytes(data))
    with pytest.raises(FormatError, match=r"not an image file modelpack decodes"):
        image.imdecode(b"\x00" * 100)
    with pytest.raises(FormatError, match=r"not an image file modelpack decodes"):
        image.imdecode(b"\x89PNG\r\n\x1a\n")
    jpeg = bytearray(ref("file:jpeg_exif_orient6").tobytes())
    assert jpeg[2:10] == b"\xff\xe1\x00\x22Exif"
    jpeg[12:36] = b"\xff" * 24  # the EXIF block damaged: its orientation unreadable, the image upright
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's "Corrupt EXIF data"
        assert image.imdecode(bytes(jpeg)).shape == (9, 14, 3)
    jpeg[60:] = b"\x00" * (len(jpeg) - 60)  # the tables and scan gone
    with pytest.raises(FormatError, match=r"imdecode's buffer \(733 bytes\): "):
        image.imdecode(bytes(jpeg))


@needs_pillow
def test_pillow_s_truncated_image_switch_stops_decoding(monkeypatch):
    from PIL import ImageFile
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(UsageError, match=r"PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set, so Pillow would return a truncated image partly decoded"):
        image.imdecode(ref("file:png_rgb").tobytes())


def test_without_pillow_decoding_says_what_to_install_and_the_rest_works(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "PIL", None)  # `from PIL import ...` now fails as if absent
    monkeypatch.setitem(sys.modules, "PIL.Image", None)
    with pytest.raises(UsageError, match=r'decoding image files needs Pillow, modelpack\'s optional image extra: pip install "modelpack\[image\]"'):
        image.imread(tmp_path / "cat.jpg")
    with pytest.raises(UsageError, match=r'pip install "modelpack\[image\]"'):
        image.imdecode(b"\xff\xd8\xff")
    x = photo(6, 8)
    assert image.imresize(x, 4, 3).shape == (3, 4, 3)
    assert image.center_crop(x, (4, 4))[1] == (2, 1, 4, 4)


# ---------------------------------------------------------------- resizing and crops, against MXNet

RESIZES = [(i, tuple(t), interp) for i, case in enumerate(META["resize"]) for t in case["targets"] for interp in range(5)]


@pytest.mark.parametrize(("i", "target", "interp"), RESIZES, ids=[f"{i}-{w}x{h}-{m}" for i, (w, h), m in RESIZES])
def test_imresize_equals_mxnet(i, target, interp):
    source = ref(f"resize_src:{i}")
    key = f"{i}:{target[0]}x{target[1]}:{interp}"
    got = image.imresize(source, *target, interp=interp)
    assert isinstance(got, NDArray) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, ref(f"resize:{key}"))
    if META["resize"][i]["float32"]:
        as_float = image.imresize(source.astype(np.float32), *target, interp=interp)
        assert as_float.dtype == np.float32
        np.testing.assert_array_equal(as_float, ref(f"resize_f32:{key}"))


def test_resize_short_and_crops_equal_mxnet():
    source = ref("resize_src:1")
    for size, interp in META["resize_short"]:
        np.testing.assert_array_equal(image.resize_short(source, size, interp), ref(f"resize_short:{size}:{interp}"))
    for x0, y0, w, h, size, interp in META["crops"]["fixed"]:
        np.testing.assert_array_equal(image.fixed_crop(source, x0, y0, w, h, tuple(size), interp),
                                      ref(f"fixed:{x0}:{y0}:{w}:{h}"))
    for size, interp, rect in META["crops"]["center"]:
        out, got_rect = image.center_crop(source, tuple(size), interp)
        assert got_rect == tuple(rect)
        np.testing.assert_array_equal(out, ref(f"center:{size[0]}x{size[1]}:{interp}"))


def test_copy_make_border_equals_mxnet():
    small = ref("resize_src:1")[:5, :6]
    for border, pads in META["border"]:
        got = image.copyMakeBorder(small, *pads, type=border, values=(7, 250, 300))
        np.testing.assert_array_equal(got, ref(f"border:{border}:{':'.join(map(str, pads))}"))
    with pytest.raises(UsageError, match=r"copyMakeBorder's type is 0 constant, 1 replicate, 2 reflect, 3 wrap or 4 reflect-101"):
        image.copyMakeBorder(small, 1, 1, 1, 1, type=7)


def test_batches_resize_as_each_image():
    batch = np.stack([photo(9, 13, seed=s) for s in range(3)])
    for interp in range(5):
        out = geometry.resize(batch, 5, 17, interp)
        for k in range(3):
            np.testing.assert_array_equal(out[k], geometry.resize(batch[k], 5, 17, interp))


def test_fixed_crop_exact_and_windows_outside_the_image_refused():
    x = photo(10, 12)
    np.testing.assert_array_equal(image.fixed_crop(x, 3, 2, 5, 4), x[2:6, 3:8])
    assert not np.shares_memory(image.fixed_crop(x, 3, 2, 5, 4), x)
    np.testing.assert_array_equal(image.fixed_crop(x, 3, 2, 5, 4, size=(5, 4)), x[2:6, 3:8])
    with pytest.raises(InputError, match=r"crop window x0=8, y0=0, w=5, h=4 is not inside the 12×10 \(w×h\) image"):
        image.fixed_crop(x, 8, 0, 5, 4)
    with pytest.raises(InputError, match=r"crop window x0=-1"):
        image.fixed_crop(x, -1, 0, 5, 4)
    with pytest.raises(InputError, match=r"fixed_crop takes an image of shape \(H, W, C\), got shape \(10, 12\)"):
        image.fixed_crop(x[..., 0], 0, 0, 2, 2)


def test_random_crops_are_windows_of_the_image_drawn_from_the_data_stream():
    x = photo(20, 30)
    modelpack.random.seed(3)
    first = [image.random_crop(x, (8, 5)) for _ in range(20)]
    for out, (x0, y0, w, h) in first:
        assert (w, h) == (8, 5) and 0 <= x0 <= 22 and 0 <= y0 <= 15
        np.testing.assert_array_equal(out, x[y0 : y0 + 5, x0 : x0 + 8])
    assert len({rect for _, rect in first}) > 10
    modelpack.random.seed(3)
    np.random.seed(99)  # numpy's global generator plays no part
    assert [image.random_crop(x, (8, 5))[1] for _ in range(20)] == [rect for _, rect in first]
    out, rect = image.random_crop(x, (60, 20))  # larger than the image: the fitting window, resized up
    assert out.shape == (20, 60, 3) and rect[2:] == (30, 10)
    np.testing.assert_array_equal(out, image.imresize(x[rect[1] : rect[1] + 10], 60, 20, interp=2))
    for _ in range(20):
        out, (x0, y0, w, h) = image.random_size_crop(x, (16, 16), (0.1, 0.5), (0.5, 2.0), interp=1)
        assert out.shape == (16, 16, 3) and x0 + w <= 30 and y0 + h <= 20
        np.testing.assert_array_equal(out, image.fixed_crop(x, x0, y0, w, h, (16, 16), 1))
    # nothing fits (area 4× the image's): the centre crop, as MXNet
    out, rect = image.random_size_crop(x, (10, 10), (4, 4), (1, 1))
    assert rect == image.center_crop(x, (10, 10))[1]
    with pytest.warns(DeprecationWarning, match=r"`min_area` is deprecated"):
        image.random_size_crop(x, (10, 10), None, (0.5, 2), min_area=0.3)
    with pytest.raises(UsageError, match=r"random_size_crop takes no argument 'colour'"):
        image.random_size_crop(x, (10, 10), 0.3, (0.5, 2), colour=1)


def test_interp_9_and_10_as_mxnet():
    x = photo(20, 30)
    # 9: bicubic to enlarge both sides, area to shrink both, else bilinear
    np.testing.assert_array_equal(image.resize_short(x, 40, 9), image.imresize(x, 60, 40, interp=2))
    np.testing.assert_array_equal(image.resize_short(x, 10, 9), image.imresize(x, 15, 10, interp=3))
    np.testing.assert_array_equal(image.fixed_crop(x, 0, 0, 10, 10, (20, 5), 9), image.imresize(x[:10, :10], 20, 5, 1))
    modelpack.random.seed(0)
    picks = {tuple(image.resize_short(x, 7, 10).ravel()[:40]) for _ in range(30)}
    assert 2 <= len(picks) <= 5  # one of the five methods each time
    with pytest.raises(UsageError, match=r"unknown interp 5: 0 nearest, 1 bilinear, 2 bicubic, 3 area, 4 Lanczos, 9 by the sizes, 10 random"):
        image.resize_short(x, 10, 5)
    with pytest.raises(UsageError, match=r"imresize's interp is 0 nearest, 1 bilinear, 2 bicubic, 3 area or 4 Lanczos \(OpenCV's codes\), got 9"):
        image.imresize(x, 4, 4, interp=9)


def test_imresize_out_scale_down_and_color_normalize():
    x = photo(6, 8)
    out = np.zeros((3, 4, 3), np.uint8)
    assert image.imresize(x, 4, 3, out=out) is out and np.array_equal(out, image.imresize(x, 4, 3))
    assert image.scale_down((640, 480), (720, 120)) == (640, 106)  # MXNet's docstring example
    assert image.scale_down((100, 50), (80, 100)) == (40, 50)
    f = x.astype(np.float32)
    mean, std = np.array([123.68, 116.28, 103.53]), np.array([58.395, 57.12, 57.375])
    got = image.color_normalize(f, mean, std)
    assert got.dtype == np.float32 and np.array_equal(f, x.astype(np.float32))  # src unchanged
    np.testing.assert_allclose(got, (f - mean.astype(np.float32)) / std.astype(np.float32), rtol=1e-6)
    assert image.color_normalize(x, mean).dtype == np.float32
    np.testing.assert_array_equal(image.color_normalize(f, None, None), f)


def test_left_out_names_say_what_to_do_instead():
    with pytest.raises(UnsupportedFeatureError, match=r"image.CreateAugmenter is not supported by modelpack: compose gluon.data.vision.transforms"):
        image.CreateAugmenter  # noqa: B018
    with pytest.raises(UnsupportedFeatureError, match=r"image.ImageIter is not supported by modelpack: read the images with image.imread"):
        image.ImageIter  # noqa: B018
    with pytest.raises(UnsupportedFeatureError, match=r"image.nothing is not supported by modelpack: modelpack.image has imread, imdecode"):
        image.nothing  # noqa: B018
    assert not hasattr(image, "HorizontalFlipAug")


def test_importing_modelpack_image_does_not_import_pillow():
    import subprocess

    code = ("import sys, modelpack.image, modelpack.gluon.data.vision.folder; "
            "print('PIL' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


@needs_pillow
def test_a_decoded_image_is_mxnet_s_array():
    img = image.imdecode(encoded(photo(4, 5)))
    assert isinstance(img, NDArray) and img.ctx == "cpu(0)" and type(img.asnumpy()) is np.ndarray
    assert img.flags.c_contiguous
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        image.imdecode(encoded(photo(4, 5), "JPEG"))
