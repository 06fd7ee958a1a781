"""`--method NAME` -> the Method that builds the architecture and hooks into training."""
from __future__ import annotations

from typing import Any, Callable

from attrnet.core.errors import InputError
from attrnet.train.method import Method

__all__ = ["METHODS", "make_method", "method_class"]


def _independent() -> type[Method]:
    from attrnet.methods.independent import IndependentMethod

    return IndependentMethod


def _fafs() -> type[Method]:
    from attrnet.methods.fafs import FAFSMethod

    return FAFSMethod


def _cross_stitch() -> type[Method]:
    from attrnet.methods.cross_stitch import CrossStitchMethod

    return CrossStitchMethod


# name -> loader of its class (imported when asked for, so `--method shared` loads no method code)
METHODS: dict[str, Callable[[], type[Method]]] = {
    "shared": lambda: Method,
    "independent": _independent,
    "fafs": _fafs,
    "cross-stitch": _cross_stitch,
}


def method_class(name: str) -> type[Method]:
    """The class registered for `name`."""
    try:
        load = METHODS[name]
    except KeyError:
        raise InputError(f"unknown method {name!r} (choose from {', '.join(METHODS)})") from None
    return load()


def make_method(name: str, options: dict[str, Any] | None = None) -> Method:
    """An instance of the method `name` with its `options` dict."""
    return method_class(name)(options)
