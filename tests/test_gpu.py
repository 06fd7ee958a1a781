"""GPU fast path (serve/gpu.py). CUDA tests carry the `gpu` marker and skip without CUDA.

On a GPU machine: ``python -m pytest -m gpu`` runs all of them in one command.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from attrnet.core.errors import NotAvailableError
from attrnet.core.input_spec import InputSpec
from attrnet.serve import gpu
from cuda_standins import FakeCuda, fake_cuda_tensors

CUDA = torch.cuda.is_available()


def _branched_net(arch: str = "tiny"):
    from attrnet.models.backbones import backbone
    from attrnet.models.net import MultiTaskNet
    from attrnet.core.topology import Branch, Topology
    from attrnet.core.schema import Schema, binary, categorical

    schema = Schema((binary("a"), binary("b"), binary("c"), categorical("d", ["x", "y", "z"])))
    widths = backbone(arch).widths
    n = len(widths)
    stages = [[Branch(0, w)] for w in widths[: n - 2]]
    stages.append([Branch(0, widths[n - 2]), Branch(0, widths[n - 2])])
    stages.append([Branch(0, widths[-1]), Branch(0, widths[-1]), Branch(1, widths[-1])])
    topo = Topology(arch, stages, {"a": 0, "b": 1, "c": 2, "d": 2}).validate(schema.names)
    torch.manual_seed(0)
    net = MultiTaskNet(topo, schema)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so folding matters
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return net.eval()


def _branched_checkpoint(tmp_path: Path, spec: InputSpec = InputSpec(64, 64)) -> Path:
    from attrnet.train.checkpoint import model_metadata, save_model

    net = _branched_net()
    ckpt = tmp_path / "best.safetensors"
    save_model(ckpt, net, model_metadata(net, spec.to_dict()))
    return ckpt


def _folded(spec: InputSpec):
    from attrnet.export.fold import fold_model

    folded, _ = fold_model(_branched_net(), spec, mode="flops")
    return folded.eval()


def _images(n: int, spec: InputSpec, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, spec.height, spec.width, 3), dtype=np.uint8)


# ---------------------------------------------------------------- runs everywhere

def test_without_cuda_the_fast_path_says_why():
    if CUDA:
        pytest.skip("CUDA is present")
    with pytest.raises(NotAvailableError, match="CUDA"):
        gpu.CudaGraphRunner(torch.nn.Identity(), [1], "fp16")
    with pytest.raises(NotAvailableError):
        gpu.PinnedStager(lambda x: x)
    assert not gpu.nvjpeg_available()


def test_resolve_dtype():
    assert gpu.resolve_dtype("fp16") is torch.float16
    assert gpu.resolve_dtype(torch.float32) is torch.float32
    with pytest.raises(Exception, match="precision"):
        gpu.resolve_dtype("int4")


@pytest.mark.parametrize("resize", ["stretch", "letterbox"])
def test_resize_gpu_matches_cpu_resize(resize):
    """The tensor resize used after nvjpeg agrees with the CPU pipeline's OpenCV resize (on any device)."""
    from attrnet.core.imageio import resize_to_spec

    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:90, 0:120]
    img = np.stack([xx * 2, yy * 2, (xx + yy)], -1).astype(np.uint8)  # smooth: resamplers agree closely
    img = np.clip(img + rng.integers(0, 3, img.shape), 0, 255).astype(np.uint8)
    spec = InputSpec(32, 48, resize)
    want = resize_to_spec(img, spec).astype(np.int16)
    got = gpu.resize_gpu(torch.from_numpy(img).permute(2, 0, 1), spec).numpy().astype(np.int16)
    assert got.shape == want.shape == (32, 48, 3)
    diff = np.abs(got - want)
    assert diff.mean() < 1.5 and np.percentile(diff, 99) <= 6


# ---------------------------------------------------------------- CUDA

