"""``--resume`` continues a run with the configuration it was started with (its ``config.json``).

Options that only say where and how fast a run goes, or when it gives up
(`RUNTIME_OPTIONS`: device, workers, threads, logging cadence,
``torch.compile``, ``--max-bad-fraction``), may differ on the resume command
and take the new value. Any other option given there must
equal the saved value; otherwise the resume is refused with one line naming
each such option with both values. ``--data`` may name the same dataset at
another path (it was moved, or staged to a node's local disk), not another
format; a dataset with other attributes is refused when the checkpoint is read.

`differences` compares plain dicts (`TrainConfig.to_dict` form);
`TrainConfig.for_resume` and the trainer use it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from attrnet.core.errors import InputError

__all__ = ["PATH_OPTIONS", "RUNTIME_OPTIONS", "differences", "read_saved_config", "refuse"]

# where and how fast the run goes, or when it stops (too many unreadable images), never what it computes
RUNTIME_OPTIONS = frozenset({"data", "out", "resume", "device", "workers", "threads", "log_every", "compile",
                             "max_bad_fraction"})
# options naming a file: the same file given by another spelling is the same value
PATH_OPTIONS = frozenset({"topology", "init_from", "pretrained", "somp_from", "columns"})


def read_saved_config(out: str | Path) -> dict[str, Any] | None:
    """The ``config.json`` of the run directory `out` (None when there is none)."""
    path = Path(out) / "config.json"
    if not path.exists():
        return None
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read the run's configuration ({exc})", path) from None
    if not isinstance(saved, dict):
        raise InputError("not a run configuration (expected a JSON object)", path)
    return saved


def _same(key: str, saved: Any, given: Any) -> bool:
    if isinstance(saved, (list, tuple)) and isinstance(given, (list, tuple)):
        return list(saved) == list(given)
    if saved == given:
        return True
    if key in PATH_OPTIONS and isinstance(saved, str) and isinstance(given, str):
        return Path(saved).resolve() == Path(given).resolve()
    return False


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return f"{value[0]}x{value[1]}"
    return str(value)


def _difference(key: str, saved: Any, given: Any) -> str:
    return f"--{key.replace('_', '-')} (run: {_shown(saved)}, given: {_shown(given)})"


def _data_format(data: Any) -> str:
    return str(data).split(":", 1)[0] if ":" in str(data) else ""


def differences(saved: dict[str, Any], given: dict[str, Any]) -> list[str]:
    """``--flag (run: A, given: B)`` for each option in `given` that would change the run saved as `saved`.

    `given` holds the options to compare (`TrainConfig` field names, method
    options under ``method_options``); runtime options are skipped and
    ``data`` is compared by format only.
    """
    found = []
    for key, value in given.items():
        if key == "method_options":
            saved_options = saved.get("method_options") or {}
            found += [_difference(k, saved_options.get(k), v) for k, v in value.items()
                      if not _same(k, saved_options.get(k), v)]
        elif key == "data":
            if _data_format(value) != _data_format(saved.get("data")):
                found.append(_difference("data", saved.get("data"), value))
        elif key not in RUNTIME_OPTIONS and not _same(key, saved.get(key), value):
            found.append(_difference(key, saved.get(key), value))
    return found


def refuse(found: list[str], path: Path) -> None:
    """Raise the one-line refusal for `found` differences (nothing when there are none)."""
    if found:
        raise InputError("--resume continues the run as it was started, but " + "; ".join(found)
                         + " would change it: drop these options to continue, or train into a new --out", path)
