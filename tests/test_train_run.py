"""Short CPU training runs on synthetic data: the run directory, resume, init, methods, errors."""
import json

import pytest
import torch
from safetensors.torch import load_file

from attrnet.train import checkpoint as ckpt
from attrnet.cli import main
from attrnet.core.topology import Topology, split
from attrnet.models.backbones import backbone
from attrnet.train.config import TrainConfig
from attrnet.methods import trainer_for


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def celeba(tmp_path_factory):
    from attrnet.data.synth import generate

    root = tmp_path_factory.mktemp("celeba")
    generate("celeba", root, num=120, seed=0, size=(32, 32))
    return f"celeba:{root}"


def _cfg(data, out, **kw):
    base = dict(data=data, out=str(out), epochs=2, batch_size=16, lr=3e-3, img_size=(32, 32), workers=0,
                log_every=10**6, warmup_epochs=0.5)
    base.update(kw)
    return TrainConfig(**base)


def test_run_directory_and_checkpoint(tmp_path, celeba, capsys):
    out = tmp_path / "run"
    summary = trainer_for(_cfg(celeba, out)).run()
    assert summary["epochs"] == 2 and summary["best_epoch"] in (1, 2)
    for name in ("best.safetensors", "best.json", "last.safetensors", "metrics.jsonl", "weights.jsonl",
                 "config.json", "topology.json"):
        assert (out / name).is_file(), name
    assert not list(out.glob("*.tmp"))
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert {"val_loss", "mean_accuracy", "mA", "instance_f1", "images_per_s", "per_attribute"} <= set(rows[0])
    meta = ckpt.read_metadata(out / "best.safetensors")
    assert meta["input"] == {"height": 32, "width": 32, "resize": "stretch",
                             "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    assert len(meta["thresholds"]) == 40 and all(isinstance(t, float) for t in meta["thresholds"])
    assert meta["method"] == "shared" and meta["weighting"] == "equal" and meta["arch"] == "tiny"
    assert meta["metrics"]["mean_accuracy"] == rows[summary["best_epoch"] - 1]["mean_accuracy"]
    assert json.loads((out / "config.json").read_text())["img_size"] == [32, 32]
    Topology.load(out / "topology.json").validate(meta["schema"]["attributes"] and
                                                   [a["name"] for a in meta["schema"]["attributes"]])
    model, _ = ckpt.load_model(out / "best.safetensors")
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 40)

    capsys.readouterr()
    assert main(["eval", str(out / "best.safetensors"), "--data", celeba, "--split", "val", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"mean_accuracy", "mA", "instance_f1", "per_attribute"} <= set(result)
    assert result["mean_accuracy"] == pytest.approx(meta["metrics"]["mean_accuracy"])
    assert result["thresholds"] == meta["thresholds"]


class Killed(Exception):
    pass


def test_resume_equals_uninterrupted(tmp_path, celeba):
    kw = dict(epochs=2, weighting="awmt", awmt_k=2, awmt_val_batch=4)
    trainer_for(_cfg(celeba, tmp_path / "full", **kw)).run()

    cut = trainer_for(_cfg(celeba, tmp_path / "cut", **kw))
    first_epoch = cut.train_epoch

    def train_epoch(epoch):
        if epoch == 1:
            raise Killed()
        return first_epoch(epoch)

    cut.train_epoch = train_epoch
    with pytest.raises(Killed):
        cut.run()
    assert not (tmp_path / "cut" / "topology.json").exists()
    resumed = trainer_for(_cfg(celeba, tmp_path / "cut", resume=True, **kw))
    resumed.run()
    assert resumed.weighting.count > 0
    full, again = load_file(tmp_path / "full" / "last.safetensors"), load_file(tmp_path / "cut" / "last.safetensors")
    assert full.keys() == again.keys()
    for key in full:
        assert torch.equal(full[key], again[key]), key
    rows = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == [1, 2]


def test_independent_columns_from_groups_file(tmp_path, celeba):
    groups = celeba.split(":", 1)[1] + "/synth_groups.json"
    n_groups = len(json.load(open(groups))["groups"])
    out = tmp_path / "ind"
    trainer_for(_cfg(celeba, out, epochs=1, method="independent", method_options={"columns": groups})).run()
    topo = Topology.load(out / "topology.json")
    assert topo.num_leaves == n_groups and topo.branch_counts()[0] == n_groups
    assert ckpt.read_metadata(out / "best.safetensors")["method"] == "independent"


def test_topology_plan_and_init_from(tmp_path, celeba):
    src = tmp_path / "src"
    trainer_for(_cfg(celeba, src, epochs=1, weighting="dwa")).run()
    names = [a["name"] for a in ckpt.read_metadata(src / "best.safetensors")["schema"]["attributes"]]
    plan = split("tiny", backbone("tiny").widths, {"g": names[:20], "h": names[20:]}, 2)
    plan.save(tmp_path / "plan.json")
    t = trainer_for(_cfg(celeba, tmp_path / "dst", epochs=1, topology=str(tmp_path / "plan.json"),
                     init_from=str(src / "best.safetensors")))
    t.setup()
    source = load_file(src / "best.safetensors")
    assert t.model.topology.branch_counts() == [1, 1, 2, 2]
    assert torch.equal(t.model.state_dict()["stages.1.conv.weight"], source["stages.1.conv.weight"])
    assert torch.equal(t.model.state_dict()["stages.2.conv.weight"], source["stages.2.conv.weight"].repeat(2, 1, 1, 1))


def _cli(args, capsys):
    code = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


def test_bad_input_is_one_clear_line(tmp_path, celeba, capsys):
    out = str(tmp_path / "x")
    code, err = _cli(["train", "--data", celeba, "--out", out, "--arch", "alexnet"], capsys)
    assert code == 2 and len(err) == 1 and "unknown arch 'alexnet'" in err[0]
    missing = tmp_path / "nope"
    code, err = _cli(["train", "--data", f"celeba:{missing}", "--out", out], capsys)
    assert code == 2 and len(err) == 1 and str(missing) in err[0] and "not found" in err[0]
    code, err = _cli(["train", "--data", celeba, "--out", out, "--method", "magic"], capsys)
    assert code == 2 and len(err) == 1 and "unknown method 'magic'" in err[0]
    code, err = _cli(["train", "--data", celeba, "--out", out, "--weighting", "loud"], capsys)
    assert code == 2 and len(err) == 1 and "--weighting" in err[0]
    bad = tmp_path / "corrupt.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    code, err = _cli(["eval", str(bad), "--data", celeba], capsys)
    assert code == 2 and len(err) == 1 and "corrupt.safetensors" in err[0]
    code, err = _cli(["train", "--data", celeba, "--out", out, "--init-from", str(bad), "--epochs", "1"], capsys)
    assert code == 2 and len(err) == 1 and "corrupt.safetensors" in err[0]
    code, err = _cli(["train", "--data", celeba, "--out", out, "--img-size", "12x"], capsys)
    assert code == 2 and len(err) == 1 and "--img-size" in err[0]


def _easy_folder(root, n=160, seed=0):
    """A folder dataset whose attributes are plainly visible: a learnable task for a short run."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    (root / "img").mkdir(parents=True)
    lines = ["path,bright,square,stripes,blob,split"]
    colors = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}
    for i in range(n):
        bright, square, stripes = (rng.random(3) < [0.3, 0.25, 0.7]).astype(int)
        blob = str(rng.choice(list(colors), p=[0.6, 0.25, 0.15]))
        img = np.full((32, 32, 3), 200 if bright else 60, np.uint8)
        img += rng.integers(0, 20, img.shape, dtype=np.uint8)
        if stripes:
            img[::4] = 128
        cv2.circle(img, (int(rng.integers(8, 24)), int(rng.integers(8, 24))), 5, colors[blob], -1)
        if square:
            y, x = rng.integers(0, 24, 2)
            img[y:y + 8, x:x + 8] = (255, 255, 0)
        cv2.imwrite(str(root / "img" / f"{i}.png"), img[:, :, ::-1])
        split = "train" if i < 0.7 * n else ("val" if i < 0.85 * n else "test")
        lines.append(f"img/{i}.png,{bright},{square},{stripes},{blob},{split}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return f"folder:{root}"


def test_short_run_learns_beyond_the_majority_baseline(tmp_path):
    import numpy as np

    from attrnet.data import load_index
    from attrnet.evaluate import evaluate
    from attrnet.train.metrics import compute_metrics

    data = _easy_folder(tmp_path / "easy")
    out = tmp_path / "run"
    trainer_for(_cfg(data, out, epochs=4, lr=1e-2, weighting="uncertainty")).run()
    index = load_index(data)
    train, test = index.subset("train"), index.subset("test")
    prior = np.nan_to_num(np.nanmean(train.labels, 0))
    majority = compute_metrics(np.tile(prior, (len(test), 1)), test.labels, index.schema)["mean_accuracy"]
    result = evaluate(out / "best.safetensors", data, "test")
    assert result["mean_accuracy"] > majority + 0.12, (result["mean_accuracy"], majority)


def test_eval_of_exported_onnx_matches_the_checkpoint(tmp_path, celeba, capsys):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "run"
    trainer_for(_cfg(celeba, out, epochs=1)).run()
    assert main(["export", str(out / "best.safetensors")]) == 0
    assert (out / "best.onnx").is_file()
    capsys.readouterr()
    results = []
    for model in ("best.safetensors", "best.onnx"):
        assert main(["eval", str(out / model), "--data", celeba, "--split", "test", "--json"]) == 0
        results.append(json.loads(capsys.readouterr().out))
    a, b = results
    assert a["thresholds"] == b["thresholds"] and a["num_samples"] == b["num_samples"] == 12
    for key in ("mean_accuracy", "mA", "instance_f1"):
        assert a[key] == pytest.approx(b[key], abs=1e-6)


def test_market_without_val_split_holds_out_part_of_train(tmp_path, capsys):
    from attrnet.data.synth import generate

    root = tmp_path / "market"
    generate("market", root, num=60, seed=0, size=(32, 16))
    out = tmp_path / "run"
    t = trainer_for(_cfg(f"market:{root}", out, epochs=1, img_size=(32, 16), preset="market",
                     threshold_objective="balanced", best_metric="mA", pos_weight="deepmar"))
    t.run()
    assert len(t.val_set) == round(0.1 * (len(t.train_set) + len(t.val_set)))
    assert not set(t.val_set.paths) & set(t.train_set.paths)
    meta = ckpt.read_metadata(out / "best.safetensors")
    assert meta["input"]["height"] == 32 and meta["input"]["width"] == 16
    kinds = meta["schema"]["columns"]
    assert [t is None for t in meta["thresholds"]] == ["=" in c for c in kinds]
    assert "mA" in meta["metrics"] and meta["metrics"]["per_attribute"].keys() >= {"age", "upcolor"}
    assert "holding out" in capsys.readouterr().err


def test_method_hooks_and_model_replacement(tmp_path, celeba):
    from attrnet.train.trainer import Trainer
    from attrnet.train.method import Method
    from attrnet.models.net import MultiTaskNet

    class Widen(Method):
        """Records the hooks; at the first validation swaps in a two-branch model."""

        def __init__(self, options=None):
            super().__init__(options)
            self.steps, self.validations, self.finished = [], [], False

        def after_step(self, step, losses, mask, logits, labels):
            assert losses.shape == mask.shape == (16, 40) and logits.shape == labels.shape == (16, 40)
            self.steps.append(step)

        def after_validation(self, step, val_loss, model):
            self.validations.append((step, val_loss))
            if len(self.validations) == 1:
                names = model.schema.names
                topo = split("tiny", backbone("tiny").widths, {"g": names[:10], "h": names[10:]}, 3)
                return MultiTaskNet(topo, model.schema)
            return None

        def finish(self, model, run_dir):
            self.finished = True

    method = Widen()
    t = Trainer(_cfg(celeba, tmp_path / "run", epochs=2, val_every=4, val_batches=1), method)
    t.run()
    assert method.steps == list(range(12))
    assert [s for s, _ in method.validations] == [4, 8, 12]
    assert all(loss == loss and loss > 0 for _, loss in method.validations)
    assert method.finished and t.model.topology.branch_counts() == [1, 1, 1, 2]
    assert Topology.load(tmp_path / "run" / "topology.json").num_leaves == 2
    assert ckpt.load_model(tmp_path / "run" / "last.safetensors")[0].topology.num_leaves == 2
