"""Stand-ins for `tensorrt` and `cuda.bindings.runtime` (no GPU or TensorRT here).

They implement the part of the public APIs that attrnet's builder (`attrnet.export.trt_engine`) and
runner (`attrnet.export.trt_runner`) call, with the behaviour the real libraries document:

- ``IExecutionContext.set_input_shape`` returns False for a shape outside the profile (min..max batch,
  or another image size), and ``execute_async_v3`` then returns False;
- ``IBuilderConfig`` starts with ``BuilderFlag.TF32`` set (TensorRT: "Enabled by default");
- ``set_timing_cache`` returns False for a cache made by another GPU or TensorRT version, and
  ``get_timing_cache`` then returns None.

"Device memory" is host memory from ctypes, so copies are real and the engine computes a known
function of its input: probability column c of an image is (mean pixel / 255 + c) / columns.
`install(monkeypatch)` puts both modules in ``sys.modules``.
"""
from __future__ import annotations

import ctypes
import json
import types
from typing import Any

import numpy as np

FOREIGN_CACHE = b"FOREIGN-GPU-TIMING-CACHE"  # a timing cache TensorRT rejects (other GPU / version)


def plan_bytes(lo: int, opt: int, hi: int, height: int, width: int, columns: int = 3) -> bytes:
    """A serialized "engine" for the stand-in runtime: profile lo..hi for input ``images``."""
    return json.dumps({"min": lo, "opt": opt, "max": hi, "h": height, "w": width, "c": columns}).encode()


def expected_probs(images: np.ndarray, columns: int = 3) -> np.ndarray:
    """What the stand-in engine computes for uint8 ``images``."""
    mean = images.reshape(len(images), -1).mean(1, dtype=np.float64) / 255.0
    return ((mean[:, None] + np.arange(columns)) / columns).astype(np.float32)


# ---------------------------------------------------------------- cuda.bindings.runtime

class _Cudart(types.ModuleType):
    """cuda-python's runtime: every call returns (error, *values); error 0 is success."""

    def __init__(self) -> None:
        super().__init__("cuda.bindings.runtime")
        self.buffers: dict[int, Any] = {}
        self.cudaMemcpyKind = types.SimpleNamespace(cudaMemcpyHostToDevice=1, cudaMemcpyDeviceToHost=2)

    def cudaSetDevice(self, device: int) -> tuple[int]:
        return (0,)

    def cudaStreamCreate(self) -> tuple[int, int]:
        return 0, 1234

    def cudaStreamSynchronize(self, stream: int) -> tuple[int]:
        return (0,)

    def cudaStreamDestroy(self, stream: int) -> tuple[int]:
        return (0,)

    def cudaMalloc(self, nbytes: int) -> tuple[int, int]:
        buf = ctypes.create_string_buffer(max(1, nbytes))
        self.buffers[ctypes.addressof(buf)] = buf
        return 0, ctypes.addressof(buf)

    def cudaFree(self, ptr: int) -> tuple[int]:
        self.buffers.pop(ptr, None)
        return (0,)

    def cudaMemcpyAsync(self, dst: int, src: int, nbytes: int, kind: int, stream: int) -> tuple[int]:
        ctypes.memmove(dst, src, nbytes)
        return (0,)


# ---------------------------------------------------------------- tensorrt: runtime half

class _Context:
    def __init__(self, engine: "_Engine"):
        self.engine, self.addresses = engine, {}
        self.shape: tuple[int, ...] | None = None
        self.shapes_asked: list[tuple[int, ...]] = []

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        e = self.engine
        self.shapes_asked.append(tuple(shape))
        ok = name == "images" and e.min <= shape[0] <= e.max and tuple(shape[1:]) == (e.h, e.w, 3)
        self.shape = tuple(shape) if ok else None
        return ok

    def set_tensor_address(self, name: str, ptr: int) -> None:
        self.addresses[name] = ptr

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        n = self.shape[0] if self.shape else -1
        return (n, self.engine.h, self.engine.w, 3) if name == "images" else (n, self.engine.c)

    def execute_async_v3(self, stream: int) -> bool:
        if self.shape is None:  # no valid input shape: TensorRT reports an error and returns False
            return False
        c = self.engine.c
        size = int(np.prod(self.shape))
        images = np.ctypeslib.as_array((ctypes.c_uint8 * size).from_address(self.addresses["images"]))
        probs = expected_probs(images.reshape(self.shape), c)
        ctypes.memmove(self.addresses["probs"], probs.ctypes.data, probs.nbytes)
        return True


class _Engine:
    def __init__(self, spec: dict[str, int]):
        self.min, self.opt, self.max = spec["min"], spec["opt"], spec["max"]
        self.h, self.w, self.c = spec["h"], spec["w"], spec["c"]
        self.num_io_tensors = 2
        self.contexts: list[_Context] = []

    def get_tensor_name(self, i: int) -> str:
        return ["images", "probs"][i]

    def get_tensor_mode(self, name: str) -> str:
        return "INPUT" if name == "images" else "OUTPUT"

    def get_tensor_dtype(self, name: str) -> str:
        return "UINT8" if name == "images" else "FLOAT"

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return (-1, self.h, self.w, 3) if name == "images" else (-1, self.c)

    def get_tensor_profile_shape(self, name: str, profile: int) -> list[tuple[int, ...]]:
        return [(n, self.h, self.w, 3) for n in (self.min, self.opt, self.max)]

    def create_execution_context(self) -> _Context:
        self.contexts.append(_Context(self))
        return self.contexts[-1]


