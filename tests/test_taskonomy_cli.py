"""`attrnet taskonomy` end to end on small synthetic CelebA-format data."""
import json

import pytest
import torch

from attrnet.cli import main
from attrnet.data.synth import generate
from attrnet.models.net import MultiTaskNet
from attrnet.core.topology import Topology
from attrnet.core.schema import celeba_schema


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("tx") / "celeba"
    generate("celeba", root, num=40, seed=1, size=(32, 32))
    return root


def test_taskonomy_writes_report_plan_and_figure(synth, tmp_path, capsys):
    out = tmp_path / "tx"
    groups = json.loads((synth / "synth_groups.json").read_text())["groups"]
    rc = main(["taskonomy", "--data", f"celeba:{synth}", "--sources", str(synth / "synth_groups.json"),
               "--budget", "3", "--out", str(out), "--epochs", "1", "--img-size", "32", "--split-stage", "1",
               "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    report = json.loads((out / "taskonomy.json").read_text())
    schema = celeba_schema()
    assert report["targets"] == schema.names
    assert [s["name"] for s in report["sources"]] == list(groups)
    matrix = report["affinity"]["matrix"]
    assert len(matrix) == len(groups) and len(matrix[0]) == 40
    assert all(abs(sum(row[t] for row in matrix) - 1) < 1e-4 for t in range(40))  # AHP vectors sum to 1
    # every target: first-order candidates plus pairs among its top five
    assert all(len(v) == len(groups) + 10 for v in report["transfers"].values())
    assert [p["budget"] for p in report["plans"]] == [1.0, 2.0, 3.0]
    objectives = [p["objective"] for p in report["plans"]]
    assert objectives == sorted(objectives)  # more budget never hurts
    for p in report["plans"]:
        assert len(p["chosen_sources"]) <= p["budget"]
        assert sorted(p["assignments"]) == sorted(schema.names)
        assert sorted(a for g in p["groups"].values() for a in g) == sorted(schema.names)
    assert summary["groups"] == report["plans"][-1]["groups"] == report["plan"]["groups"]
    topo = Topology.load(out / "plan.json")
    assert topo.branch_counts()[0] == 1 and topo.branch_counts()[1] == len(summary["groups"])
    model = MultiTaskNet(topo, schema)  # `attrnet train --topology plan.json` builds this
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 40)
    assert (out / "affinity.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("args, message", [
    (["--budget", "0"], "--budget 0 buys no source"),
    (["--budget", "2", "--split-stage", "4"], "--split-stage"),
    (["--budget", "2", "--sources", "missing.json"], "missing.json: groups file not found"),
])
def test_taskonomy_bad_input_exits_2(synth, tmp_path, capsys, args, message):
    rc = main(["taskonomy", "--data", f"celeba:{synth}", "--out", str(tmp_path / "o"), *args])
    assert rc == 2
    assert message in capsys.readouterr().err
