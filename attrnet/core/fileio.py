"""Atomic file writes and tolerant text reading."""
from __future__ import annotations

import contextlib
import glob
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from attrnet.core.errors import InputError

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "check_writable", "read_json",
           "read_text_lines"]


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path in the same directory; on success `os.replace` it onto `path`.

    On any exception the temp file is removed and `path` is left untouched. The
    result gets the usual permissions for a new file (0666 less the umask), not
    the private 0600 of a temp file.
    """
    path = Path(path)
    tmp_path = _temp_beside(path)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def _temp_beside(path: Path) -> Path:
    """An empty temp file ``.NAME.PID.XXXX.tmp`` in `path`'s folder (created if needed); InputError if that
    cannot be written. Temp files for the same name left by killed processes are removed first."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_orphan_temps(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise InputError(f"cannot write here: {exc.strerror or exc}", path) from None
    os.close(fd)
    return Path(tmp)


def _remove_orphan_temps(path: Path) -> None:
    """Remove ``.NAME.PID.*.tmp`` beside `path` whose writing process no longer exists (it was killed)."""
    if os.name != "posix":  # os.kill(pid, 0) is a probe only on POSIX
        return
    prefix = f".{path.name}."
    for entry in path.parent.glob(f"{glob.escape(prefix)}*.tmp"):
        pid = entry.name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _process_exists(int(pid)):
            with contextlib.suppress(OSError):
                entry.unlink()


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else (or no way to tell): leave its files alone
        return True
    return True


def check_writable(path: str | Path) -> None:
    """Fail early, before long work, when `path` could not be written atomically."""
    _temp_beside(Path(path)).unlink()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def read_json(path: str | Path, what: str = "file") -> Any:
    """Parse a JSON file (a UTF-8 BOM is accepted); InputError naming the file and line otherwise."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise InputError(f"{what} not found", path) from None
    except UnicodeDecodeError:
        raise InputError("not valid UTF-8 text", path) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc.msg}", path, exc.lineno) from None


def read_text_lines(path: str | Path) -> list[str]:
    """Read a text file as lines, accepting a UTF-8 BOM and CRLF/LF/CR endings.

    Trailing whitespace is stripped from each line; blank lines are kept so line
    numbers match the file.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError("file not found", path) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError("not valid UTF-8 text", path, line) from None
    return [line.rstrip() for line in text.splitlines()]
