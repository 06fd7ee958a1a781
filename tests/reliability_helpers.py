"""Helpers for the reliability tests: odd image files, CLI runs that capture one-line errors."""
from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ONNX = ROOT / "weights" / "default.onnx"
PYTHON = sys.executable


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid PNG header (plus a tiny IDAT) that claims `width` x `height` pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _png_chunk(b"IEND", b""))


def jpeg_bomb(width: int = 60_000, height: int = 60_000) -> bytes:
    """A small JPEG whose SOF0 marker is patched to claim `width` x `height` pixels."""
    data = bytearray(encode(rgb(16, 16), "JPEG"))
    i = data.index(b"\xff\xc0")
    data[i + 5:i + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def encode(arr_or_img, fmt: str, **kw) -> bytes:
    im = arr_or_img if isinstance(arr_or_img, Image.Image) else Image.fromarray(arr_or_img)
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def png16(arr: np.ndarray) -> bytes:
    """A 16-bit PNG (grey or 3-channel) via OpenCV."""
    import cv2

    bgr = arr[:, :, ::-1] if arr.ndim == 3 else arr
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(bgr).astype(np.uint16) * 257)
    assert ok
    return buf.tobytes()


def exif_rotated_jpeg(h: int = 20, w: int = 30, orientation: int = 6) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(rgb(h, w), "JPEG", exif=exif.tobytes())


def good_image_files() -> dict[str, bytes]:
    """Odd but valid images: each must decode to RGB uint8 HxWx3."""
    arr = rgb(24, 20)
    return {
        "gray.png": encode(Image.fromarray(arr[:, :, 0], "L"), "PNG"),
        "rgba.png": encode(Image.fromarray(np.dstack([arr, arr[:, :, :1]]), "RGBA"), "PNG"),
        "palette.png": encode(Image.fromarray(arr).convert("P"), "PNG"),
        "palette.gif": encode(Image.fromarray(arr).convert("P"), "GIF"),
        "cmyk.jpg": encode(Image.fromarray(arr).convert("CMYK"), "JPEG"),
        "gray16.png": png16(arr[:, :, 0]),
        "rgb16.png": png16(arr),
        "rgb.tiff": encode(arr, "TIFF"),
        "one.png": encode(rgb(1, 1), "PNG"),
        "tiny.jpg": encode(rgb(2, 3), "JPEG"),
        "wide.png": encode(rgb(1, 300), "PNG"),
        "exif6.jpg": exif_rotated_jpeg(),
        "UPPER.JPG": encode(arr, "JPEG"),
        "bmp.bmp": encode(arr, "BMP"),
        "rgb.webp": encode(arr, "WEBP"),
    }


def bad_image_files() -> dict[str, bytes]:
    """Broken images: each must give one error with a reason, never a crash."""
    jpg = encode(rgb(32, 32), "JPEG")
    png = encode(rgb(32, 32), "PNG")
    return {
        "zero.jpg": b"",
        "truncated.jpg": jpg[: len(jpg) // 2],
        "truncated.png": png[: len(png) // 2],
        "header_only.jpg": jpg[:20],
        "header_only.png": png[:33],
        "text.jpg": b"this is not an image at all\n" * 10,
        "html.png": b"<html><body>404 not found</body></html>",
        "random.jpg": np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes(),
        "bomb.png": png_bomb(),
        "bomb.jpg": jpeg_bomb(),
    }


def write_files(folder: Path, files: dict[str, bytes]) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, data in files.items():
        p = folder / name
        p.write_bytes(data)
        out[name] = p
    return out


def run_cli(args: list[str], timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """`attrnet ARGS` in a subprocess (one torch thread)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.run([PYTHON, "-m", "attrnet", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, **kw)


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int = 2, needle: str | None = None) -> str:
    """The process exited `code` with exactly one non-empty stderr line and no traceback."""
    assert proc.returncode == code, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    if needle is not None:
        assert needle in lines[0], lines[0]
    return lines[0]
