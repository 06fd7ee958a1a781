"""The shipped default model: both files load, agree, and recognise synthetic faces."""
from __future__ import annotations

import numpy as np
import pytest

from attrnet import Predictor
from attrnet.train.checkpoint import read_metadata
from attrnet.serve.backends import open_backend
from attrnet.weights import default_checkpoint, default_onnx


@pytest.fixture(scope="module")
def faces():
    from attrnet.data.synth import faces as synth_faces
    from attrnet.data.synth.common import encode_jpeg

    rng = np.random.default_rng(2024)
    truth, labels = synth_faces.sample_labels(rng, 48)
    images = [encode_jpeg(synth_faces.render({k: bool(v[i]) for k, v in truth.items()}, {}, rng, 64, 64))
              for i in range(48)]
    return images, labels


def test_shipped_files_are_small_and_describe_the_same_model():
    ckpt, onnx_path = default_checkpoint(), default_onnx()
    assert ckpt.stat().st_size < 5_000_000 and onnx_path.stat().st_size < 5_000_000
    meta = read_metadata(ckpt)
    backend = open_backend(onnx_path, device="cpu")
    assert backend.metadata["schema"] == meta["schema"] and backend.metadata["thresholds"] == meta["thresholds"]
    assert meta["arch"] == "tiny" and len(backend.columns) == 40
    assert (backend.input_spec.height, backend.input_spec.width) == (64, 64)


def test_default_predictor_recognises_synthetic_faces(faces):
    images, labels = faces
    p = Predictor(workers=2, threads=1, batch_size=16)
    assert p.backend.path == default_onnx()
    results = list(p.predict(images))
    assert all(r.ok for r in results) and len(results) == 48
    for attr in ("Black_Hair", "Blond_Hair", "Brown_Hair", "Mouth_Slightly_Open"):  # 0.5 for a constant answer
        truth = labels[attr].astype(bool)
        predicted = np.array([r.labels[attr] for r in results]) == 1
        balanced = (predicted[truth].mean() + (~predicted[~truth]).mean()) / 2
        assert balanced >= 0.8, (attr, balanced)


def test_shipped_checkpoint_and_onnx_agree(faces):
    from attrnet.serve.pipeline import load_item
    from attrnet.serve.sources import Item

    torch_b, ort_b = open_backend(default_checkpoint(), device="cpu"), open_backend(default_onnx(), device="cpu")
    batch = np.stack([load_item(Item("f", data=b), ort_b.input_spec) for b in faces[0][:16]])
    np.testing.assert_allclose(torch_b.run(batch), ort_b.run(batch), atol=1e-4)
