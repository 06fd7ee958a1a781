"""Schema presets, output columns, JSON round-trip and the groups file."""
import json

import pytest

from attrnet.core import schema as S
from attrnet.core.errors import InputError


def test_celeba_preset_has_40_binary_columns():
    s = S.preset("celeba")
    assert len(s.attributes) == 40 and s.num_columns == 40
    assert s.columns[0] == "5_o_Clock_Shadow" and s.columns[-1] == "Young"
    assert all(s.binary_columns)


def test_market_preset_follows_published_protocol():
    s = S.preset("market")
    assert len(s.attributes) == 12 and s.num_columns == 30
    kinds = [a.kind for a in s.attributes]
    assert kinds.count("binary") == 9
    assert s.attribute("age").classes == ("young", "teenager", "adult", "old")
    assert "upcolor=black" in s.columns and "downcolor=brown" in s.columns
    assert len(s.attribute("upcolor").classes) == 8 and len(s.attribute("downcolor").classes) == 9


def test_duke_preset_follows_published_protocol():
    s = S.preset("duke")
    assert len(s.attributes) == 10 and s.num_columns == 23
    assert [a.kind for a in s.attributes].count("binary") == 8


def test_column_bookkeeping_for_categorical_groups():
    s = S.Schema((S.binary("a"), S.categorical("c", ["x", "y", "z"]), S.binary("b")))
    assert s.columns == ["a", "c=x", "c=y", "c=z", "b"]
    assert s.slices == [slice(0, 1), slice(1, 4), slice(4, 5)]
    assert s.column_attribute == [0, 1, 1, 1, 2]
    assert s.binary_columns == [True, False, False, False, True]


def test_schema_json_round_trip():
    s = S.preset("market")
    back = S.Schema.from_dict(json.loads(json.dumps(s.to_dict())))
    assert back == s and back.columns == s.columns


@pytest.mark.parametrize("bad", [
    lambda: S.Schema((S.binary("a"), S.binary("a"))),
    lambda: S.categorical("c", ["only"]),
    lambda: S.binary("a=b"),
    lambda: S.Attribute("a", "binary", ("x",)),
])
def test_invalid_schemas_are_rejected(bad):
    with pytest.raises(ValueError):
        bad()


def test_unknown_preset_is_an_input_error():
    with pytest.raises(InputError, match="unknown schema preset"):
        S.preset("imagenet")


def test_groups_file_round_trip_and_validation(tmp_path):
    s = S.preset("celeba")
    path = tmp_path / "groups.json"
    S.write_groups(path, {"hair": ["Black_Hair", "Blond_Hair"], "mouth": ["Smiling"]})
    groups = S.read_groups(path, s)
    assert groups == {"hair": ["Black_Hair", "Blond_Hair"], "mouth": ["Smiling"]}
    full = S.complete_groups(groups, s)
    assert sorted(a for g in full.values() for a in g) == sorted(s.names)


def test_groups_file_errors_name_the_file(tmp_path):
    s = S.preset("celeba")
    p = tmp_path / "g.json"
    p.write_text('{"groups": {"a": ["Smiling"], "b": ["Smiling"]}}')
    with pytest.raises(InputError, match="g.json.*'Smiling' is in groups"):
        S.read_groups(p, s)
    p.write_text('{"groups": {"a": ["Nope"]}}')
    with pytest.raises(InputError, match="unknown attribute 'Nope'"):
        S.read_groups(p, s)
    p.write_text('{"groups": \n {')
    with pytest.raises(InputError, match=r"g.json:2: invalid JSON"):
        S.read_groups(p)