class _Runtime:
    engines: list[_Engine] = []

    def __init__(self, logger: Any):
        pass

    def deserialize_cuda_engine(self, plan: bytes) -> _Engine | None:
        try:
            engine = _Engine(json.loads(bytes(plan)))
        except (ValueError, KeyError):
            return None
        _Runtime.engines.append(engine)
        return engine


# ---------------------------------------------------------------- tensorrt: builder half

class _TimingCache:
    def __init__(self, blob: bytes):
        self.blob, self.entries = bytes(blob), 0

    def serialize(self) -> memoryview:
        return memoryview(b"CACHE:%d" % self.entries if not self.blob.startswith(FOREIGN_CACHE) else self.blob)


class _Config:
    def __init__(self) -> None:
        self.flags = {"TF32"}  # TensorRT enables TF32 by default
        self.profiles: list[Any] = []
        self.pool_limits: dict[str, int] = {}
        self.timing_cache: _TimingCache | None = None
        self.caches_created: list[bytes] = []

    def set_flag(self, flag: str) -> None:
        self.flags.add(flag)

    def clear_flag(self, flag: str) -> None:
        self.flags.discard(flag)

    def get_flag(self, flag: str) -> bool:
        return flag in self.flags

    def set_memory_pool_limit(self, pool: str, size: int) -> None:
        self.pool_limits[pool] = size

    def add_optimization_profile(self, profile: Any) -> int:
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def create_timing_cache(self, blob: bytes) -> _TimingCache:
        self.caches_created.append(bytes(blob))
        cache = _TimingCache(blob)
        if bytes(blob).startswith(b"CACHE:"):
            cache.entries = int(bytes(blob)[6:])
        return cache

    def set_timing_cache(self, cache: _TimingCache, ignore_mismatch: bool) -> bool:
        if cache.blob.startswith(FOREIGN_CACHE) and not ignore_mismatch:
            return False
        self.timing_cache = cache
        return True

    def get_timing_cache(self) -> _TimingCache | None:
        return self.timing_cache


class _Profile:
    def __init__(self) -> None:
        self.shapes: dict[str, tuple[Any, Any, Any]] = {}

    def set_shape(self, name: str, lo: Any, opt: Any, hi: Any) -> None:
        self.shapes[name] = (tuple(lo), tuple(opt), tuple(hi))


class _Builder:
    configs: list[_Config] = []

    def __init__(self, logger: Any):
        pass

    def create_network(self, flags: int) -> types.SimpleNamespace:
        return types.SimpleNamespace(flags=flags)

    def create_builder_config(self) -> _Config:
        _Builder.configs.append(_Config())
        return _Builder.configs[-1]

    def create_optimization_profile(self) -> _Profile:
        return _Profile()

    def build_serialized_network(self, network: Any, config: _Config) -> memoryview:
        if config.timing_cache is not None:
            config.timing_cache.entries += 1  # the build times new tactics into the cache it was given
        (lo, opt, hi) = config.profiles[0].shapes["images"]
        return memoryview(plan_bytes(lo[0], opt[0], hi[0], lo[1], lo[2]))


class _Parser:
    num_errors = 0

    def __init__(self, network: Any, logger: Any):
        pass

    def parse(self, model: bytes) -> bool:
        return True


def _tensorrt() -> types.ModuleType:
    trt = types.ModuleType("tensorrt")
    trt.__version__ = "10.9.0"
    trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level=2: None})
    trt.Runtime, trt.Builder, trt.OnnxParser = _Runtime, _Builder, _Parser
    trt.TensorIOMode = types.SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT")
    trt.nptype = {"UINT8": np.uint8, "FLOAT": np.float32}.__getitem__
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(STRONGLY_TYPED=1)
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
    trt.BuilderFlag = types.SimpleNamespace(TF32="TF32", DEBUG="DEBUG")
    return trt


def install(monkeypatch: Any) -> types.SimpleNamespace:
    """Put stand-in `tensorrt` and `cuda.bindings.runtime` modules in sys.modules for one test."""
    import sys

    trt, cudart = _tensorrt(), _Cudart()
    bindings = types.ModuleType("cuda.bindings")
    bindings.runtime = cudart
    cuda = types.ModuleType("cuda")
    cuda.bindings = bindings
    for name, module in (("tensorrt", trt), ("cuda", cuda), ("cuda.bindings", bindings),
                         ("cuda.bindings.runtime", cudart)):
        monkeypatch.setitem(sys.modules, name, module)
    _Runtime.engines, _Builder.configs = [], []
    return types.SimpleNamespace(trt=trt, cudart=cudart, engines=_Runtime.engines, configs=_Builder.configs)
