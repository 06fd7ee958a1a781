"""TensorRT engines from attrnet ONNX files (public `tensorrt` Python API, 10.x and 11.x).

The network is strongly typed: precision comes from the ONNX file (fp32,
fp16 compute, or int8 QDQ), never from precision builder flags, which
TensorRT 11 removed; only TF32 (still a flag, on by default) is cleared for
fp32 files. One optimisation profile covers the batch range of input
``images``; a timing cache file per output makes rebuilds fast; the
workspace memory pool is capped. The result is a plain serialized plan (no
header, so Triton and trtexec load it) plus a ``.json`` sidecar with the
metadata. `attrnet.export.trt_runner` runs plans.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

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
                 timing_cache: str | Path | None = None, workspace: int = DEFAULT_WORKSPACE, tf32: bool = False,
                 log: Callable[[str], None] = lambda _: None) -> bytes:
    """Parse the ONNX model into a strongly typed network and build a serialized plan.

    TensorRT sets ``BuilderFlag.TF32`` by default, which rounds the inputs of fp32 convolutions and
    matmuls to a 10-bit mantissa; `tf32=False` clears it (as Polygraphy does), so an fp32 file builds
    an fp32 engine. `timing_cache` is read when TensorRT accepts it (same GPU and TensorRT version),
    else replaced by a fresh cache (noted through `log`), and written back after the build.
    """
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
    if not tf32 and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)
    opt_profile = builder.create_optimization_profile()
    opt_profile.set_shape("images", *profile.shapes(height, width))
    config.add_optimization_profile(opt_profile)
    cache_path = None if timing_cache is None else Path(timing_cache)
    cache = _use_timing_cache(config, cache_path, log)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise AttrnetError("TensorRT failed to build the engine (see the TensorRT log above)")
    if cache_path is not None:  # the builder added this build's timings to the cache object it was given
        atomic_write_bytes(cache_path, bytes(cache.serialize()))
    return bytes(plan)


def _use_timing_cache(config: Any, path: Path | None, log: Callable[[str], None]) -> Any:
    """Attach a timing cache to the builder config: the one in `path` when TensorRT accepts it, else a
    fresh one. Returns the cache object (its serialization includes the build's timings afterwards)."""
    blob = path.read_bytes() if path is not None and path.is_file() else b""
    if blob:
        cache = config.create_timing_cache(blob)
        if cache is not None and config.set_timing_cache(cache, False):
            return cache
        log(f"note: timing cache {path} was made by another GPU or TensorRT version (or is damaged): "
            "starting a fresh one")
    cache = config.create_timing_cache(b"")
    if cache is None or not config.set_timing_cache(cache, False):
        raise AttrnetError("TensorRT refused an empty timing cache")
    return cache
