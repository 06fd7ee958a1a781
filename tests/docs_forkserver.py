"""Run `attrnet ...` command lines and Python snippets in processes forked from one preloaded interpreter.

The docs test runs every documented command in bash, as written. Each `attrnet` command started
in a fresh interpreter spends 3-7 s importing torch on a 2-core machine, which would make the docs
test take many minutes. So `attrnet` on the test's PATH is a tiny shim (standard library only, no
`site`): it hands its argv, working directory, environment and its stdin/stdout/stderr file
descriptors to a server over a Unix socket. The server imported torch and the attrnet CLI once; it
forks a child per request, which takes over those descriptors, runs `attrnet.cli.main()` and exits
with its exit code; the shim exits with the same code. Python snippets run the same way
(`python3 SHIM --python FILE`). Everything else in a block (bash, `python -c`, pipes) runs normally.

Set ATTRNET_DOCS_FRESH=1 to run the real `attrnet` console script and a fresh interpreter instead
(slower, no forking).

    python tests/docs_forkserver.py serve SOCKET     # the server (the docs test starts it)
    python -I -S tests/docs_forkserver.py SOCKET attrnet ARGS...   # what the shim runs
"""
from __future__ import annotations

import atexit
import json
import os
import select
import signal
import socket
import struct
import sys

__all__ = ["serve", "request"]

_HEADER = struct.Struct("!I")


def _send(conn: socket.socket, payload: bytes, fds: list[int] | None = None) -> None:
    data = _HEADER.pack(len(payload)) + payload
    if fds:
        socket.send_fds(conn, [data], fds)
    else:
        conn.sendall(data)


def _receive(conn: socket.socket) -> tuple[bytes, list[int]]:
    data, fds, _flags, _addr = socket.recv_fds(conn, 1 << 20, 3)
    (size,) = _HEADER.unpack_from(data)
    while len(data) < _HEADER.size + size:
        chunk = conn.recv(1 << 20)
        if not chunk:
            raise ConnectionError("short request")
        data += chunk
    return data[_HEADER.size:_HEADER.size + size], list(fds)


def request(socket_path: str, kind: str, args: list[str]) -> int:
    """The shim's side: run `kind` (attrnet or python) with `args` in a forked child; its exit code."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(socket_path)
    body = json.dumps({"kind": kind, "args": args, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
    _send(conn, body, [0, 1, 2])
    answer = b""
    while len(answer) < 4:
        chunk = conn.recv(4 - len(answer))
        if not chunk:
            return 1  # the server went away
        answer += chunk
    status = struct.unpack("!i", answer)[0]
    return status if status >= 0 else 128 - status


def _child(job: dict, fds: list[int]) -> int:
    """In the forked child: become the requested process and run it."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(job["cwd"])
    os.environ.clear()
    os.environ.update(job["env"])
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        if job["kind"] == "attrnet":
            from attrnet.cli import main

            sys.argv = ["attrnet", *job["args"]]
            return main()
        path = job["args"][0]
        sys.argv = list(job["args"])
        sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
        with open(path, encoding="utf-8") as source:
            code = compile(source.read(), path, "exec")
        try:
            exec(code, {"__name__": "__main__", "__file__": path})  # noqa: S102 - runs a documented snippet
        except Exception as exc:  # noqa: BLE001 - as the interpreter: the traceback (from the snippet on), exit 1
            import traceback

            traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next)
            return 1
        return 0
    except SystemExit as exc:  # as the interpreter treats it
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1


def serve(socket_path: str) -> None:
    """Preload torch and the CLI, then fork one child per request until stdin closes."""
    import importlib

    for module in ("torch", "attrnet.cli"):  # what every child would import first
        importlib.import_module(module)

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen(16)
    print("ready", flush=True)
    children: dict[int, socket.socket] = {}
    while True:
        waiting = [listener, sys.stdin, *children.values()]
        readable, _, _ = select.select(waiting, [], [], 0.05)
        if sys.stdin in readable and not sys.stdin.buffer.read1(1):
            break  # the test closed our stdin: stop
        if listener in readable:
            conn, _ = listener.accept()
            body, fds = _receive(conn)
            pid = os.fork()
            if pid == 0:
                listener.close()
                code = 1
                try:
                    code = _child(json.loads(body), fds)
                except BaseException:  # noqa: BLE001 - like an interpreter: print and exit 1
                    import traceback

                    traceback.print_exc()
                finally:
                    atexit._run_exitfuncs()  # as at an interpreter's exit (e.g. ray.shutdown)
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(code if 0 <= code < 256 else 1)
            for fd in fds:
                os.close(fd)
            children[pid] = conn
        for pid, conn in list(children.items()):
            if conn in readable:  # the shim died (a timeout): stop its child
                os.kill(pid, signal.SIGKILL)
        for pid, conn in list(children.items()):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                code = os.waitstatus_to_exitcode(status)
                try:
                    conn.sendall(struct.pack("!i", code))
                except OSError:
                    pass
                conn.close()
                del children[pid]
    for pid in children:
        os.kill(pid, signal.SIGKILL)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2])
    else:
        sys.exit(request(sys.argv[1], sys.argv[2], sys.argv[3:]))
