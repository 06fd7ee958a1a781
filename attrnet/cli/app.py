"""The `attrnet` command line (typer).

Conventions: bad input prints one line on stderr naming the file (and line)
and exits 2; a runtime failure exits 1; `--debug` shows the traceback.
Progress goes to stderr; `--json` puts machine-readable output on stdout.
Each command lives in `attrnet/commands/<name>.py` and imports its heavy
dependencies (torch) only when it runs, so `predict` on ONNX starts fast.
"""
from __future__ import annotations

import sys

import typer

from attrnet.core.version import __version__
from attrnet.cli import benchmark, data, evaluate, export, predict, serve, taskonomy, train
from attrnet.core.errors import AttrnetError, InputError

# typer >= 0.2x vendors click; older typer re-exports it: find the base class either way.
_UsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")

app = typer.Typer(
    name="attrnet",
    help="Train attribute models with adaptive multi-task methods; export and serve them fast.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"attrnet {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback on errors."),
) -> None:
    """attrnet: attribute models, adaptive multi-task training, static inference graphs."""


for module in (data, train, evaluate, export, predict, serve, benchmark, taskonomy):
    module.register(app)


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
