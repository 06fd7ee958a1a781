"""DDP under torchrun: 2 gloo processes on CPU."""
import json
import os
import signal
import subprocess
import sys

import pytest
import torch.distributed as dist

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="torch.distributed with gloo needed")

WORKER = r'''
import hashlib, json, os, sys
import torch
torch.set_num_threads(1)
from attrnet.train.method import Method
import attrnet.train.trainer as trainer_module
from attrnet.train.config import TrainConfig

rank = int(os.environ["RANK"])
data, out, log = sys.argv[1], sys.argv[2], sys.argv[3]
if rank != 0:
    def refuse(*args, **kwargs):
        raise RuntimeError(f"rank {rank} wrote {args}")
    os.replace = refuse  # every attrnet write ends in os.replace

class Probe(Method):
    """Records a digest of the weights after every optimiser step."""
    def init_model(self, ctx):
        self.ctx, self.digests = ctx, []
    def after_step(self, step, losses, mask, logits, labels):
        assert step == self.ctx.step
        h = hashlib.sha1()
        for p in self.ctx.model.parameters():
            h.update(p.detach().cpu().numpy().tobytes())
        self.digests.append(h.hexdigest())

probe = Probe()
cfg = TrainConfig(data=data, out=out, epochs=3, batch_size=8, lr=3e-3, img_size=(32, 32), workers=0,
                  log_every=1000, weighting="uncertainty", warmup_epochs=0)
t = trainer_module.Trainer(cfg, probe)
orders = {}
train_epoch = t.train_epoch
def recording_epoch(epoch):
    t.train_sampler.epoch = epoch
    orders[epoch] = list(iter(t.train_sampler))
    return train_epoch(epoch)
t.train_epoch = recording_epoch
t.run()
with open(os.path.join(log, f"rank{rank}.json"), "w") as f:
    json.dump({"digests": probe.digests, "orders": orders, "log_var": t.weighting.log_var.tolist()}, f)
'''

NAN_WORKER = r'''
import os, sys
import torch
torch.set_num_threads(1)
import attrnet.train.losses as losses_module
from attrnet.core.errors import AttrnetError
from attrnet.methods import train
from attrnet.train.config import TrainConfig

rank = int(os.environ["RANK"])
data, out, log = sys.argv[1], sys.argv[2], sys.argv[3]
forward, calls = losses_module.AttributeLoss.forward, [0]

def poisoned(self, logits, labels):
    """Rank 1's third training batch gets NaN losses."""
    losses, mask = forward(self, logits, labels)
    calls[0] += 1
    return (losses * float("nan"), mask) if rank == 1 and calls[0] == 3 else (losses, mask)

losses_module.AttributeLoss.forward = poisoned
try:
    train(TrainConfig(data=data, out=out, epochs=2, batch_size=8, lr=3e-3, img_size=(32, 32), workers=0,
                      log_every=1000, warmup_epochs=0))
except AttrnetError as exc:
    with open(os.path.join(log, f"rank{rank}.err"), "w") as f:
        f.write(str(exc))
    sys.exit(1)
'''

BAD_IMAGES_WORKER = r'''
import os, sys
from pathlib import Path
import torch
torch.set_num_threads(1)
import attrnet.data.base as base_module
from attrnet.core.errors import AttrnetError, InputError
from attrnet.methods import train
from attrnet.train.config import TrainConfig

rank = int(os.environ["RANK"])
data, out, log = sys.argv[1], sys.argv[2], sys.argv[3]
decode = base_module.decode_image

def unreadable_on_rank_1(path, **kwargs):
    """On rank 1 every odd-numbered image cannot be decoded; rank 0 reads them all."""
    if rank == 1 and int(Path(path).stem) % 2:
        raise InputError("cannot decode image (corrupt on this rank's disk)", path)
    return decode(path, **kwargs)

base_module.decode_image = unreadable_on_rank_1
try:
    train(TrainConfig(data=data, out=out, epochs=2, batch_size=8, lr=3e-3, img_size=(32, 32), workers=0,
                      log_every=1000, warmup_epochs=0, max_bad_fraction=0.1))
except AttrnetError as exc:
    with open(os.path.join(log, f"rank{rank}.err"), "w") as f:
        f.write(str(exc))
    sys.exit(1)
'''


def torchrun(tmp_path, worker: str, timeout: float) -> tuple[subprocess.CompletedProcess, object, object]:
    """Run `worker` as 2 gloo processes on 100 synthetic images; kill the whole group on timeout."""
    from attrnet.data.synth import generate

    generate("celeba", tmp_path / "data", num=100, seed=0, size=(32, 32))
    (tmp_path / "worker.py").write_text(worker)
    out, log = tmp_path / "run", tmp_path / "log"
    log.mkdir()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(tmp_path / "worker.py"), f"celeba:{tmp_path / 'data'}", str(out), str(log)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # torchrun and both workers
        stdout, stderr = proc.communicate()
        pytest.fail(f"the 2-process run did not finish within {timeout:g} s (a rank hangs):\n{stderr[-3000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr), out, log


def test_ddp_two_gloo_processes(tmp_path):
    proc, out, log = torchrun(tmp_path, WORKER, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (json.loads((log / f"rank{r}.json").read_text()) for r in (0, 1))
    # identical weights after every step (and they do change)
    assert len(r0["digests"]) == 15 and r0["digests"] == r1["digests"]
    assert len(set(r0["digests"])) == 15
    assert r0["log_var"] == r1["log_var"]
    # each rank sees a distinct half of the 80 training images every epoch
    for epoch in r0["orders"]:
        a, b = set(r0["orders"][epoch]), set(r1["orders"][epoch])
        assert not a & b and len(a | b) == 80
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert (out / "best.safetensors").is_file() and (out / "last.safetensors").is_file()
    assert "2 processes" in proc.stderr


def stopped_alike(worker: str, tmp_path) -> tuple[str, subprocess.CompletedProcess, object]:
    """Run `worker`, which fails; the one-line error both ranks stopped with (the same on each)."""
    proc, out, log = torchrun(tmp_path, worker, timeout=180)
    assert proc.returncode != 0
    errors = [(log / f"rank{r}.err").read_text() if (log / f"rank{r}.err").exists() else None for r in (0, 1)]
    assert errors[0] is not None and errors[0] == errors[1], (errors, proc.stderr[-3000:])
    assert len(errors[0].splitlines()) == 1
    return errors[0], proc, out


def test_non_finite_loss_on_one_rank_stops_every_rank(tmp_path):
    error, _, out = stopped_alike(NAN_WORKER, tmp_path)
    assert "the training loss is nan on rank 1 at epoch 1 step 3" in error
    assert not (out / "last.safetensors").exists()  # stopped in the first epoch, before any checkpoint


def test_unreadable_images_on_one_rank_stop_every_rank(tmp_path):
    """Rank 1 alone is over --max-bad-fraction; the counts are summed first, so both ranks stop with one line."""
    error, proc, out = stopped_alike(BAD_IMAGES_WORKER, tmp_path)
    skipped, seen = (int(n) for n in error.split(" training images")[0].split(" of "))
    assert seen == 80 and 0.1 < skipped / seen < 0.5  # both ranks' images; only rank 1's were unreadable
    assert "could not be used in epoch 1, more than --max-bad-fraction 0.1" in error
    assert "skipping unreadable image" in proc.stderr
    assert not (out / "last.safetensors").exists()