@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device (torch sees none)")
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_folded_model_cuda_parity(precision):
    spec = InputSpec(64, 64)
    folded = _folded(spec)
    x = _images(32, spec)
    with torch.inference_mode():
        want = folded(torch.from_numpy(x)).numpy()
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        module = gpu.prepare_module(folded, "cuda", gpu.resolve_dtype(precision))
        with torch.inference_mode():
            got = module(torch.from_numpy(x).cuda()).cpu().numpy()
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old
    assert got.dtype == np.float32 and got.shape == want.shape
    if precision == "fp32":
        assert np.abs(got - want).max() <= 1e-4
    else:
        assert np.abs(got - want).max() <= 1e-2
        clear = np.abs(want - 0.5) > 0.02  # agreement where the fp32 answer is not a coin toss
        assert ((got >= 0.5) == (want >= 0.5))[clear].mean() >= 0.995


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device (torch sees none)")
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_cuda_graphs_equal_eager(precision):
    spec = InputSpec(64, 64)
    dtype = gpu.resolve_dtype(precision)
    eager = gpu.prepare_module(_folded(spec), "cuda", dtype)
    runner = gpu.CudaGraphRunner(eager, [1, 4, 8], dtype, image_shape=(64, 64), prepared=True)
    tol = 1e-4 if precision == "fp32" else 2e-3
    for n in (1, 3, 8, 11):  # exact size, padded into 4, largest, split 8 + 3
        x = torch.from_numpy(_images(n, spec, seed=n)).cuda()
        with torch.inference_mode():
            want = eager(x)
        got = runner(x)
        assert got.shape == want.shape == (n, 6)
        assert torch.allclose(got, want, atol=tol, rtol=0)
    first = runner(torch.from_numpy(_images(2, spec, seed=1)).cuda())
    keep = first.clone()
    runner(torch.from_numpy(_images(2, spec, seed=2)).cuda())
    assert torch.equal(first, keep)  # results are not overwritten by later replays


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device (torch sees none)")
def test_pinned_stager_overlaps_and_matches():
    spec = InputSpec(64, 64)
    module = gpu.prepare_module(_folded(spec), "cuda", torch.float16)
    runner = gpu.CudaGraphRunner(module, [8], torch.float16, image_shape=(64, 64), prepared=True)
    stager = gpu.PinnedStager(runner, depth=2)
    batches = [_images(8, spec, seed=s) for s in range(4)]
    waiters = [stager.submit(b) for b in batches[:2]]
    results = [w() for w in waiters] + [stager.run(b) for b in batches[2:]]
    for b, r in zip(batches, results):
        with torch.inference_mode():
            want = module(torch.from_numpy(b).cuda()).cpu().numpy()
        assert r.shape == (8, 6) and np.abs(r - want).max() <= 2e-3


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device (torch sees none)")
def test_nvjpeg_decode_matches_cpu_decode(tmp_path: Path):
    from attrnet.bench.jpegs import write_jpegs
    from attrnet.core.imageio import decode_image, resize_to_spec

    assert gpu.nvjpeg_available()
    paths = write_jpegs(tmp_path, 4, height=120, width=160, distinct=4)
    blobs = [p.read_bytes() for p in paths]
    same = InputSpec(120, 160)
    got = gpu.decode_jpegs_cuda(blobs, same).cpu().numpy().astype(np.int16)
    want = np.stack([decode_image(p) for p in paths]).astype(np.int16)
    assert got.shape == want.shape and np.abs(got - want).mean() < 2.0  # IDCT/upsampling differ slightly
    small = InputSpec(64, 64)
    got = gpu.decode_jpegs_cuda(blobs, small).cpu().numpy().astype(np.int16)
    want = np.stack([resize_to_spec(decode_image(p), small) for p in paths]).astype(np.int16)
    assert got.shape == (4, 64, 64, 3) and np.abs(got - want).mean() < 3.0


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device (torch sees none)")
def test_cuda_predictor_matches_cpu(tmp_path: Path):
    from attrnet import Predictor
    from attrnet.bench.jpegs import write_jpegs
    ckpt = _branched_checkpoint(tmp_path)
    write_jpegs(tmp_path / "imgs", 10, height=96, width=128, distinct=5)
    cpu = list(Predictor(ckpt, device="cpu", batch_size=4).predict(tmp_path / "imgs"))
    cuda = list(Predictor(ckpt, device="cuda", batch_size=4).predict(tmp_path / "imgs"))
    assert [r.source for r in cpu] == [r.source for r in cuda] and all(r.ok for r in cuda)
    for a, b in zip(cpu, cuda):
        assert max(abs(a.probs[c] - b.probs[c]) for c in a.probs) <= 3e-2  # fp16, and nvjpeg vs CPU decode


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device (torch sees none)")
def test_benchmark_on_cuda_runs_torch_fp16(tmp_path: Path):
    from attrnet.bench.runner import BenchConfig, run_benchmark
    ckpt = _branched_checkpoint(tmp_path)
    cfg = BenchConfig(backends=["torch"], precisions=["fp16"], batch_sizes=[1, 8], iters=3, warmup=1,
                      device="cuda", modes=["model-only"])
    rows = run_benchmark(ckpt, cfg, tmp_path)
    assert [r.ran for r in rows] == [True, True] and rows[0].device.startswith("cuda")


class _FakeGraph:
    """Stands in for a captured CUDA graph: replay recomputes the static output from the static input."""

    def __init__(self, static_in: torch.Tensor, static_out: torch.Tensor):
        self.static_in, self.static_out, self.replays = static_in, static_out, 0

    def replay(self) -> None:
        self.replays += 1
        self.static_out.copy_(self.static_in.float().mean(dim=(1, 2)))


