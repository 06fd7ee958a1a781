"""Property-based tests over every label-file parser: mutated files give InputError (file + line) or load.

Each example mutates one label file of a small valid dataset (truncation, wrong column counts,
non-numeric values, duplicate and missing rows, CRLF, BOM, trailing whitespace), loads it with
`load_index` and runs `attrnet data info` on it: the only exception allowed out is `InputError`
naming the file, and the CLI exits 2 with one stderr line (or 0 when the file still loads).
"""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attrnet.cli import main
from attrnet.data import load_index
from attrnet.core.errors import InputError
from reliability_helpers import encode, rgb

SETTINGS = settings(max_examples=30, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
ODD_VALUES = ["x", "1.5", "nan", "-", "--1", "2", "-2", "1e3", "٣", "\"1\"", "0x1", "true", "", " "]

TEXT_FILES = {
    "celeba": ["list_attr_celeba.txt", "list_eval_partition.txt"],
    "deepfashion": ["Anno/list_attr_img.txt", "Anno/list_attr_cloth.txt", "Eval/list_eval_partition.txt"],
    "folder": ["labels.csv"],
}


def _folder_dataset(root: Path) -> None:
    root.mkdir(parents=True)
    (root / "imgs").mkdir()
    rows = ["path,Smiling,Eyeglasses,hair_color,split"]
    for i in range(8):
        (root / "imgs" / f"a{i}.png").write_bytes(encode(rgb(8, 8, seed=i), "PNG"))
        rows.append(f"imgs/a{i}.png,{i % 2},{-1 if i == 3 else (i // 2) % 2},{['black', 'blond', ''][i % 3]},"
                    f"{['train', 'val', 'test'][i % 3]}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from attrnet.data.synth import generate

    base = tmp_path_factory.mktemp("labels")
    out = {}
    for preset in ("celeba", "deepfashion", "market", "duke"):
        generate(preset, base / preset, num=10, seed=0, size=(8, 8))
        out[preset] = base / preset
    _folder_dataset(base / "folder")
    out["folder"] = base / "folder"
    return out


# --- mutations of a text file, as a list of operations on its lines -------------------------------

@st.composite
def text_mutations(draw: st.DrawFn) -> list[tuple]:
    ops = st.one_of(
        st.tuples(st.just("truncate"), st.floats(0, 1)),
        st.tuples(st.just("drop_token"), st.floats(0, 1), st.floats(0, 1)),
        st.tuples(st.just("add_token"), st.floats(0, 1), st.sampled_from(ODD_VALUES)),
        st.tuples(st.just("replace_token"), st.floats(0, 1), st.floats(0, 1), st.sampled_from(ODD_VALUES)),
        st.tuples(st.just("dup_line"), st.floats(0, 1)),
        st.tuples(st.just("drop_line"), st.floats(0, 1)),
        st.tuples(st.just("crlf")), st.tuples(st.just("bom")), st.tuples(st.just("trailing_ws")),
        st.tuples(st.just("blank_line"), st.floats(0, 1)),
    )
    return draw(st.lists(ops, min_size=1, max_size=3))


def _pick(seq: list, f: float) -> int:
    return min(int(f * len(seq)), len(seq) - 1)


def apply_mutations(text: str, ops: list[tuple]) -> bytes:
    sep = "," if "," in text.splitlines()[0] else " "
    lines = text.splitlines()
    newline, bom, trailing = "\n", False, False
    truncate_at = None
    for op in ops:
        kind = op[0]
        if kind == "truncate":
            truncate_at = op[1]
        elif kind in ("drop_token", "add_token", "replace_token") and lines:
            i = _pick(lines, op[1])
            tokens = lines[i].split(sep) if sep == "," else lines[i].split()
            if kind == "add_token":
                tokens.append(op[2])
            elif tokens:
                j = _pick(tokens, op[2])
                if kind == "drop_token":
                    del tokens[j]
                else:
                    tokens[j] = op[3]
            lines[i] = (sep if sep == "," else "  ").join(tokens)
        elif kind == "dup_line" and lines:
            i = _pick(lines, op[1])
            lines.insert(i, lines[i])
        elif kind == "drop_line" and lines:
            del lines[_pick(lines, op[1])]
        elif kind == "blank_line":
            lines.insert(_pick(lines + [""], op[1]), "")
        elif kind == "crlf":
            newline = "\r\n"
        elif kind == "bom":
            bom = True
        elif kind == "trailing_ws":
            trailing = True
    body = newline.join(ln + (" \t " if trailing else "") for ln in lines) + newline
    data = ("\ufeff" if bom else "").encode() + body.encode("utf-8")
    if truncate_at is not None:
        data = data[: int(truncate_at * len(data))]
    return data


# --- the property ----------------------------------------------------------------------------------

def _cli(spec: str) -> tuple[int, str]:
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main(["data", "info", spec, "--json"])
    return code, err.getvalue()


def check_loader_and_cli(spec: str, root: Path) -> None:
    try:
        index = load_index(spec)
    except InputError as exc:
        assert exc.path is not None, str(exc)
        assert Path(exc.path).resolve().is_relative_to(root.resolve()), str(exc)
        assert str(exc).startswith(exc.path), str(exc)
        loaded = False
    else:
        assert len(index.paths) == index.labels.shape[0]
        assert np.isin(index.labels[~np.isnan(index.labels)], (0.0, 1.0)).all()
        loaded = True
    code, err = _cli(spec)
    assert "Traceback" not in err
    if loaded:
        assert code == 0, err
    else:
        assert code == 2, err
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("attrnet: error: "), err


@contextlib.contextmanager
def mutated(path: Path, data: bytes):
    original = path.read_bytes()
    path.write_bytes(data)
    try:
        yield
    finally:
        path.write_bytes(original)


@pytest.mark.parametrize("fmt,name", [(f, n) for f, names in TEXT_FILES.items() for n in names])
@SETTINGS
@given(ops=text_mutations())
def test_text_label_file_mutations(datasets: dict[str, Path], fmt: str, name: str, ops: list[tuple]) -> None:
    root = datasets[fmt]
    path = root / name
    with mutated(path, apply_mutations(path.read_text(encoding="utf-8"), ops)):
        check_loader_and_cli(f"{fmt}:{root}", root)


@pytest.mark.parametrize("fmt", ["market", "duke"])
@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(cut=st.floats(0, 1), flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=4))
def test_mat_file_corruption(datasets: dict[str, Path], fmt: str, cut: float, flips: list) -> None:
    root = datasets[fmt]
    path = root / f"{fmt}_attribute.mat"
    data = bytearray(path.read_bytes())
    for pos, byte in flips:
        data[_pick(list(range(len(data))), pos)] = byte
    if cut < 0.9:
        data = data[: int(cut * len(data))]
    with mutated(path, bytes(data)):
        check_loader_and_cli(f"{fmt}:{root}", root)


def test_known_bad_lines_are_named(datasets: dict[str, Path]) -> None:
    """Concrete cases: the error names the file and the offending line."""
    root = datasets["celeba"]
    attr = root / "list_attr_celeba.txt"
    lines = attr.read_text().splitlines()
    lines[4] = lines[4].replace("-1", "x", 1)
    with mutated(attr, "\n".join(lines).encode()):
        with pytest.raises(InputError) as exc:
            load_index(f"celeba:{root}")
    assert exc.value.path == str(attr) and exc.value.line == 5
    part = root / "list_eval_partition.txt"
    with mutated(part, "\n".join(part.read_text().splitlines()[:-1]).encode()):
        with pytest.raises(InputError, match="not listed"):
            load_index(f"celeba:{root}")
    csv_path = datasets["folder"] / "labels.csv"
    lines = csv_path.read_text().splitlines()
    lines.append(lines[2])  # duplicate image row
    with mutated(csv_path, "\n".join(lines).encode()):
        with pytest.raises(InputError) as exc:
            load_index(f"folder:{datasets['folder']}")
    assert exc.value.path == str(csv_path) and exc.value.line is not None


def test_cli_one_line_for_missing_and_unknown(tmp_path: Path) -> None:
    for spec in (f"celeba:{tmp_path}", f"nosuchformat:{tmp_path}", "celeba", f"folder:{tmp_path / 'missing'}",
                 f"market:{tmp_path}"):
        code, err = _cli(spec)
        assert code == 2, (spec, err)
        assert len([ln for ln in err.splitlines() if ln.strip()]) == 1 and "Traceback" not in err, err


def test_mat_file_that_is_not_a_mat_file(datasets: dict[str, Path]) -> None:
    root = datasets["market"]
    for junk in (b"", b"MATLAB 5.0 MAT-file" + b"\x00" * 200, b"\x89HDF\r\n\x1a\n" + b"\x00" * 100, b"plain text\n"):
        with mutated(root / "market_attribute.mat", junk):
            with pytest.raises(InputError):
                load_index(f"market:{root}")
