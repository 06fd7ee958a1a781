"""The `attrnet` command line (typer).

Conventions: bad input prints one line on stderr naming the file (and line)
and exits 2; a runtime failure exits 1; `--debug` shows the traceback.
Results go to stdout, progress to stderr; `--json` puts machine-readable output on stdout.
Each command is a function in `attrnet/cli/<name>.py` that parses, calls one library
function and prints; it imports its heavy dependencies (torch) only when it runs, so
`predict` on ONNX starts fast. This module registers them.
"""
from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from attrnet.cli.benchmark import benchmark
from attrnet.cli.data import data_info, data_synth
from attrnet.cli.evaluate import evaluate
from attrnet.cli.export import export
from attrnet.cli.predict import predict
from attrnet.cli.serve import serve
from attrnet.cli.taskonomy import taskonomy
from attrnet.cli.train import train
from attrnet.core.errors import AttrnetError, InputError
from attrnet.core.version import __version__

__all__ = ["app", "main"]

# typer >= 0.2x vendors click; older typer re-exports it: find the base class either way.
_UsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def _as_switches(params: list[Any]) -> list[Any]:
    """Show switches (boolean flags, --help) without a value type: typer 0.29's help prints `<bool>`
    after them, as if `--resume true` were the syntax. An empty metavar replaces that label."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


class Command(TyperCommand):
    """A command whose --help shows switches as switches."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _as_switches(super().get_params(ctx))


class Group(TyperGroup):
    """A command group whose --help shows switches as switches."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _as_switches(super().get_params(ctx))


app = typer.Typer(
    name="attrnet",
    help="Train attribute models with adaptive multi-task methods; export and serve them fast.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=Group,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"attrnet {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show the full traceback on errors.")] = False,
) -> None:
    """attrnet: attribute models, adaptive multi-task training, static inference graphs."""


app.command("train", cls=Command)(train)
app.command("eval", cls=Command)(evaluate)
app.command("export", cls=Command)(export)
app.command("predict", cls=Command)(predict)
app.command("serve", cls=Command)(serve)
app.command("benchmark", cls=Command)(benchmark)
app.command("taskonomy", cls=Command)(taskonomy)
data_app = typer.Typer(help="Synthetic datasets and dataset summaries.", no_args_is_help=True, cls=Group)
data_app.command("synth", cls=Command)(data_synth)
data_app.command("info", cls=Command)(data_info)
app.add_typer(data_app, name="data")


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the app and turns errors into one line and an exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        # typer turns Ctrl-C into a return value (130) when not standalone
        result = app(args=args, prog_name="attrnet", standalone_mode=False)
        if isinstance(result, int) and result:
            if result == 130:
                typer.echo("attrnet: interrupted", err=True)
            return result
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        typer.echo("attrnet: interrupted", err=True)
        return 130
    except _UsageError as exc:
        if debug:
            raise
        exc.show()
        return 2
    except KeyboardInterrupt:
        typer.echo("attrnet: interrupted", err=True)
        return 130
    except InputError as exc:
        if debug:
            raise
        typer.echo(f"attrnet: error: {exc}", err=True)
        return 2
    except AttrnetError as exc:
        if debug:
            raise
        typer.echo(f"attrnet: error: {exc}", err=True)
        return 1
    except Exception as exc:  # noqa: BLE001 - the CLI boundary: one line, traceback with --debug
        if debug:
            raise
        typer.echo(f"attrnet: error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
