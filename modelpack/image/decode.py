"""Decoding image files as MXNet 1.9.1's ``imread``/``imdecode`` do (OpenCV 3.4.2 with
libjpeg-turbo and libpng), with Pillow: an optional extra, ``pip install "modelpack[image]"``,
imported on the first decode only.

Image files are hostile input. Pillow opens only the formats MXNet's OpenCV reads (JPEG,
PNG, BMP, TIFF), and the header's width × height × channels is checked against
``ImageLimits`` before any pixel is decoded. Pillow's errors become modelpack's, naming the
file: ``FormatError`` (not an image, damaged, truncated), ``ImageLimitError`` (too large),
``MissingFileError``/``PathError``. A truncated file is an error, never a partly decoded
image: while ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` is set (Pillow's switch to return
them), nothing is decoded.

What MXNet returns, reproduced here (checked against MXNet 1.9.1: ``tests/test_image.py``):

- ``flag=1``: 3 channels, RGB (BGR with ``to_rgb=False``): gray replicated, a palette looked
  up, alpha dropped (not blended), 16-bit samples cut to their high byte.
- ``flag=0``: 1 channel. JPEG: libjpeg's luma (the Y plane; CMYK by OpenCV's formula). PNG:
  libpng's ``rgb_to_gray`` (weights 9797, 19234, 9737 / 32768, truncated; through libpng's
  8-bit gamma tables when the file declares a gamma other than 1, by ``gAMA`` or ``sRGB``).
  BMP and TIFF: OpenCV's (4899 R + 9617 G + 1868 B) / 16384, rounded.
- EXIF orientation: applied to a JPEG exactly when MXNet's OpenCV applies it, which is when
  the file does *not* begin with a JFIF segment MXNet can read the size from (MXNet then
  decodes with ``IMREAD_IGNORE_ORIENTATION``): camera files (EXIF first) are turned, JFIF
  files are not.

Known differences: a 16-bit colour PNG read as gray may differ by one level (Pillow keeps
8 of the 16 bits of colour samples), by up to three when it declares a gamma (libpng's 16-bit
gamma tables are not emulated); TIFF other than 8-bit gray, palette or RGB is Pillow's
conversion.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass, fields
from typing import IO, Any

import numpy as np

from ..errors import FormatError, ImageLimitError, MissingFileError, PathError, UsageError
from ..io.paths import regular_file_opener

__all__ = ["ImageLimits", "DEFAULT_IMAGE_LIMITS", "ImageLimitError", "FORMATS", "read_file",
           "read_bytes", "pillow"]

MiB = 1 << 20
FORMATS = ("JPEG", "PNG", "BMP", "TIFF")  # what MXNet 1.9.1's OpenCV build decodes
INSTALL = 'pip install "modelpack[image]"'
_MAX_JPEG_SEGMENTS = 4096  # MXNet's JFIF walk, bounded (a real header has a dozen)


@dataclass(frozen=True)
class ImageLimits:
    """Upper bounds on what an image file may declare; exceeding one raises ``ImageLimitError``.

    - ``max_bytes``: width × height × channels × bytes per sample of the decoded image, as
      the file's header declares it (channels: the file's, or the 3 or 1 asked for if more).
      The default, 256 MiB, admits a 9,000 × 9,000 photo; Pillow holds up to a third more
      while decoding. A user who trusts bigger files passes
      ``limits=modelpack.image.ImageLimits(max_bytes=...)``.

    Pillow's own guard (``PIL.Image.MAX_IMAGE_PIXELS``, about 179 million pixels) also applies.
    """

    max_bytes: int = 256 * MiB

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise UsageError(f"ImageLimits.{field.name} must be a positive int, found {value!r}")


DEFAULT_IMAGE_LIMITS = ImageLimits()


def pillow() -> Any:
    """``PIL.Image``, or a ``UsageError`` saying how to install it."""
    try:
        from PIL import Image, ImageFile
    except ImportError:
        raise UsageError(
            f"decoding image files needs Pillow, modelpack's optional image extra: {INSTALL}") from None
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise UsageError(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set, so Pillow would return a truncated image "
            "partly decoded without an error; modelpack decodes nothing while it is set (set it to False)")
    return Image


def check_flag(flag: Any) -> int:
    """MXNet's ``flag``: 1 for 3 colour channels, 0 for 1 gray channel."""
    if isinstance(flag, (bool, int, np.integer)) and int(flag) in (0, 1):
        return int(flag)
    raise UsageError(f"flag must be 1 (colour, 3 channels) or 0 (gray, 1 channel), as MXNet's; got {flag!r}")


