"""Image decoding and resizing shared by training, export and serving: one decoder, one letterbox.

numpy + OpenCV (+ PIL for headers and odd formats) only, no torch, so the ONNX
predict path can use it. Images come out as RGB uint8 ``H x W x 3``. The file
suffixes attrnet reads as images (`IMAGE_SUFFIXES`, `JPEG_SUFFIXES`) are defined here.
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Any, Union

import cv2
import numpy as np
from PIL import Image, ImageOps

from attrnet.core.errors import InputError
from attrnet.core.input_spec import InputSpec

__all__ = ["IMAGE_SUFFIXES", "JPEG_SUFFIXES", "LETTERBOX_FILL", "decode_image", "is_image_file",
           "letterbox_geometry", "max_pixels_limit", "resize_to_spec", "to_rgb"]

Source = Union[str, Path, bytes, bytearray, memoryview]

JPEG_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe"})
IMAGE_SUFFIXES = JPEG_SUFFIXES | {".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm", ".pnm", ".gif"}

LETTERBOX_FILL = 114
DEFAULT_MAX_PIXELS = 64_000_000
MAX_PIXELS_ENV = "ATTRNET_MAX_PIXELS"
_REDUCED = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2))
_TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)
_EXIF_ORIENTATION = 0x0112


def _read_bytes(source: Source) -> tuple[bytes, str | None]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), None
    path = Path(source)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError("image not found", path) from None
    except IsADirectoryError:
        raise InputError("is a directory, not an image", path) from None
    except OSError as exc:
        raise InputError(f"cannot read image: {exc.strerror or exc}", path) from None
    return data, str(path)


def _header(data: bytes, where: str | None, max_pixels: int) -> tuple[str, int, int, int]:
    """(format, width, height, EXIF orientation) from the header alone; refuses huge images."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                fmt, (w, h) = im.format or "", im.size
                fmt = "JPEG" if fmt == "MPO" else fmt  # camera JPEGs with a preview image
                orientation = 1
                if fmt in ("JPEG", "TIFF", "PNG", "WEBP"):
                    orientation = int(im.getexif().get(_EXIF_ORIENTATION, 1) or 1)
    except Image.DecompressionBombError:
        raise InputError(f"image too large (more than {max_pixels} pixels)", where) from None
    except Exception:  # noqa: BLE001 - PIL raises many types for corrupt headers
        raise InputError("not a readable image (corrupt or unsupported format)", where) from None
    if w * h > max_pixels:
        raise InputError(f"image too large: {w}x{h} is more than {max_pixels} pixels", where)
    if w <= 0 or h <= 0:
        raise InputError("image has no pixels", where)
    return fmt, w, h, orientation


def _reduce_flag(fmt: str, w: int, h: int, orientation: int, reduce_to: tuple[int, int] | None) -> int:
    if reduce_to is None or fmt != "JPEG":
        return cv2.IMREAD_COLOR
    if orientation in _TRANSPOSING_ORIENTATIONS:
        w, h = h, w
    factor = min(h / max(1, reduce_to[0]), w / max(1, reduce_to[1]))
    for scale, flag in _REDUCED:
        if factor >= scale:
            return flag
    return cv2.IMREAD_COLOR


