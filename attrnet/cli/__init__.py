"""The `attrnet` command line: parsing and printing only; every command calls a library function."""
from attrnet.cli.app import app, main

__all__ = ["app", "main"]
