"""Attributes, output columns and the dataset presets.

An attribute is one task: binary (one output column named ``attr``) or
categorical (one column per class, named ``attr=class``, softmax within the
group). A `Schema` is the ordered list of attributes; the model's ``[B, C]``
output follows its column order.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Sequence

from attrnet.core.errors import InputError

__all__ = ["Attribute", "binary", "categorical", "CELEBA_ATTRIBUTES", "celeba_schema", "complete_groups",
           "deepfashion_schema", "DUKE_BINARY", "DUKE_DOWN_COLORS", "duke_schema", "DUKE_UP_COLORS", "Kind",
           "MARKET_AGES", "MARKET_BINARY", "MARKET_DOWN_COLORS", "market_schema", "MARKET_UP_COLORS",
           "preset", "PRESETS", "read_groups", "Schema", "write_groups"]

Kind = Literal["binary", "categorical"]


@dataclass(frozen=True)
class Attribute:
    """One task: binary, or categorical over `classes`."""

    name: str
    kind: Kind = "binary"
    classes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name or "=" in self.name:
            raise ValueError(f"invalid attribute name {self.name!r}")
        if self.kind == "binary" and self.classes:
            raise ValueError(f"binary attribute {self.name!r} takes no classes")
        if self.kind == "categorical":
            if len(self.classes) < 2:
                raise ValueError(f"categorical attribute {self.name!r} needs at least 2 classes")
            if len(set(self.classes)) != len(self.classes):
                raise ValueError(f"categorical attribute {self.name!r} has duplicate classes")
        if self.kind not in ("binary", "categorical"):
            raise ValueError(f"unknown attribute kind {self.kind!r}")

    @property
    def columns(self) -> list[str]:
        if self.kind == "binary":
            return [self.name]
        return [f"{self.name}={c}" for c in self.classes]

    @property
    def width(self) -> int:
        return 1 if self.kind == "binary" else len(self.classes)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.classes:
            d["classes"] = list(self.classes)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Attribute":
        return cls(d["name"], d.get("kind", "binary"), tuple(d.get("classes", ())))


def binary(name: str) -> Attribute:
    return Attribute(name)


def categorical(name: str, classes: Sequence[str]) -> Attribute:
    return Attribute(name, "categorical", tuple(classes))


@dataclass(frozen=True)
class Schema:
    """Ordered attributes and the output columns they produce."""

    attributes: tuple[Attribute, ...]
    name: str = "custom"

    def __post_init__(self) -> None:
        names = [a.name for a in self.attributes]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"duplicate attribute names: {', '.join(dup)}")
        if not names:
            raise ValueError("a schema needs at least one attribute")

    @cached_property
    def columns(self) -> list[str]:
        return [c for a in self.attributes for c in a.columns]

    @property
    def num_columns(self) -> int:
        return len(self.columns)

    @property
    def names(self) -> list[str]:
        return [a.name for a in self.attributes]

    @cached_property
    def slices(self) -> list[slice]:
        """Column slice of each attribute, in schema order."""
        out, start = [], 0
        for a in self.attributes:
            out.append(slice(start, start + a.width))
            start += a.width
        return out

    @cached_property
    def column_attribute(self) -> list[int]:
        """Index of the owning attribute for every output column."""
        return [i for i, a in enumerate(self.attributes) for _ in range(a.width)]

    @cached_property
    def binary_columns(self) -> list[bool]:
        return [self.attributes[i].kind == "binary" for i in self.column_attribute]

    @property
    def has_categorical(self) -> bool:
        return any(a.kind == "categorical" for a in self.attributes)

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"unknown attribute {name!r}") from None

    def attribute(self, name: str) -> Attribute:
        return self.attributes[self.index(name)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "attributes": [a.to_dict() for a in self.attributes],
            "columns": self.columns,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Schema":
        schema = cls(tuple(Attribute.from_dict(a) for a in d["attributes"]), d.get("name", "custom"))
        if "columns" in d and list(d["columns"]) != schema.columns:
            raise ValueError("schema columns do not match its attributes")
        return schema


CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips "
    "Big_Nose Black_Hair Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin "
    "Eyeglasses Goatee Gray_Hair Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open "
    "Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose Receding_Hairline "
    "Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
    "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()

# Market-1501_Attribute (Lin et al.): 27 annotated fields reduced to 12 attributes.
# Binary fields are coded 1/2 in the .mat; value 2 is the positive class:
#   backpack/bag/handbag/hat: 2 = yes; clothes: 2 = pants (1 = dress);
#   down: 2 = short lower-body clothing; up: 2 = short sleeve; hair: 2 = long;
#   gender: 2 = female.  age: 1..4 = young, teenager, adult, old.
MARKET_BINARY = ("backpack", "bag", "handbag", "clothes", "down", "up", "hair", "hat", "gender")
MARKET_AGES = ("young", "teenager", "adult", "old")
MARKET_UP_COLORS = ("black", "white", "red", "purple", "yellow", "gray", "blue", "green")
MARKET_DOWN_COLORS = ("black", "white", "pink", "purple", "yellow", "gray", "blue", "green", "brown")

# DukeMTMC-attribute (Lin et al.): 23 fields reduced to 10 attributes.
#   boots: 2 = yes; shoes: 2 = light; top: 2 = long upper-body clothing; others as Market.
DUKE_BINARY = ("backpack", "bag", "handbag", "boots", "gender", "hat", "shoes", "top")
DUKE_UP_COLORS = ("black", "white", "red", "purple", "gray", "blue", "green", "brown")
DUKE_DOWN_COLORS = ("black", "white", "red", "gray", "blue", "green", "brown")


def celeba_schema() -> Schema:
    return Schema(tuple(binary(n) for n in CELEBA_ATTRIBUTES), "celeba")


def market_schema() -> Schema:
    attrs = [binary(n) for n in MARKET_BINARY]
    attrs += [
        categorical("age", MARKET_AGES),
        categorical("upcolor", MARKET_UP_COLORS),
        categorical("downcolor", MARKET_DOWN_COLORS),
    ]
    return Schema(tuple(attrs), "market")


def duke_schema() -> Schema:
    attrs = [binary(n) for n in DUKE_BINARY]
    attrs += [categorical("upcolor", DUKE_UP_COLORS), categorical("downcolor", DUKE_DOWN_COLORS)]
    return Schema(tuple(attrs), "duke")


def deepfashion_schema(names: Sequence[str]) -> Schema:
    """DeepFashion's attributes are read from `Anno/list_attr_cloth.txt`."""
    return Schema(tuple(binary(n) for n in names), "deepfashion")


