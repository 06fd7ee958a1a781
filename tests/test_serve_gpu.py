"""GPU paths: nvjpeg decoding and the CUDA torch backend (skipped without CUDA); their CPU-side logic always."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from attrnet.core.errors import NotAvailableError
from attrnet.core.imageio import decode_image, resize_to_spec
from attrnet.core.input_spec import InputSpec
from attrnet.serve.backends import open_backend
from attrnet.serve.nvjpeg import GpuJpegDecoder, plain_jpeg
from attrnet.serve.pipeline import Batch
from attrnet.serve.sources import Item
from attrnet.weights import default_checkpoint, default_onnx
from serve_helpers import random_images, write_jpegs


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


needs_cuda = pytest.mark.skipif(not _cuda(), reason="needs a CUDA GPU (none here)")


def _jpeg(img: np.ndarray, mode: str = "RGB", **save) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).convert(mode).save(buf, "JPEG", **save)
    return buf.getvalue()


def test_only_plain_jpegs_go_to_nvjpeg():
    img = random_images(1, 24, 16)[0]
    exif = Image.Exif()
    exif[0x0112] = 6
    png = io.BytesIO()
    Image.fromarray(img).save(png, "PNG")
    assert plain_jpeg(_jpeg(img)) and plain_jpeg(_jpeg(img, "L"))
    assert not plain_jpeg(_jpeg(img, "CMYK"))
    assert not plain_jpeg(_jpeg(img, exif=exif))
    assert not plain_jpeg(png.getvalue())
    assert not plain_jpeg(_jpeg(img)[:20]) and not plain_jpeg(b"")


def test_cpu_fallback_for_a_rejected_batch_keeps_row_order():
    spec = InputSpec(16, 16)
    imgs = random_images(2, 16, 16)
    blob = _jpeg(random_images(1, 16, 16, seed=5)[0])
    items = [Item(f"i{k}") for k in range(4)]
    batch = Batch(items, [None, None, None, None], [0, 2], np.stack(imgs),
                  blob_rows=[1, 3], blobs=[blob, b"\xff\xd8 corrupt"])
    assert batch.rows == [0, 1, 2, 3]
    batch.decode_blobs_on_cpu(spec)
    assert batch.rows == batch.cpu_rows == [0, 1, 2]
    assert batch.errors[3] and batch.errors[:3] == [None, None, None]
    assert np.array_equal(batch.images[0], imgs[0]) and np.array_equal(batch.images[2], imgs[1])
    assert np.array_equal(batch.images[1], resize_to_spec(decode_image(blob), spec))


def test_nvjpeg_needs_the_torch_backend_on_cuda():
    with pytest.raises(NotAvailableError, match="torch backend on a CUDA device"):
        GpuJpegDecoder(open_backend(default_onnx(), device="cpu"))


@pytest.mark.gpu
@needs_cuda
def test_torch_cuda_backend_agrees_with_onnxruntime_cpu():
    gpu, cpu = open_backend(default_checkpoint(), device="cuda"), open_backend(default_onnx(), device="cpu")
    assert gpu.describe() == "torch on cuda (fp16, CUDA graphs)"
    x = np.stack(random_images(40, 64, 64))
    handles = [gpu.submit(x[:20]), gpu.submit(x[20:])]  # two batches in flight
    p_gpu = np.concatenate([h() for h in handles])
    np.testing.assert_allclose(p_gpu, cpu.run(x), atol=2e-2)


@pytest.mark.gpu
@needs_cuda
def test_nvjpeg_pipeline_matches_the_cpu_decoder(tmp_path):
    from attrnet.serve.predictor import Predictor

    write_jpegs(tmp_path, 12, 240, 320)
    Image.fromarray(random_images(1)[0]).save(tmp_path / "z.png")
    (tmp_path / "zz.jpg").write_bytes(b"\xff\xd8\xff broken")
    gpu = Predictor(default_checkpoint(), device="cuda", gpu_decode=True, batch_size=5)
    cpu = Predictor(default_checkpoint(), device="cuda", gpu_decode=False, batch_size=5)
    a, b = list(gpu.predict(tmp_path)), list(cpu.predict(tmp_path))
    assert [r.source for r in a] == [r.source for r in b]
    assert [r.ok for r in a] == [r.ok for r in b] == [True] * 13 + [False]
    diffs = [abs(a[i].probs[c] - b[i].probs[c]) for i in range(13) for c in a[i].probs]
    assert float(np.mean(diffs)) < 0.03  # nvjpeg + GPU resize vs OpenCV reduced decode + resize


def test_predictor_decodes_on_the_cpu_when_the_nvjpeg_probe_fails(tmp_path, monkeypatch, capsys):
    """torch on CUDA (stood in) where decode_jpeg imports but fails: one stderr line, then CPU decoding."""
    import torch
    import torchvision.io

    from attrnet.serve import gpu, predictor
    from cuda_standins import FakeCuda

    FakeCuda(monkeypatch)
    monkeypatch.setattr(gpu, "_NVJPEG_PROBES", {})
    decodes = []

    def broken_decode_jpeg(datas, mode, device):
        decodes.append(device)
        raise RuntimeError("nvjpeg status 6: the GPU architecture is not supported")

    monkeypatch.setattr(torchvision.io, "decode_jpeg", broken_decode_jpeg)
    backend = open_backend(default_onnx(), device="cpu")  # runs the model; looks like the torch backend on cuda:0
    monkeypatch.setattr(backend, "name", "torch", raising=False)
    monkeypatch.setattr(backend, "device", "cuda:0")
    monkeypatch.setattr(backend, "torch_device", torch.device("cuda", 0), raising=False)
    monkeypatch.setattr(predictor, "open_backend", lambda *args, **kwargs: backend)
    write_jpegs(tmp_path, 3, 40, 48)

    p = predictor.Predictor("model.safetensors", workers=1, batch_size=2)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "nvjpeg cannot decode on cuda:0" in lines[0] and "architecture" in lines[0]
    assert lines[0].endswith("decoding JPEGs on the CPU")
    results = list(p.predict(tmp_path))
    assert [r.ok for r in results] == [True] * 3 and len(decodes) == 1  # probed once, never used after
    with pytest.raises(NotAvailableError, match="nvjpeg cannot decode JPEGs on cuda:0 here: .*architecture"):
        GpuJpegDecoder(backend)