def _pil_rgb(im: Any) -> np.ndarray:
    """A PIL image as RGB uint8 ``H x W x 3``: EXIF orientation applied, 16-bit and 32-bit integer
    grayscale scaled to 8 bits, every other mode converted."""
    im = ImageOps.exif_transpose(im)
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        peak = 65535.0 if arr.max(initial=0) > 255 else 255.0
        gray = np.clip(arr * (255.0 / peak), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    return np.ascontiguousarray(np.asarray(im.convert("RGB")))


def _decode_with_pil(data: bytes, where: str | None) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as im:
            return _pil_rgb(im)
    except Exception:  # noqa: BLE001 - any decoder failure is a bad image
        raise InputError("cannot decode image (corrupt or truncated)", where) from None


def max_pixels_limit() -> int:
    """The decompression-bomb limit: ATTRNET_MAX_PIXELS if set, else 64 million pixels."""
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(float(text))
    except ValueError:
        value = 0
    if value < 1:
        raise InputError(f"{MAX_PIXELS_ENV} must be a positive number of pixels, got {text!r}")
    return value


def decode_image(
    path_or_bytes: Source,
    *,
    reduce_to: tuple[int, int] | None = None,
    max_pixels: int | None = None,
) -> np.ndarray:
    """Decode an image file (or its bytes) to RGB uint8 ``H x W x 3``.

    EXIF orientation is applied; grayscale, RGBA, palette, 16-bit and CMYK
    images become 8-bit RGB. With ``reduce_to=(h, w)`` a JPEG at least 2x/4x/8x
    larger than that is decoded at 1/2, 1/4 or 1/8 scale (the result may still
    need resizing). Images whose header announces more than `max_pixels`
    pixels (default: `max_pixels_limit()`) are refused before decoding. Bad
    files raise `InputError`.
    """
    if max_pixels is None:
        max_pixels = max_pixels_limit()
    data, where = _read_bytes(path_or_bytes)
    if not data:
        raise InputError("empty image file", where)
    fmt, w, h, orientation = _header(data, where, max_pixels)
    flag = _reduce_flag(fmt, w, h, orientation, reduce_to)
    bgr = None
    if fmt in ("JPEG", "PNG", "BMP", "WEBP", "TIFF", "PPM"):
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    if bgr is None or bgr.ndim != 3 or bgr.shape[2] != 3:
        return _decode_with_pil(data, where)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def is_image_file(path: str | Path) -> bool:
    """True when the file name has an image suffix attrnet reads (`IMAGE_SUFFIXES`)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def letterbox_geometry(h: int, w: int, th: int, tw: int) -> tuple[int, int, int, int]:
    """Where an ``h x w`` image goes inside a ``th x tw`` letterbox: (inner height, inner width, top, left)."""
    scale = min(th / h, tw / w)
    nh, nw = max(1, min(th, round(h * scale))), max(1, min(tw, round(w * scale)))
    return nh, nw, (th - nh) // 2, (tw - nw) // 2


def resize_to_spec(img: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Resize RGB uint8 `img` to ``(spec.height, spec.width)``: stretch, or letterbox with grey 114."""
    h, w = img.shape[:2]
    th, tw = spec.height, spec.width
    if spec.resize == "letterbox":
        nh, nw, top, left = letterbox_geometry(h, w, th, tw)
        out = np.full((th, tw, 3), LETTERBOX_FILL, np.uint8)
        out[top:top + nh, left:left + nw] = _resize(img, nh, nw)
        return out
    if spec.resize != "stretch":
        raise InputError(f"unknown resize mode {spec.resize!r} (stretch or letterbox)")
    return _resize(img, th, tw)


def _resize(img: np.ndarray, th: int, tw: int) -> np.ndarray:
    h, w = img.shape[:2]
    if (h, w) == (th, tw):
        return np.ascontiguousarray(img)
    interp = cv2.INTER_AREA if th <= h and tw <= w else cv2.INTER_LINEAR
    return cv2.resize(img, (tw, th), interpolation=interp)


def to_rgb(image: Any) -> np.ndarray:
    """An in-memory image (numpy array or PIL image) as RGB uint8 ``H x W x 3``."""
    if not isinstance(image, np.ndarray):
        image = _pil_rgb(image)
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4) or a.shape[0] == 0 or a.shape[1] == 0:
        raise InputError(f"array of shape {list(a.shape)} is not an image (expected HxW, HxWx1, HxWx3 or HxWx4)")
    if a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif a.dtype == np.uint16:
        a = (a >> 8).astype(np.uint8)
    elif a.dtype.kind == "f":
        a = np.clip(np.nan_to_num(a) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif a.dtype != np.uint8:
        raise InputError(f"array of dtype {a.dtype} is not an image (expected uint8, uint16, float or bool)")
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    elif a.shape[2] == 4:
        a = a[:, :, :3]
    return np.ascontiguousarray(a)
