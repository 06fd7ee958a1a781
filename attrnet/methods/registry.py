"""`--method NAME` -> the Method that builds the architecture and hooks into training."""
from __future__ import annotations

from typing import Any, Callable

from attrnet.core.errors import InputError
from attrnet.train.method import Method

__all__ = ["METHODS", "METHOD_OPTIONS", "check_options", "make_method", "method_class"]


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


# name -> the options its class reads (an option another method reads is refused, not ignored)
METHOD_OPTIONS: dict[str, tuple[str, ...]] = {
    "shared": (),
    "independent": ("columns",),
    "fafs": ("somp_from", "alpha", "branch_cost", "max_stall", "widen_on", "max_branches", "affinity", "seed"),
    "cross-stitch": ("columns", "alpha_granularity", "alpha_lr_mult", "alpha_same", "mix_after", "stitch_at",
                     "column_pretrain_epochs"),
}


def check_options(name: str, options: dict[str, Any] | None) -> None:
    """Refuse an option (other than None) that the method `name` does not read."""
    for key, value in (options or {}).items():
        if value is not None and key not in METHOD_OPTIONS.get(name, ()):
            users = [m for m, keys in METHOD_OPTIONS.items() if key in keys]
            where = f"--method {' or '.join(users)}" if users else "no method"
            raise InputError(f"--{key.replace('_', '-')} applies to {where}, not to --method {name}")


def method_class(name: str) -> type[Method]:
    """The class registered for `name`."""
    try:
        load = METHODS[name]
    except KeyError:
        raise InputError(f"unknown method {name!r} (choose from {', '.join(METHODS)})") from None
    return load()


def make_method(name: str, options: dict[str, Any] | None = None) -> Method:
    """An instance of the method `name` with its `options` dict (options it does not read are refused)."""
    cls = method_class(name)
    check_options(name, options)
    return cls(options)
