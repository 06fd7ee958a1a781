"""Independent columns: one full backbone column per attribute (or per group of `--columns`)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from attrnet.train.method import Method

__all__ = ["IndependentMethod"]

if TYPE_CHECKING:
    from attrnet.core.topology import Topology
    from attrnet.core.schema import Schema


class IndependentMethod(Method):
    """Option `columns`: a groups file, or "per-attribute"/None for one column per attribute."""

    name = "independent"

    def groups(self, schema: "Schema") -> dict[str, list[str]]:
        from attrnet.core.schema import complete_groups, read_groups

        columns = self.options.get("columns")
        if not columns or columns == "per-attribute":
            return {a: [a] for a in schema.names}
        return complete_groups(read_groups(columns, schema), schema)

    def initial_topology(self, arch: str, schema: "Schema") -> "Topology":
        from attrnet.models.backbones import backbone
        from attrnet.core.topology import independent

        return independent(arch, backbone(arch).widths, self.groups(schema))
