"""Write tests/reference/mxnet_image_decode.npz, mxnet_image_resize.npz and mxnet_image.json:
what MXNet 1.9.1's
``mxnet.image`` returns (decoding with its OpenCV 3.4.2, libjpeg-turbo 2.0.2 and libpng
1.6.35; resizing with ``cv::resize``), for ``tests/test_image.py`` to compare with.

    python3.11 -m venv /tmp/mxref && /tmp/mxref/bin/pip install mxnet==1.9.1 "numpy<1.24" pillow
    /tmp/mxref/bin/python scripts/make_mxnet_image_refs.py

The image files are made here with Pillow from small seeded arrays, and their bytes are
stored with MXNet's decodings, so the test decodes exactly the bytes MXNet decoded whatever
Pillow encodes today. Each .npz holds one flat array per dtype; the JSON's ``arrays`` gives
every named array's dtype, shape and offset in it. The JSON lists every case with its
arguments:

- ``decode``: file name -> its format and note; ``flags``: the (flag, to_rgb) read, and
  ``to_rgb=False`` too for the files in ``bgr``.
  Keys ``file:<name>`` (the bytes) and ``decode:<name>:<flag>:<to_rgb>`` (MXNet's array).
- ``refused``: files in formats Pillow writes but MXNet's OpenCV does not read.
- ``resize``: source images ``resize_src:<i>`` (uint8) and, per case, ``imresize`` of the
  source (``resize:<i>:<w>x<h>:<interp>``) and of the source as float32 (``resize_f32:...``).
- ``resize_short``, ``crops`` (``fixed_crop`` with a size, ``center_crop``), ``border``
  (``copyMakeBorder``): the arguments and MXNet's results.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import mxnet as mx
import numpy as onp
import PIL
from mxnet_reference_files import MXNET_VERSION
from PIL import Image, PngImagePlugin

OUT = Path(__file__).resolve().parents[1] / "tests" / "reference"
rng = onp.random.default_rng(29)


def photo(h: int, w: int, c: int = 3, noise: int = 24) -> onp.ndarray:
    """Gradients plus noise: JPEG-like content."""
    y, x = onp.mgrid[0:h, 0:w]
    base = onp.stack([(x * 11 + y * 3) % 256, (y * 13) % 256, ((x + y) * 7 + 40) % 256, (x * y) % 256], -1)
    noisy = base[..., :c].astype(int) + rng.integers(-noise, noise + 1, (h, w, c))
    return onp.clip(noisy, 0, 255).astype(onp.uint8)


def encode(im: Image.Image, fmt: str, **kwargs: Any) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def without_app0(jpeg: bytes) -> bytes:
    """The JPEG with its JFIF APP0 segment cut out, so an EXIF APP1 comes first (camera files)."""
    assert jpeg[2:4] == b"\xff\xe0"
    return jpeg[:2] + jpeg[4 + int.from_bytes(jpeg[4:6], "big"):]


def png16(array: onp.ndarray, colour_type: int, gamma: int | None = None) -> bytes:
    """A 16-bit PNG written by hand (Pillow writes no 16-bit colour)."""
    import struct
    import zlib

    h, w = array.shape[:2]
    rows = b"".join(b"\x00" + array[i].astype(">u2").tobytes() for i in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0))
    if gamma:
        out += chunk(b"gAMA", struct.pack(">I", gamma))
    return out + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def png_info(**chunks: bytes) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    for kind, data in chunks.items():
        info.add(kind.encode(), data)
    return info


def decode_files() -> dict[str, tuple[str, bytes, str]]:
    """name -> (format, bytes, note)."""
    files: dict[str, tuple[str, bytes, str]] = {}
    a = photo(17, 23)
    rgba = onp.concatenate([photo(11, 13), rng.integers(0, 256, (11, 13, 1), dtype=onp.uint8)], -1)
    rgba[0, :3, :3] = [[10, 10, 10], [200, 200, 200], [255, 255, 255]]  # gray pixels: libpng's shortcut
    small = rgba[..., :3].copy()
    pal = Image.fromarray(small).quantize(16)
    pal_t = pal.copy()
    pal_t.info["transparency"] = 3
    gamma = (45455).to_bytes(4, "big")
    # JPEG: chroma subsamplings, progressive, gray, CMYK
    for name, im, kwargs in [
        ("jpeg_444", Image.fromarray(a), {"quality": 90, "subsampling": 0}),
        ("jpeg_422", Image.fromarray(a), {"quality": 90, "subsampling": 1}),
        ("jpeg_420", Image.fromarray(a), {"quality": 75, "subsampling": 2}),
        ("jpeg_progressive", Image.fromarray(a), {"quality": 80, "progressive": True}),
        ("jpeg_gray", Image.fromarray(a[..., 0]), {"quality": 85}),
        ("jpeg_cmyk", Image.fromarray(a).convert("CMYK"), {"quality": 90}),
    ]:
        files[name] = ("JPEG", encode(im, "JPEG", **kwargs), "")
    # EXIF orientation: a JFIF file (MXNet ignores the tag) and a camera file (MXNet turns it)
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        jfif = encode(Image.fromarray(a[:9, :14]), "JPEG", quality=90, exif=exif.tobytes())
        if orientation in (3, 6, 8):
            files[f"jpeg_jfif_orient{orientation}"] = ("JPEG", jfif, "JFIF first: orientation ignored")
        files[f"jpeg_exif_orient{orientation}"] = ("JPEG", without_app0(jfif), "EXIF first: turned")
    # PNG: every colour type and depth OpenCV reads, gamma for the gray conversion
    for name, data, note in [
        ("png_rgb", encode(Image.fromarray(small), "PNG"), ""),
        ("png_rgb_interlaced", encode(Image.fromarray(small), "PNG", interlace=1), ""),
        ("png_rgba", encode(Image.fromarray(rgba), "PNG"), "alpha dropped"),
        ("png_palette", encode(pal, "PNG"), ""),
        ("png_palette_trns", encode(pal_t, "PNG"), ""),
        ("png_gray", encode(Image.fromarray(small[..., 0]), "PNG"), ""),
        ("png_gray1", encode(Image.fromarray(small[..., 0] > 128), "PNG"), "1 bit"),
        ("png_gray_alpha", encode(Image.fromarray(rgba[..., [0, 3]], "LA"), "PNG"), ""),
        ("png_gray16", encode(Image.fromarray(rng.integers(0, 65536, (11, 13), dtype=onp.uint16)), "PNG"),
         ""),
        ("png_rgb16", png16(rng.integers(0, 65536, (11, 13, 3), dtype=onp.uint16), 2), "16-bit colour"),
        ("png_rgb16_gamma", png16(rng.integers(0, 65536, (11, 13, 3), dtype=onp.uint16), 2, 45455),
         "16-bit colour"),
        ("png_rgb_gamma", encode(Image.fromarray(small), "PNG", pnginfo=png_info(gAMA=gamma)),
         "gAMA 0.45455"),
        ("png_rgb_gamma08", encode(Image.fromarray(small), "PNG",
                                   pnginfo=png_info(gAMA=(80000).to_bytes(4, "big"))), "gAMA 0.8"),
        ("png_rgb_gamma1", encode(Image.fromarray(small), "PNG",
                                  pnginfo=png_info(gAMA=(100000).to_bytes(4, "big"))), "gAMA 1"),
        ("png_rgb_srgb", encode(Image.fromarray(small), "PNG", pnginfo=png_info(sRGB=b"\x00")), "sRGB"),
        ("png_palette_gamma", encode(pal, "PNG", pnginfo=png_info(gAMA=gamma)), "gAMA 0.45455"),
        ("png_rgba_gamma", encode(Image.fromarray(rgba), "PNG", pnginfo=png_info(gAMA=gamma)), ""),
    ]:
        files[name] = ("PNG", data, note)
    # BMP and TIFF
    for name, fmt, im in [
        ("bmp_rgb", "BMP", Image.fromarray(small)),
        ("bmp_palette", "BMP", pal),
        ("bmp_gray", "BMP", Image.fromarray(small[..., 0])),
        ("bmp_1bit", "BMP", Image.fromarray(small[..., 0] > 100)),
        ("tiff_rgb", "TIFF", Image.fromarray(small)),
        ("tiff_gray", "TIFF", Image.fromarray(small[..., 0])),
        ("tiff_palette", "TIFF", pal),
    ]:
        files[name] = (fmt, encode(im, fmt), "")
    return files


def refused_files() -> dict[str, bytes]:
    im = Image.fromarray(photo(5, 7))
    return {"ppm": encode(im, "PPM"), "gif": encode(im, "GIF"), "webp": encode(im, "WEBP", lossless=True)}


# (source shape, [(w, h), ...]): every path of cv::resize (whole and 2:1 shrinks, area
# tables, enlarging, mixed, one pixel, channels 1..4, rows whose width·C is not a multiple of 8)
RESIZE_CASES: list[tuple[tuple[int, int, int], list[tuple[int, int]]]] = [
    ((13, 17, 3), [(7, 5), (23, 19), (17, 13), (26, 20), (5, 30), (1, 1)]),
    ((16, 22, 3), [(11, 8), (8, 8), (7, 10), (27, 19), (16, 24), (33, 13)]),
    ((20, 30, 1), [(10, 10), (15, 10), (7, 6), (33, 23)]),
    ((9, 40, 4), [(20, 9), (13, 9), (10, 3), (23, 11)]),
    ((16, 16, 2), [(8, 8), (5, 7), (21, 19)]),
    ((1, 5, 3), [(3, 2), (9, 1)]),
]
FLOAT_CASES = [2, 5]  # sources also resized as float32


def pack(arrays: dict[str, onp.ndarray], index: dict[str, Any]) -> dict[str, onp.ndarray]:
    """All arrays of one dtype as one flat array (one zip member compresses far better than
    hundreds); ``index[key]`` = [dtype, shape, offset] to cut them out again."""
    blobs: dict[str, list[onp.ndarray]] = {}
    for key, array in arrays.items():
        parts = blobs.setdefault(array.dtype.name, [])
        index[key] = [array.dtype.name, list(array.shape), sum(p.size for p in parts)]
        parts.append(array.ravel())
    return {dtype: onp.concatenate(parts) for dtype, parts in blobs.items()}


def main() -> int:
    if mx.__version__ != MXNET_VERSION:
        print(f"expected mxnet {MXNET_VERSION}, found {mx.__version__}", file=sys.stderr)
        return 1
    arrays: dict[str, onp.ndarray] = {}
    meta: dict[str, Any] = {"mxnet": mx.__version__, "pillow": PIL.__version__, "numpy": onp.__version__,
                            "flags": [[1, True], [0, True]], "bgr": ["jpeg_420", "png_rgba", "bmp_rgb"]}
    meta["decode"] = {}
    for name, (fmt, data, note) in decode_files().items():
        arrays[f"file:{name}"] = onp.frombuffer(data, onp.uint8)
        meta["decode"][name] = {"format": fmt, "note": note}
        for flag, to_rgb in meta["flags"] + ([[1, False]] if name in meta["bgr"] else []):
            arrays[f"decode:{name}:{flag}:{int(to_rgb)}"] = mx.image.imdecode(data, flag=flag,
                                                                                to_rgb=to_rgb).asnumpy()
    meta["refused"] = {}
    for name, data in refused_files().items():
        arrays[f"refused:{name}"] = onp.frombuffer(data, onp.uint8)
        try:
            mx.image.imdecode(data).asnumpy()
            meta["refused"][name] = "decoded"
        except mx.base.MXNetError as exc:
            meta["refused"][name] = str(exc).splitlines()[0][:200]
    meta["resize"] = []
    for i, (shape, targets) in enumerate(RESIZE_CASES):
        source = photo(*shape, noise=3)  # smooth enough to compress
        arrays[f"resize_src:{i}"] = source
        meta["resize"].append({"shape": shape, "targets": targets, "float32": i in FLOAT_CASES})
        for w, h in targets:
            for interp in range(5):
                arrays[f"resize:{i}:{w}x{h}:{interp}"] = mx.image.imresize(
                    mx.nd.array(source, dtype="uint8"), w, h, interp=interp).asnumpy()
                if i in FLOAT_CASES:
                    arrays[f"resize_f32:{i}:{w}x{h}:{interp}"] = mx.image.imresize(
                        mx.nd.array(source, dtype="float32"), w, h, interp=interp).asnumpy()
    source = mx.nd.array(arrays["resize_src:1"], dtype="uint8")  # 16 x 22
    meta["resize_short"] = []
    for size, interp in [(10, 2), (24, 2), (12, 9), (20, 9), (12, 1), (13, 3), (21, 4), (18, 0)]:
        arrays[f"resize_short:{size}:{interp}"] = mx.image.resize_short(source, size, interp).asnumpy()
        meta["resize_short"].append([size, interp])
    meta["crops"] = {"fixed": [], "center": []}
    for x0, y0, w, h, size, interp in [(3, 4, 10, 12, (20, 9), 2), (0, 0, 22, 16, (11, 8), 3),
                                       (5, 2, 7, 7, (7, 7), 2), (1, 1, 9, 5, (30, 17), 4)]:
        arrays[f"fixed:{x0}:{y0}:{w}:{h}"] = mx.image.fixed_crop(source, x0, y0, w, h, size, interp).asnumpy()
        meta["crops"]["fixed"].append([x0, y0, w, h, list(size), interp])
    for size, interp in [((10, 8), 2), ((40, 10), 2), ((21, 16), 1), ((22, 20), 9)]:
        out, rect = mx.image.center_crop(source, size, interp)
        arrays[f"center:{size[0]}x{size[1]}:{interp}"] = out.asnumpy()
        meta["crops"]["center"].append([list(size), interp, list(rect)])
    meta["border"] = []
    for border, pads in [(0, (1, 2, 3, 0)), (1, (2, 1, 0, 3)), (2, (3, 3, 2, 1)), (3, (0, 4, 1, 1)),
                         (4, (2, 0, 5, 2)), (1, (12, 0, 0, 14)), (2, (11, 1, 13, 0)), (4, (9, 10, 13, 12))]:
        small = mx.nd.array(arrays["resize_src:1"][:5, :6], dtype="uint8")
        arrays[f"border:{border}:{':'.join(map(str, pads))}"] = mx.image.copyMakeBorder(
            small, *pads, type=border, values=(7, 250, 300)).asnumpy()
        meta["border"].append([border, list(pads)])
    decoding = ("file:", "decode:", "refused:")
    meta["arrays"] = {}
    for name, wanted in (("decode", True), ("resize", False)):
        chosen = {k: v for k, v in arrays.items() if k.startswith(decoding) == wanted}
        onp.savez_compressed(OUT / f"mxnet_image_{name}.npz", **pack(chosen, meta["arrays"]))
    (OUT / "mxnet_image.json").write_text(json.dumps(meta, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