def test_graph_runner_batch_routing_without_cuda(monkeypatch):
    """Batches run on the smallest captured size that holds them; larger ones are split (CPU stand-in graphs)."""
    FakeCuda(monkeypatch)
    runner = gpu.CudaGraphRunner.__new__(gpu.CudaGraphRunner)
    runner.device, runner.batch_sizes, runner.image_shape = torch.device("cpu"), [1, 4, 8], (5, 6)
    runner._graphs = {}
    with torch.inference_mode():
        for b in runner.batch_sizes:
            static_in = torch.zeros((b, 5, 6, 3), dtype=torch.uint8)
            static_out = torch.zeros((b, 3))
            runner._graphs[b] = (_FakeGraph(static_in, static_out), static_in, static_out)
    assert [runner._size_for(n) for n in (1, 2, 4, 5, 8, 9)] == [1, 4, 4, 8, 8, 8]
    for n, replays in ((1, {1: 1}), (3, {4: 1}), (8, {8: 1}), (11, {8: 1, 4: 1}), (17, {8: 2, 1: 1})):
        for g, _, _ in runner._graphs.values():
            g.replays = 0
        x = torch.from_numpy(np.random.default_rng(n).integers(0, 256, (n, 5, 6, 3), dtype=np.uint8))
        out = runner(x)
        assert torch.allclose(out, x.float().mean(dim=(1, 2)))
        assert {b: g.replays for b, (g, _, _) in runner._graphs.items() if g.replays} == replays
    first = runner(torch.full((2, 5, 6, 3), 7, dtype=torch.uint8))
    runner(torch.full((2, 5, 6, 3), 9, dtype=torch.uint8))
    assert torch.all(first == 7)  # a later replay does not overwrite an earlier result


def test_lazy_graph_runner_captures_only_the_sizes_batches_need(monkeypatch):
    """With lazy capture (the torch backend's mode) a size is captured the first time a batch needs it."""
    FakeCuda(monkeypatch)
    runner = gpu.CudaGraphRunner.__new__(gpu.CudaGraphRunner)
    runner.device, runner.batch_sizes, runner.image_shape = torch.device("cpu"), [1, 2, 4, 8], (5, 6)
    runner._graphs, runner.lazy = {}, True
    captured: list[int] = []

    def fake_capture(b: int) -> None:
        captured.append(b)
        with torch.inference_mode():
            static_in, static_out = torch.zeros((b, 5, 6, 3), dtype=torch.uint8), torch.zeros((b, 3))
        runner._graphs[b] = (_FakeGraph(static_in, static_out), static_in, static_out)

    monkeypatch.setattr(runner, "_capture_size", fake_capture)
    for n in (8, 8, 3, 8, 19):  # a fixed batch size, a short last batch, then one split 8 + 8 + 4 (3 rows)
        x = torch.from_numpy(np.random.default_rng(n).integers(0, 256, (n, 5, 6, 3), dtype=np.uint8))
        assert torch.allclose(runner(x), x.float().mean(dim=(1, 2)))
    assert captured == [8, 4]
    runner.capture((7, 7))  # a new image shape forgets the graphs and, lazily, captures nothing yet
    assert runner._graphs == {} and captured == [8, 4]


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device (torch sees none)")
def test_torch_backend_cuda_graphs_equal_its_eager_path(tmp_path: Path):
    from attrnet.serve.torch_backend import TorchBackend

    spec = InputSpec(64, 64)
    ckpt = _branched_checkpoint(tmp_path, spec)
    graphs, eager = TorchBackend(ckpt, "cuda"), TorchBackend(ckpt, "cuda", cuda_graphs=False)
    assert graphs.describe().endswith("(fp16, CUDA graphs)") and eager.describe().endswith("(fp16)")
    for n in (1, 3, 32, 300):  # exact, padded into 4, a common batch, split 256 + 44 (into 64)
        x = _images(n, spec, seed=n)
        got, want = graphs.run(x), eager.run(x)
        assert got.shape == want.shape == (n, 6)
        assert np.abs(got - want).max() <= 2e-3
    assert sorted(graphs.module._graphs) == [1, 4, 32, 64, 256]


# ---------------------------------------------------------------- device and stream handling (CUDA stand-ins)

def test_require_cuda_gives_cuda_the_current_ordinal(monkeypatch):
    FakeCuda(monkeypatch, current=1)
    assert gpu.require_cuda("cuda") == torch.device("cuda", 1)
    assert gpu.require_cuda("cuda:0") == torch.device("cuda", 0)


