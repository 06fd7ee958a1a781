"""attrnet.core.imageio: decoding every common image kind to RGB uint8, refusing bad files, resizing to a spec."""
from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from attrnet.core.errors import InputError
from attrnet.core.imageio import LETTERBOX_FILL, decode_image, resize_to_spec
from attrnet.core.input_spec import InputSpec


def _encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def test_png_path_and_bytes_decode_to_rgb(tmp_path):
    arr = np.zeros((6, 9, 3), np.uint8)
    arr[..., 0] = 200  # red
    path = tmp_path / "a.png"
    Image.fromarray(arr).save(path)
    for source in (path, str(path), path.read_bytes()):
        img = decode_image(source)
        assert img.dtype == np.uint8 and img.shape == (6, 9, 3)
        assert tuple(img[0, 0]) == (200, 0, 0)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "1", "I;16"])
def test_other_modes_become_8bit_rgb(mode):
    img = decode_image(_encode(Image.new(mode, (7, 5)), "PNG"))
    assert img.shape == (5, 7, 3) and img.dtype == np.uint8


def test_16bit_png_is_scaled_to_8bit():
    a16 = np.full((4, 4), 65535, np.uint16)
    a16[0, 0] = 0
    ok, buf = cv2.imencode(".png", a16)
    img = decode_image(buf.tobytes())
    assert img[0, 0].tolist() == [0, 0, 0] and img[3, 3].tolist() == [255, 255, 255]


def test_cmyk_jpeg_becomes_rgb():
    img = decode_image(_encode(Image.new("CMYK", (8, 6), (0, 255, 255, 0)), "JPEG", quality=95))
    assert img.shape == (6, 8, 3)
    assert img[3, 4, 0] > 200 and img[3, 4, 1] < 40 and img[3, 4, 2] < 40


def test_exif_orientation_is_applied():
    arr = np.zeros((10, 20, 3), np.uint8)
    arr[:, :5] = 255  # stored: white band on the left
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    img = decode_image(_encode(im, "JPEG", exif=exif.tobytes(), quality=95))
    assert img.shape == (20, 10, 3)
    assert img[:4].mean() > 200 and img[-8:].mean() < 50  # the band is now on top


def test_reduced_decode_for_large_jpeg():
    data = _encode(Image.new("RGB", (800, 400), (200, 100, 50)), "JPEG")
    assert decode_image(data).shape == (400, 800, 3)
    assert decode_image(data, reduce_to=(100, 100)).shape == (100, 200, 3)  # factor 4
    assert decode_image(data, reduce_to=(40, 40)).shape == (50, 100, 3)  # factor 8 at most
    assert decode_image(data, reduce_to=(300, 300)).shape == (400, 800, 3)  # < 2x: full size


def test_decompression_bomb_is_refused_from_the_header():
    data = _encode(Image.new("L", (1200, 1000)), "PNG")
    with pytest.raises(InputError, match="too large"):
        decode_image(data, max_pixels=1_000_000)
    assert decode_image(data, max_pixels=1_200_000).shape == (1000, 1200, 3)


@pytest.mark.parametrize("content,reason", [(b"", "empty"), (b"not an image at all", "not a readable image")])
def test_bad_files_raise_input_error_naming_the_file(tmp_path, content, reason):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(InputError, match=reason) as exc:
        decode_image(path)
    assert exc.value.path == str(path)


def test_truncated_and_missing_files(tmp_path):
    data = _encode(Image.new("RGB", (64, 64), (1, 2, 3)), "PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError):
        decode_image(path)
    with pytest.raises(InputError, match="not found"):
        decode_image(tmp_path / "nope.jpg")


def test_resize_stretch_uses_spec_size():
    img = np.random.default_rng(0).integers(0, 255, (50, 80, 3), dtype=np.uint8)
    out = resize_to_spec(img, InputSpec(32, 16))
    assert out.shape == (32, 16, 3) and out.dtype == np.uint8
    assert resize_to_spec(img, InputSpec(100, 120)).shape == (100, 120, 3)


def test_resize_letterbox_pads_centered_with_grey():
    img = np.full((20, 40, 3), 7, np.uint8)
    out = resize_to_spec(img, InputSpec(40, 40, "letterbox"))
    assert out.shape == (40, 40, 3)
    assert (out[:10] == LETTERBOX_FILL).all() and (out[30:] == LETTERBOX_FILL).all()
    assert (out[10:30] == 7).all()
