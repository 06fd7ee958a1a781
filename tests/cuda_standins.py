"""Stand-ins for torch.cuda's device, stream and graph API that record which device and stream each call used.

They follow torch's own rules (torch/cuda/__init__.py, torch/cuda/graphs.py,
torch/csrc/cuda/Module.cpp):

- ``Stream(device=None)`` is made on the current device;
- ``torch.cuda.stream(s)`` makes `s` the current stream of its device and
  selects that device until the block ends;
- ``torch.cuda.graph(g, pool, stream=None)`` captures on `stream`, or on one
  default capture stream made on the device current at the first capture;
- a kernel runs on the current stream of its tensor's device, so a graph
  records it only when that stream is the capturing one;
- ``CUDAGraph.replay()`` launches on the current stream of the current device.

`FakeCuda(monkeypatch)` installs them; `fake_cuda_tensors()` gives tensors
with a CUDA device and a shape but no data, so code that allocates on
``cuda:N`` runs on a machine without a GPU.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch
from torch._subclasses.fake_tensor import FakeTensorMode


class _DriverlessFakeTensorMode(FakeTensorMode):
    """Fake tensors that never initialise a CUDA device, whether or not a driver is present."""

    @property
    def avoid_device_init(self) -> bool:
        return True


def fake_cuda_tensors() -> FakeTensorMode:
    """A mode in which ``torch.zeros(..., device="cuda:1")`` and ops on the result only track devices and shapes."""
    return _DriverlessFakeTensorMode(allow_non_fake_inputs=True)


class FakeStream:
    def __init__(self, cuda: "FakeCuda", device: Any = None):
        self.cuda = cuda
        self.device = torch.device("cuda", cuda.index(device))

    def wait_stream(self, other: "FakeStream") -> None:
        self.cuda.log.append(("wait_stream", self.device.index))

    def synchronize(self) -> None:
        self.cuda.log.append(("synchronize", self.device.index))


class FakeGraph:
    def __init__(self, cuda: "FakeCuda"):
        self.cuda = cuda
        self.kernels = 0  # kernels recorded during capture
        self.capture_stream: FakeStream | None = None

    def replay(self) -> None:
        self.cuda.replays.append(self.cuda.current)

    def pool(self) -> tuple[str, int]:
        return ("pool", id(self))


class FakeCuda:
    """torch.cuda stand-ins with `current` the current device index; `launch(t)` is one kernel on `t`'s device."""

    def __init__(self, monkeypatch: Any, current: int = 0):
        self.current = current
        self.log: list[tuple[str, int]] = []
        self.replays: list[int] = []  # the current device at each replay
        self.launches: list[tuple[int, bool]] = []  # (device, recorded by a capture) per kernel
        self._current_streams: dict[int, FakeStream] = {}
        self._capturing: tuple[FakeGraph, FakeStream] | None = None
        self._default_capture_stream: FakeStream | None = None
        for name, value in {"is_available": lambda: True, "current_device": lambda: self.current,
                            "device": self.device, "Stream": lambda device=None: FakeStream(self, device),
                            "current_stream": self.current_stream, "stream": self.stream,
                            "CUDAGraph": lambda: FakeGraph(self), "graph": self.graph,
                            "synchronize": self.synchronize}.items():
            monkeypatch.setattr(torch.cuda, name, value)

    def index(self, device: Any) -> int:
        if device is None:
            return self.current
        if isinstance(device, int):
            return device
        dev = torch.device(device)
        return self.current if dev.index is None else dev.index

    @contextlib.contextmanager
    def device(self, device: Any) -> Iterator[None]:
        previous, self.current = self.current, self.index(device)
        try:
            yield
        finally:
            self.current = previous

    def current_stream(self, device: Any = None) -> FakeStream:
        idx = self.index(device)
        if idx not in self._current_streams:
            self._current_streams[idx] = FakeStream(self, idx)  # the device's default stream
        return self._current_streams[idx]

    @contextlib.contextmanager
    def stream(self, stream: FakeStream) -> Iterator[None]:
        idx = stream.device.index
        previous_device, previous_stream = self.current, self.current_stream(idx)
        self._current_streams[idx], self.current = stream, idx
        try:
            yield
        finally:
            self._current_streams[idx], self.current = previous_stream, previous_device

    @contextlib.contextmanager
    def graph(self, graph: FakeGraph, pool: Any = None, stream: FakeStream | None = None, **_: Any) -> Iterator[None]:
        if stream is None:
            if self._default_capture_stream is None:
                self._default_capture_stream = FakeStream(self)
            stream = self._default_capture_stream
        graph.capture_stream = stream
        with self.stream(stream):
            self._capturing = (graph, stream)
            try:
                yield
            finally:
                self._capturing = None

    def synchronize(self, device: Any = None) -> None:
        self.log.append(("synchronize device", self.index(device)))

    def launch(self, tensor: torch.Tensor) -> None:
        """One kernel on `tensor`'s device: recorded by the capture when it goes to the capturing stream."""
        idx = tensor.device.index if tensor.device.index is not None else self.current
        recorded = self._capturing is not None and self.current_stream(idx) is self._capturing[1]
        if recorded:
            self._capturing[0].kernels += 1
        self.launches.append((idx, recorded))
