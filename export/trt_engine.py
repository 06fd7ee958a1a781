"""TensorRT engines from attrnet ONNX files (public `tensorrt` Python API, 10.x and 11.x).

The network is strongly typed: precision comes from the ONNX file (fp32,
fp16 compute, or int8 QDQ), never from builder flags, which TensorRT 11
removed. One optimisation profile covers the batch range of input
``images``; a timing cache file makes rebuilds fast; the workspace memory
pool is capped. The result is a plain serialized plan (no header, so Triton
and trtexec load it) plus a ``.json`` sidecar with the metadata.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attrnet.core.errors import AttrnetError, InputError, NotAvailableError
from attrnet.core.fileio import atomic_write_bytes

__all__ = ["DEFAULT_BATCH", "DEFAULT_WORKSPACE", "MAX_BATCH", "NOT_INSTALLED", "BatchProfile", "available",
           "build_engine", "parse_batch", "sidecar", "trt_version"]

NOT_INSTALLED = "TensorRT is not installed (pip install attrnet[trt] on a machine with an NVIDIA GPU)"
DEFAULT_BATCH = "1:16:64"
DEFAULT_WORKSPACE = 1 << 30


MAX_BATCH = 65536


def _check_range(lo: int, opt: int, hi: int, text: str) -> None:
    if not 1 <= lo <= opt <= hi <= MAX_BATCH:
        raise InputError(f"--batch needs 1 <= MIN <= OPT <= MAX, got {text!r}")


@dataclass(frozen=True)
class BatchProfile:
    """The batch range of input ``images``: the engine's optimisation profile (InputError when not
    1 <= min <= opt <= max)."""
    min: int
    opt: int
    max: int

    def __post_init__(self) -> None:
        _check_range(self.min, self.opt, self.max, f"{self.min}:{self.opt}:{self.max}")

    def shapes(self, height: int, width: int) -> tuple[tuple[int, ...], ...]:
        """(min, opt, max) shapes of input `images` (uint8 NHWC)."""
        return tuple((n, height, width, 3) for n in (self.min, self.opt, self.max))

    def to_dict(self) -> dict[str, int]:
        return {"min": self.min, "opt": self.opt, "max": self.max}


def parse_batch(text: str) -> BatchProfile:
    """``MIN:OPT:MAX`` (or ``N``, meaning 1:N:N) -> BatchProfile; InputError when malformed."""
    parts = text.strip().split(":")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        raise InputError(f"--batch takes MIN:OPT:MAX or N, got {text!r}") from None
    if len(nums) == 1:
        nums = [1, nums[0], nums[0]]
    if len(nums) != 3:
        raise InputError(f"--batch takes MIN:OPT:MAX or N, got {text!r}")
    _check_range(*nums, text)
    return BatchProfile(*nums)


def available() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return True


def trt_version() -> str | None:
    try:
        import tensorrt as trt
    except ImportError:
        return None
    return str(trt.__version__)


def sidecar(metadata: dict[str, Any], precision: str, profile: BatchProfile, height: int, width: int,
            columns: int, outputs: list[str], onnx_sha256: str, version: str | None) -> dict[str, Any]:
    """The ``.engine.json`` content: attrnet metadata plus how the engine was built."""
    mn, opt, mx = profile.shapes(height, width)
    return {
        "attrnet": metadata,
        "engine": {
            "precision": precision,
            "tensorrt_version": version,
            "batch": profile.to_dict(),
            "inputs": {"images": {"dtype": "uint8", "min": list(mn), "opt": list(opt), "max": list(mx)}},
            "outputs": {name: {"dtype": "float32", "shape": [-1, columns]} for name in outputs},
            "onnx_sha256": onnx_sha256,
        },
    }


def build_engine(onnx_bytes: bytes, profile: BatchProfile, height: int, width: int, *,
                 timing_cache: str | Path | None = None, workspace: int = DEFAULT_WORKSPACE) -> bytes:
    """Parse the ONNX model into a strongly typed network and build a serialized plan."""
    try:
        import tensorrt as trt
    except ImportError:
        raise NotAvailableError(NOT_INSTALLED) from None
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise AttrnetError(f"TensorRT cannot parse the ONNX model: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace))
    opt_profile = builder.create_optimization_profile()
    opt_profile.set_shape("images", *profile.shapes(height, width))
    config.add_optimization_profile(opt_profile)
    cache_path = None if timing_cache is None else Path(timing_cache)
    cached = cache_path.read_bytes() if cache_path is not None and cache_path.is_file() else b""
    cache = config.create_timing_cache(cached)
    config.set_timing_cache(cache, False)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise AttrnetError("TensorRT failed to build the engine (see the TensorRT log above)")
    if cache_path is not None:
        atomic_write_bytes(cache_path, bytes(config.get_timing_cache().serialize()))
    return bytes(plan)
