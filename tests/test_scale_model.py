"""The pieces Ray workers run, without a Ray cluster: the shipped model file, batch prediction on bytes and
files, the endpoint's answers, argument checks, and that Ray stays an optional import."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from attrnet.core.errors import InputError  # noqa: E402
from attrnet.serve.predictor import Predictor  # noqa: E402
from attrnet.serve.scale import predict_dataset  # noqa: E402
from attrnet.serve.scale_endpoint import answer, deployment_options, endpoint_metadata  # noqa: E402
from attrnet.serve.scale_model import BatchModel, ModelFile  # noqa: E402
from attrnet.serve.sources import Item  # noqa: E402
from attrnet.weights import default_checkpoint, default_onnx  # noqa: E402
from serve_helpers import write_jpegs  # noqa: E402


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scale-model")
    paths = write_jpegs(folder, 6)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    return folder, paths


@pytest.fixture(scope="module")
def local(images):
    """Local predict's rows by path: the reference."""
    folder, _ = images
    return {r.source: r for r in Predictor(device="cpu", workers=1, threads=1).predict(folder)}


def test_model_file_carries_the_bytes_and_the_card():
    model = ModelFile.read(None)
    assert model.name == "default.onnx" and model.files["default.onnx"] == default_onnx().read_bytes()
    assert len(model.card.columns) == 40 and model.card.input_spec.height == 64


def test_checkpoints_and_missing_files_are_refused_before_ray_starts(tmp_path):
    with pytest.raises(InputError, match="export the checkpoint first"):
        ModelFile.read(default_checkpoint())
    with pytest.raises(InputError, match="model file not found"):
        ModelFile.read(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(InputError, match="bad.onnx"):
        ModelFile.read(bad)


@pytest.mark.parametrize("workers", [1, 2])
def test_batch_model_matches_local_predict_on_files_and_bytes(images, local, workers):
    folder, paths = images
    model = BatchModel(ModelFile.read(None), threads=1, workers=workers)
    broken = folder / "broken.jpg"
    items = [Item(str(p), path=p) for p in paths] + [Item(str(broken), path=broken),
                                                      Item(str(paths[0]), data=paths[0].read_bytes()),
                                                      Item("known", error="listed outside the folder")]
    probs, errors = model.predict(items)
    assert probs.shape == (len(items), 40) and probs.dtype == np.float32
    for i, p in enumerate(paths):
        assert errors[i] is None
        np.testing.assert_allclose(probs[i], [local[str(p)].probs[c] for c in model.columns], atol=1e-5)
    assert errors[len(paths)] == local[str(broken)].error and np.isnan(probs[len(paths)]).all()
    np.testing.assert_allclose(probs[len(paths) + 1], probs[0], atol=1e-6)  # bytes decode like the file
    assert errors[-1] == "listed outside the folder" and np.isnan(probs[-1]).all()


def test_answers_have_the_jsonl_row_shape_and_bad_bodies_get_400(images, local):
    _, paths = images
    model = BatchModel(ModelFile.read(None))
    got = answer(model, [paths[1].read_bytes(), b"", b"garbage", paths[2].read_bytes()])
    assert [status for status, _ in got] == [200, 400, 400, 200]
    assert got[1][1] == {"error": "empty image file"}
    assert got[2][1] == {"error": "not a readable image (corrupt or unsupported format)"}
    for (_, body), path in zip((got[0], got[3]), (paths[1], paths[2])):
        assert set(body) == {"probs", "labels"}
        ref = local[str(path)]
        assert body["labels"] == ref.labels
        assert all(abs(body["probs"][c] - ref.probs[c]) < 1e-5 for c in ref.probs)


def test_metadata_and_deployment_options():
    meta = endpoint_metadata(ModelFile.read(None))
    assert meta["input"]["height"] == meta["input"]["width"] == 64
    assert len(meta["columns"]) == len(meta["thresholds"]) == 40 and meta["model"] == "default.onnx"
    options = deployment_options(replicas=2, max_batch=64, cpus_per_replica=1)
    assert options["max_ongoing_requests"] >= 64 and options["num_replicas"] == 2
    assert options["ray_actor_options"]["num_cpus"] == 1
    with pytest.raises(InputError):
        deployment_options(max_batch=0)


def test_predict_dataset_checks_its_arguments_before_starting_ray(tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    (tmp_path / "m.engine.json").write_text(json.dumps(ModelFile.read(None).card.to_metadata()))
    with pytest.raises(InputError, match="needs a GPU"):
        predict_dataset(tmp_path, engine)
    with pytest.raises(InputError, match="batch size"):
        predict_dataset(tmp_path, batch_size=0)
    with pytest.raises(InputError, match="concurrency"):
        predict_dataset(tmp_path, concurrency=0)
    assert not ray.is_initialized()


def test_importing_the_cli_and_the_scale_modules_does_not_import_ray():
    code = ("import sys, attrnet.cli, attrnet.serve.scale, attrnet.serve.scale_endpoint, attrnet.serve.scale_job; "
            "print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