def read_file(path: str | os.PathLike[str], flag: int = 1, to_rgb: bool = True,
              limits: ImageLimits = DEFAULT_IMAGE_LIMITS) -> np.ndarray:
    """The image in file ``path`` as an ``(H, W, 3 or 1)`` uint8 array, as MXNet's ``imread``."""
    flag = check_flag(flag)
    where = os.fspath(path)
    image_module = pillow()
    try:
        stream = open(path, "rb", opener=regular_file_opener)  # noqa: SIM115  (closed below; Pillow reads lazily)
    except FileNotFoundError:
        raise MissingFileError(where, "no such image file") from None
    except IsADirectoryError:
        raise PathError(where, "is a folder, not an image file") from None
    except OSError as exc:
        raise PathError(where, f"cannot be read ({exc.strerror or exc})") from None
    with stream:
        return _decode(image_module, stream, where, flag, bool(to_rgb), limits)


def read_bytes(data: bytes | bytearray | memoryview, where: str, flag: int = 1, to_rgb: bool = True,
               limits: ImageLimits = DEFAULT_IMAGE_LIMITS) -> np.ndarray:
    """The image encoded in ``data``, as MXNet's ``imdecode``."""
    flag = check_flag(flag)
    image_module = pillow()
    if len(data) == 0:
        raise FormatError(f"{where}: empty (no image bytes)")
    return _decode(image_module, io.BytesIO(bytes(data)), where, flag, bool(to_rgb), limits)


def _decode(image_module: Any, stream: IO[bytes], where: str, flag: int, to_rgb: bool,
            limits: ImageLimits) -> np.ndarray:
    turn = _mxnet_turns(stream)
    stream.seek(0)
    try:
        im = image_module.open(stream, formats=FORMATS)
    except image_module.DecompressionBombError as exc:
        raise ImageLimitError(where, "its pixel count", _pixels_in(exc), limit="MAX_IMAGE_PIXELS",
                              allowed=2 * (image_module.MAX_IMAGE_PIXELS or 0),
                              fix="Pillow's own guard refuses it (PIL.Image.MAX_IMAGE_PIXELS)") from None
    except image_module.UnidentifiedImageError:
        raise FormatError(f"{where}: not an image file modelpack decodes ({', '.join(FORMATS)}: the formats "
                          "MXNet's OpenCV reads)") from None
    except (MemoryError, RecursionError):
        raise
    except Exception as exc:  # any plugin's error on hostile bytes
        raise FormatError(f"{where}: the image header is damaged ({type(exc).__name__}: {exc})") from None
    with im:
        kind = im.format
        width, height = im.size
        if width < 1 or height < 1:
            raise FormatError(f"{where}: the {kind} header declares an empty {width}×{height} image")
        channels = max(len(im.getbands()), 3 if flag else 1)
        sample = _sample_bytes(im.mode)
        declared = width * height * channels * sample
        if declared > limits.max_bytes:
            raise ImageLimitError(
                where, f"the decoded image's size in bytes ({width}×{height}×{channels}"
                       + (f"×{sample}" if sample > 1 else "") + f", from its {kind} header)",
                declared, limit="max_bytes", allowed=limits.max_bytes,
                fix="pass limits=modelpack.image.ImageLimits(max_bytes=...) to allow more")
        if kind == "JPEG" and flag == 0 and im.mode == "RGB":
            im.draft("L", im.size)  # libjpeg's own gray output: the Y plane, as OpenCV asks for
        try:
            im.load()
            pixels = _pixels(im, kind, flag, where)
        except FormatError:
            raise
        except (MemoryError, RecursionError):
            raise
        except Exception as exc:
            raise FormatError(f"{where}: the {kind} image is damaged or truncated "
                              f"({type(exc).__name__}: {exc})") from None
        if turn and kind == "JPEG":
            pixels = _orient(pixels, _orientation(im))
    if flag and not to_rgb:
        pixels = pixels[..., ::-1]
    return np.ascontiguousarray(pixels)