def test_graphs_are_captured_and_replayed_on_the_runners_device(monkeypatch):
    """A runner on cuda:1 while cuda:0 is current: warm-up, capture and replay all run on cuda:1."""
    cuda = FakeCuda(monkeypatch, current=0)

    def module(x: torch.Tensor) -> torch.Tensor:
        cuda.launch(x)
        return x.float().mean(dim=(1, 2))

    with torch.cuda.graph(torch.cuda.CUDAGraph()):  # an earlier capture on cuda:0 made torch's default capture stream
        pass
    with fake_cuda_tensors():
        runner = gpu.CudaGraphRunner(module, [2, 4], "fp16", device="cuda:1", prepared=True, warmup=2,
                                     image_shape=(5, 6))
        out = runner(torch.zeros((3, 5, 6, 3), dtype=torch.uint8, device="cuda:1"))
        split = runner(torch.zeros((6, 5, 6, 3), dtype=torch.uint8, device="cuda:1"))
    assert out.shape == (3, 3) and split.shape == (6, 3) and out.device == torch.device("cuda", 1)
    graphs = {b: g for b, (g, _, _) in runner._graphs.items()}
    assert {b: g.capture_stream.device for b, g in graphs.items()} == {4: torch.device("cuda", 1),
                                                                     2: torch.device("cuda", 1)}
    assert {b: g.kernels for b, g in graphs.items()} == {4: 1, 2: 1}  # each capture recorded the model
    assert cuda.launches == ([(1, False)] * 2 + [(1, True)]) * 2  # two eager warm-ups, then the captured call
    assert cuda.replays == [1, 1, 1]  # 3 -> 4; 6 -> 4 + 2: replayed with cuda:1 current
    assert cuda.current == 0  # the caller's device is current again


def _real_cpu_decode():
    from torchvision.io import decode_jpeg

    return lambda datas, mode: [decode_jpeg(d, mode=mode) for d in datas]


def _flat_jpeg(rgb: tuple[int, int, int] = (90, 160, 30), size: tuple[int, int] = (40, 30)) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, rgb).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def test_nvjpeg_decode_synchronises_the_current_stream_first(monkeypatch):
    """torchvision's CUDA decoder does not wait for the caller's stream (pytorch/vision PR #9606): attrnet does."""
    import torchvision.io

    cuda = FakeCuda(monkeypatch, current=0)
    cpu_decode = _real_cpu_decode()

    def decode_jpeg(datas, mode, device):
        idx = torch.device(device).index
        assert cuda.log[-1:] == [("synchronize", idx)], "decode_jpeg called before the stream was synchronised"
        cuda.log.append(("decode", idx))
        return cpu_decode(datas, mode)

    monkeypatch.setattr(torchvision.io, "decode_jpeg", decode_jpeg)
    for n in (2, 1):
        out = gpu.decode_jpegs_cuda([_flat_jpeg()] * n, InputSpec(16, 16), "cuda:1")
        assert out.shape == (n, 16, 16, 3)
        assert np.abs(out.float().mean(dim=(0, 1, 2)).numpy() - (90, 160, 30)).max() <= 4
    assert [e for e in cuda.log if e[0] == "decode"] == [("decode", 1)] * 2


def test_nvjpeg_probe_decodes_once_per_device(monkeypatch):
    import torchvision.io

    FakeCuda(monkeypatch)
    monkeypatch.setattr(gpu, "_NVJPEG_PROBES", {})
    cpu_decode, devices = _real_cpu_decode(), []

    def decode_jpeg(datas, mode, device):
        devices.append(torch.device(device))
        return cpu_decode(datas, mode)

    monkeypatch.setattr(torchvision.io, "decode_jpeg", decode_jpeg)
    assert gpu.nvjpeg_available("cuda:0") and gpu.nvjpeg_problem("cuda:0") is None
    assert gpu.nvjpeg_available("cuda:1") and gpu.nvjpeg_available("cuda:0")
    assert devices == [torch.device("cuda", 0), torch.device("cuda", 1)]


@pytest.mark.parametrize("failure, reason", [
    ("raise", "a test decode failed: .*nvjpeg status 6"),
    ("black", "wrong pixels"),
])
def test_nvjpeg_probe_failure_says_why(monkeypatch, failure, reason):
    """The import works but decoding does not (or decodes garbage): nvjpeg is reported unusable, with the reason."""
    import torchvision.io

    FakeCuda(monkeypatch)
    monkeypatch.setattr(gpu, "_NVJPEG_PROBES", {})

    def decode_jpeg(datas, mode, device):
        if failure == "raise":
            raise RuntimeError("nvjpeg status 6: the GPU architecture is not supported\nmore detail")
        return [torch.zeros((3, 16, 16), dtype=torch.uint8) for _ in datas]

    monkeypatch.setattr(torchvision.io, "decode_jpeg", decode_jpeg)
    assert not gpu.nvjpeg_available("cuda:0")
    why = gpu.nvjpeg_problem("cuda:0")
    assert why is not None and "\n" not in why and re.search(reason, why)