PRESETS = {"celeba": celeba_schema, "market": market_schema, "duke": duke_schema}


def preset(name: str) -> Schema:
    """The schema of a published benchmark by name (DeepFashion needs its names: see loader)."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise InputError(f"unknown schema preset {name!r} (choose from {', '.join(PRESETS)})") from None


# ---------------------------------------------------------------- groups file

def read_groups(path: str | Path, schema: Schema | None = None) -> dict[str, list[str]]:
    """Read a groups file ``{"groups": {"<name>": ["<attribute>", ...]}}``.

    With a schema, every attribute must exist and appear in at most one group.
    """
    from attrnet.core.fileio import read_json

    path = Path(path)
    doc = read_json(path, "groups file")
    groups = doc.get("groups") if isinstance(doc, dict) else None
    if not isinstance(groups, dict) or not groups:
        raise InputError('expected {"groups": {"<name>": ["<attribute>", ...]}}', path)
    out: dict[str, list[str]] = {}
    seen: dict[str, str] = {}
    for gname, members in groups.items():
        if not isinstance(members, list) or not members or not all(isinstance(m, str) for m in members):
            raise InputError(f"group {gname!r} must be a non-empty list of attribute names", path)
        for m in members:
            if schema is not None and m not in schema.names:
                raise InputError(f"group {gname!r} names unknown attribute {m!r}", path)
            if m in seen:
                raise InputError(f"attribute {m!r} is in groups {seen[m]!r} and {gname!r}", path)
            seen[m] = gname
        out[str(gname)] = list(members)
    return out


def write_groups(path: str | Path, groups: dict[str, Sequence[str]]) -> None:
    from attrnet.core.fileio import atomic_write_text

    atomic_write_text(path, json.dumps({"groups": {k: list(v) for k, v in groups.items()}}, indent=2) + "\n")


def complete_groups(groups: dict[str, list[str]], schema: Schema) -> dict[str, list[str]]:
    """Groups covering every attribute: attributes not named get a group of their own."""
    named = {m for ms in groups.values() for m in ms}
    out = {k: list(v) for k, v in groups.items()}
    for a in schema.names:
        if a not in named:
            out[a] = [a]
    return out