def _pixels_in(exc: Exception) -> int:
    numbers = [int(word) for word in str(exc).replace("(", " ").split() if word.isdigit()]
    return numbers[0] if numbers else 0


def _sample_bytes(mode: str) -> int:
    if mode.startswith("I;16"):
        return 2
    return 4 if mode in ("I", "F") else 1


def _mxnet_turns(stream: IO[bytes]) -> bool:
    """Whether MXNet's OpenCV applies a JPEG's EXIF orientation: unless MXNet's
    ``get_jpeg_size`` reads the size from the file (a JFIF APP0 segment first, then a walk
    from segment to segment until a start-of-frame marker), as it decodes then with
    ``IMREAD_IGNORE_ORIENTATION``."""
    stream.seek(0, io.SEEK_END)
    size = stream.tell()
    stream.seek(0)
    head = stream.read(11)
    if len(head) < 11 or head[:4] != b"\xff\xd8\xff\xe0" or head[6:11] != b"JFIF\x00":
        return True
    position, block = 4, head[4] * 256 + head[5]
    for _ in range(_MAX_JPEG_SEGMENTS):
        position += block
        if position >= size:
            return True
        stream.seek(position)
        marker = stream.read(4)
        if len(marker) < 2 or marker[0] != 0xFF:
            return True
        kind = marker[1]
        if kind == 0xC0 or (0xC1 <= kind <= 0xCF and kind not in (0xC4, 0xC8, 0xCC)):
            return False
        if len(marker) < 4:
            return True
        position += 2
        block = marker[2] * 256 + marker[3]
    return True


def _orientation(im: Any) -> int:
    """The EXIF orientation tag (1 when absent or unreadable, as OpenCV takes it)."""
    try:
        value = im.getexif().get(0x0112, 1)
    except Exception:  # a damaged EXIF block: OpenCV ignores it too
        return 1
    return int(value) if isinstance(value, int) and 1 <= value <= 8 else 1


def _orient(x: np.ndarray, orientation: int) -> np.ndarray:
    """OpenCV's ``ApplyExifOrientation``: transpose for 5..8, then the flips."""
    if orientation >= 5:
        x = x.transpose(1, 0, 2)
    flips = {2: (1,), 3: (0, 1), 4: (0,), 6: (1,), 7: (0, 1), 8: (0,)}.get(orientation, ())
    return np.flip(x, axis=flips) if flips else x


def _pixels(im: Any, kind: str, flag: int, where: str) -> np.ndarray:
    """The loaded image as MXNet's ``(H, W, 3)`` RGB or ``(H, W, 1)`` gray uint8 array."""
    mode = im.mode
    gray: np.ndarray | None = None
    rgb: np.ndarray | None = None
    if mode in ("L", "1"):
        gray = np.asarray(im.convert("L") if mode == "1" else im)
    elif mode == "LA":
        gray = np.asarray(im)[..., 0]
    elif mode.startswith("I;16") or (mode == "I" and kind == "PNG"):
        gray = (np.asarray(im).astype(np.uint32) >> 8).astype(np.uint8)  # libpng strips the low byte
    elif mode in ("RGB", "RGBA", "RGBX"):
        rgb = np.asarray(im)[..., :3]
    elif mode in ("P", "PA", "YCbCr") or (mode == "CMYK" and kind != "JPEG"):
        rgb = np.asarray(im.convert("RGB"))
    elif mode == "CMYK":
        return _jpeg_cmyk(np.asarray(im), flag)
    else:
        raise FormatError(f"{where}: a {kind} image of {mode} samples; modelpack decodes 8- and 16-bit "
                          "gray, palette, RGB(A) and CMYK images")
    if gray is not None:
        return gray[..., None] if flag == 0 else np.repeat(gray[..., None], 3, axis=-1)
    assert rgb is not None
    if flag == 1:
        return rgb
    if kind == "PNG":
        return _libpng_gray(rgb, _png_gamma(im.info))[..., None]
    return _opencv_gray(rgb.astype(np.int64))[..., None]


