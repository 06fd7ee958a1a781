"""What a benchmark ran on: CPU model, cores, library versions, date (no torch import)."""
from __future__ import annotations

import datetime as _dt
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["cpu_model", "describe", "gpu_name", "one_line", "usable_cores"]


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, else platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def gpu_name() -> str | None:
    """The first CUDA device's name when torch is already loaded and sees one (never imports torch)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_name(0)


def describe() -> dict[str, Any]:
    from attrnet.core.version import __version__

    ort = _version("onnxruntime") or _version("onnxruntime-gpu")
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": usable_cores(),
        "gpu": gpu_name(),
        "python": platform.python_version(),
        "torch": _version("torch"),
        "onnxruntime": ort,
        "tensorrt": _version("tensorrt"),
        "opencv": _version("opencv-python-headless") or _version("opencv-python"),
        "attrnet": __version__,
    }


def one_line(info: dict[str, Any]) -> str:
    parts = [f"{info['cpu']} ({info['cores']} cores)"]
    if info.get("gpu"):
        parts.append(info["gpu"])
    parts += [f"{k} {info[k]}" for k in ("python", "torch", "onnxruntime", "tensorrt", "opencv", "attrnet") if info.get(k)]
    return ", ".join(parts) + f"; {info['date']}"
