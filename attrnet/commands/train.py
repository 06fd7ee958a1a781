"""`attrnet train`."""
from __future__ import annotations

import typer

from attrnet.commands.common import not_implemented


def register(app: typer.Typer) -> None:
    @app.command("train", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def _cmd() -> None:
        """Not implemented yet."""
        not_implemented("train")