def _opencv_gray(rgb: np.ndarray) -> np.ndarray:
    """OpenCV's fixed-point luma (14 bits, rounded): 4899 R + 9617 G + 1868 B."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return ((b * 1868 + g * 9617 + r * 4899 + (1 << 13)) >> 14).astype(np.uint8)


def _jpeg_cmyk(inverted: np.ndarray, flag: int) -> np.ndarray:
    """OpenCV's CMYK to RGB (or gray) on libjpeg's CMYK values (Pillow's are inverted, the
    Adobe convention)."""
    raw = 255 - inverted.astype(np.int64)
    k = raw[..., 3]
    c, m, y = (k - (((255 - raw[..., i]) * k) >> 8) for i in range(3))
    rgb = np.stack([c, m, y], axis=-1)
    return rgb.astype(np.uint8) if flag == 1 else _opencv_gray(rgb)[..., None]


# libpng's rgb_to_gray weights for OpenCV's (0.299, 0.587): each * 32768 / 100000, truncated
_PNG_RED, _PNG_GREEN = 29900 * 32768 // 100000, 58700 * 32768 // 100000
_PNG_BLUE = 32768 - _PNG_RED - _PNG_GREEN
_FP_1 = 100000  # libpng's fixed point 1.0
_SRGB_GAMMA = 45455


def _png_gamma(info: dict[str, Any]) -> int | None:
    """The file gamma libpng takes (fixed point): 45455 with an ``sRGB`` chunk, else ``gAMA``'s
    when valid; None without either."""
    if "srgb" in info:
        return _SRGB_GAMMA
    gamma = info.get("gamma")
    if isinstance(gamma, (int, float)):
        fixed = round(gamma * _FP_1)
        if 16 <= fixed <= 625000000:
            return fixed
    return None


def _reciprocal(value: int) -> int:
    return int(math.floor(1e10 / value + 0.5))


def _significant(gamma: int) -> bool:
    return gamma < _FP_1 - 5000 or gamma > _FP_1 + 5000


def _gamma_table(gamma: int) -> np.ndarray:
    """libpng's ``png_build_8bit_table``: ``floor(255 · (i/255)^(gamma/1e5) + 0.5)``."""
    if not _significant(gamma):
        return np.arange(256, dtype=np.int64)
    exponent = gamma * 0.00001
    return np.array([i if i in (0, 255) else math.floor(255 * math.pow(i / 255.0, exponent) + 0.5)
                     for i in range(256)], dtype=np.int64)


def _libpng_gray(rgb: np.ndarray, gamma: int | None) -> np.ndarray:
    """libpng's ``png_do_rgb_to_gray`` on 8-bit samples as OpenCV configures it."""
    r, g, b = (rgb[..., i].astype(np.int64) for i in range(3))
    colour = (r != g) | (r != b)
    if gamma is not None and (_significant(gamma) or _significant(_reciprocal(gamma))):
        to_linear = _gamma_table(_reciprocal(gamma))
        from_linear = _gamma_table(_reciprocal(_reciprocal(gamma)))
        mixed = from_linear[(_PNG_RED * to_linear[r] + _PNG_GREEN * to_linear[g]
                             + _PNG_BLUE * to_linear[b] + 16384) >> 15]
    else:
        mixed = (_PNG_RED * r + _PNG_GREEN * g + _PNG_BLUE * b) >> 15
    return np.where(colour, mixed, r).astype(np.uint8)
