"""`attrnet serve` and `attrnet predict --ray` from the command line: bad input exits 2 before Ray starts, and
(slow) a served endpoint stops on SIGTERM or Ctrl-C leaving none of the Ray processes it started."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from attrnet.cli import main  # noqa: E402
from attrnet.weights import default_checkpoint  # noqa: E402
from serve_helpers import write_jpegs  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Ray 2.60's own (pydantic Field extras)
PORT = 18766


@pytest.mark.parametrize("args, message", [
    (["serve", "{ckpt}"], "export the checkpoint first"),
    (["serve", "--device", "tpu"], "unknown device"),
    (["predict", "{dir}", "--ray", "--resume", "--out", "{dir}/p.csv"], "--resume does not work with --ray"),
    (["predict", "{dir}", "--ray", "--out", "{dir}/p.txt"], "must end in .csv or .jsonl"),
    (["predict", "{dir}/nothing", "--ray"], "no such file or directory"),
])
def test_bad_input_exits_2_before_ray_starts(tmp_path, capsys, args, message):
    args = [a.format(ckpt=default_checkpoint(), dir=tmp_path) for a in args]
    assert main(args) == 2
    assert message in capsys.readouterr().err
    assert not ray.is_initialized()


def test_serve_is_an_importable_documented_command():
    from attrnet.cli import serve as module
    from attrnet.cli.app import app

    assert module.__all__ == ["serve"] and module.serve.__doc__.strip()
    assert module.serve in [c.callback for c in app.registered_commands]


def test_a_busy_port_exits_2_before_ray_starts(capsys, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
    assert not ray.is_initialized()


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process tree from /proc")
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_serve_answers_then_stops_on_a_signal_leaving_no_ray_process(tmp_path, stop):
    image = write_jpegs(tmp_path, 1)[0].read_bytes()
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a local Ray of its own
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "attrnet", "serve", "--port", str(PORT), "--max-batch", "8"],
                            env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=log)
    started: list[int] = []
    try:
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text(errors="replace")[-2000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/health", timeout=5) as resp:
                    assert resp.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "the endpoint did not come up"
                time.sleep(0.5)
        req = urllib.request.Request(f"http://127.0.0.1:{PORT}/predict", data=image)
        with urllib.request.urlopen(req, timeout=60) as resp:
            assert len(json.loads(resp.read())["probs"]) == 40
        started = _descendants(proc.pid)
        assert started  # Ray's own processes (GCS, raylet, workers) run under the command
        proc.send_signal(stop)
        assert proc.wait(timeout=120) == 0
        deadline = time.monotonic() + 30
        while any(_running(p) for p in started) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not [p for p in started if _running(p)]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
