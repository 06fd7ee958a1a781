"""Ray Data predict and the Ray Serve endpoint on a local Ray this module starts once (2 CPUs) and shuts down.

Both are checked against local predict on the same folder: the same rows,
probabilities within 1e-5, the same error rows for broken files.
"""
from __future__ import annotations

import csv
import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

ray = pytest.importorskip("ray")
pq = pytest.importorskip("pyarrow.parquet")

from attrnet.cli import main  # noqa: E402
from attrnet.serve.predictor import Predictor  # noqa: E402
from attrnet.serve.scale import iter_results, predict_dataset  # noqa: E402
from attrnet.serve.scale_endpoint import QUIET_LOGS, endpoint_app  # noqa: E402
from serve_helpers import write_jpegs  # noqa: E402

# Ray 2.60's own deprecations (pydantic Field extras, DataContext flags) are not this module's concern
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
PORT = 18765
ROUNDS, CONCURRENT = 4, 12  # the bounded request loop


@pytest.fixture(scope="module")
def ray_local():
    ray.init(num_cpus=2, logging_level="WARNING", include_dashboard=False)
    yield
    from ray import serve

    serve.shutdown()
    ray.shutdown()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("scale-ray")
    write_jpegs(root, 10)
    write_jpegs(root / "sub", 3, prefix="s", seed=1)
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    (root / "empty.png").write_bytes(b"")
    (root / "list.txt").write_text("img000.jpg\nsub/s001.jpg\n../outside.jpg\nmissing.jpg\n")
    return root


@pytest.fixture(scope="module")
def local(folder):
    """Local predict's rows over the folder, in its order: the reference."""
    return list(Predictor(device="cpu", workers=1, threads=1).predict(folder))


def _assert_same_rows(got, want):
    assert [r.source for r in got] == [r.source for r in want]
    for g, w in zip(got, want):
        assert g.error == w.error
        if w.ok:
            assert g.labels == w.labels
            np.testing.assert_allclose([g.probs[c] for c in w.probs], list(w.probs.values()), atol=1e-5)


def test_ray_predict_equals_local_predict(ray_local, folder, local):
    ds = predict_dataset(folder, batch_size=4, concurrency=2)
    assert ds.columns()[:3] == ["path", "error", "5_o_Clock_Shadow"]
    ds.context.execution_options.preserve_order = True
    got = list(iter_results(ds, Predictor(device="cpu").backend.card))
    assert sum(not r.ok for r in got) == 2  # broken.jpg, empty.png
    _assert_same_rows(got, local)


def test_list_file_rows_and_raw_columns(ray_local, folder):
    listed = list(Predictor(device="cpu", workers=1).predict(folder / "list.txt"))
    assert [r.ok for r in listed] == [True, True, False, False]  # outside the list's folder, missing
    rows = {row["path"]: row for row in predict_dataset(folder / "list.txt", concurrency=1).take_all()}
    assert sorted(rows) == sorted(r.source for r in listed)
    for r in listed:
        assert rows[r.source]["error"] == r.error
        if r.ok:
            np.testing.assert_allclose([rows[r.source][c] for c in r.probs], list(r.probs.values()), atol=1e-5)
        else:
            assert np.isnan(rows[r.source]["Male"])


def test_a_dataset_of_bytes(ray_local, folder, local):
    ds = ray.data.read_binary_files(str(folder / "sub"), include_paths=True)
    rows = {row["path"]: row for row in predict_dataset(ds, concurrency=1).take_all()}
    want = [r for r in local if "/sub/" in r.source]
    assert len(rows) == len(want) == 3
    for r in want:
        got = next(v for k, v in rows.items() if r.source.endswith(k))
        np.testing.assert_allclose([got[c] for c in r.probs], list(r.probs.values()), atol=1e-5)


def test_cli_predict_ray_writes_local_predicts_csv_rows_in_its_order(ray_local, folder, tmp_path):
    assert main(["predict", str(folder), "--out", str(tmp_path / "local.csv")]) == 0
    args = ["predict", str(folder), "--ray", "--concurrency", "2", "--batch-size", "4"]
    assert main([*args, "--out", str(tmp_path / "ray.csv")]) == 0  # joins this module's Ray, leaves it running
    want, got = (list(csv.reader((tmp_path / name).open(newline=""))) for name in ("local.csv", "ray.csv"))
    assert got[0] == want[0] and len(got) == len(want) == 16  # header + 15 rows, two of them errors
    for g, w in zip(got[1:], want[1:]):
        assert g[:2] == w[:2] and g[42:] == w[42:]  # path, error, labels
        assert all(abs(float(a) - float(b)) < 1e-5 for a, b in zip(g[2:42], w[2:42]) if b)
    assert sum(bool(w[1]) for w in want[1:]) == 2 and ray.is_initialized()


def test_cli_predict_ray_writes_parquet_with_rays_writer(ray_local, folder, tmp_path, capsys):
    out = tmp_path / "preds.parquet"
    assert main(["predict", str(folder / "sub"), "--ray", "--concurrency", "1", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["images"] == 3 and summary["errors"] == 0 and out.is_dir()
    table = pq.read_table(out)
    assert table.column_names[:3] == ["path", "error", "5_o_Clock_Shadow"] and table.num_rows == 3


@pytest.fixture(scope="module")
def endpoint(ray_local):
    from ray import serve

    serve.start(http_options={"host": "127.0.0.1", "port": PORT}, logging_config=QUIET_LOGS)
    serve.run(endpoint_app(max_batch=8, batch_wait_ms=5, cpus_per_replica=1), name="attrnet", route_prefix="/")
    yield f"http://127.0.0.1:{PORT}"
    serve.delete("attrnet")


def _request(url, body=None):
    req = urllib.request.Request(url, data=body, method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_endpoint_answers_concurrent_requests_like_local_predict(endpoint, folder, local):
    good = [r for r in local if r.ok]
    jobs = [good[i % len(good)] for i in range(ROUNDS * CONCURRENT)]
    with ThreadPoolExecutor(CONCURRENT) as pool:
        answers = list(pool.map(lambda r: _request(f"{endpoint}/predict", open(r.source, "rb").read()), jobs))
    for (status, body), ref in zip(answers, jobs):
        assert status == 200 and set(body) == {"probs", "labels"} and body["labels"] == ref.labels
        assert max(abs(body["probs"][c] - p) for c, p in ref.probs.items()) < 1e-5


def test_a_corrupt_body_gets_400_and_the_next_request_200(endpoint, folder, local):
    broken = next(r for r in local if not r.ok and r.source.endswith("broken.jpg"))
    status, body = _request(f"{endpoint}/predict", (folder / "broken.jpg").read_bytes())
    assert status == 400 and body == {"error": broken.error}
    assert _request(f"{endpoint}/predict", b"") == (400, {"error": "empty image file"})
    status, body = _request(f"{endpoint}/predict", (folder / "img003.jpg").read_bytes())
    assert status == 200 and body["labels"] == next(r.labels for r in local if r.source.endswith("img003.jpg"))


def test_health_metadata_and_unknown_routes(endpoint):
    assert _request(f"{endpoint}/health") == (200, {"status": "ok"})
    status, meta = _request(f"{endpoint}/metadata")
    assert status == 200 and meta["input"]["height"] == 64 and len(meta["columns"]) == 40
    assert _request(f"{endpoint}/nothing")[0] == 404
    assert _request(f"{endpoint}/health", b"x")[0] == 405
