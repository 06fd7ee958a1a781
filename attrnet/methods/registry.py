"""`--method NAME` -> the Method subclass that builds and hooks into training."""
from __future__ import annotations

import importlib
from typing import Any

from attrnet.core.errors import AttrnetError, InputError
from attrnet.train.method import Method

METHODS: dict[str, tuple[str, str]] = {
    "shared": ("attrnet.train.method", "Method"),
    "independent": ("attrnet.methods.independent", "IndependentMethod"),
    "fafs": ("attrnet.methods.fafs", "FAFSMethod"),
    "cross-stitch": ("attrnet.methods.cross_stitch", "CrossStitchMethod"),
}


def method_class(name: str) -> type[Method]:
    """The class registered for `name`, imported on demand."""
    try:
        module_name, cls_name = METHODS[name]
    except KeyError:
        raise InputError(f"unknown method {name!r} (choose from {', '.join(METHODS)})") from None
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise AttrnetError(f"method {name!r} is not available yet ({module_name} is not installed)") from None
    cls = getattr(module, cls_name, None)
    if cls is None:
        raise AttrnetError(f"method {name!r} is not available yet ({module_name}.{cls_name} is missing)")
    return cls


def make_method(name: str, options: dict[str, Any] | None = None) -> Method:
    """An instance of the method `name` with its `options` dict."""
    return method_class(name)(options)
