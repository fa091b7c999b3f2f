"""The ``s2e`` command line.

``s2e`` lives in the lowest package (s2e_policy) so that a robot with only the runtime
installed still has it. Subcommands are contributed by every installed S2E package through
the ``s2e.commands`` entry-point group: each entry point names a function
``register(subparsers) -> None`` that adds one subcommand and sets ``func`` on its parser.
Dependencies therefore keep pointing one way (training -> sim_bridge -> policy).
"""

from __future__ import annotations

import argparse
import ast
import logging
import sys
from collections.abc import Callable
from importlib import import_module
from importlib.metadata import entry_points
from importlib.util import find_spec
from typing import Any

from s2e_policy import __version__
from s2e_policy.errors import S2EError

ENTRY_POINT_GROUP = "s2e.commands"


def module_docstring(module: str) -> str | None:
    """A module's docstring read from its source, without importing it.

    Subcommands use it for ``--help`` text while keeping heavy imports (torch, MuJoCo) out of
    ``s2e`` start-up: register functions must stay cheap, handlers import what they run.
    """
    spec = find_spec(module)
    if spec is None or spec.origin is None:
        return None
    with open(spec.origin, encoding="utf-8") as handle:
        return ast.get_docstring(ast.parse(handle.read()))


def lazy_attributes(package: str, names: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``package.<names[name]>`` on first use of ``name``.

    Packages whose modules import torch re-export them this way, so that registering their
    subcommands (which imports the package) does not import torch.
    """

    def getattr_(name: str) -> Any:
        if name in names:
            return getattr(import_module(f"{package}.{names[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return getattr_


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every installed subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="s2e",
        description="S2E navigation stack: scenes, rendering, NavBench-GS, training, replay.",
    )
    parser.add_argument("--version", action="version", version=f"s2e {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        ep.load()(subparsers)
    return parser


def _run_handler(name: str, handler: Callable[[argparse.Namespace], Any],
                 args: argparse.Namespace) -> int:
    """Run a command handler: bad input is one line and exit status 2, Ctrl-C is 130."""
    try:
        result = handler(args)
    except S2EError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


def _configure_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``s2e`` console script; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return _run_handler(f"s2e {args.command}", args.func, args)


def standalone_main(parser: argparse.ArgumentParser,
                    handler: Callable[[argparse.Namespace], Any],
                    argv: list[str] | None = None) -> int:
    """``python -m`` entry of a tool outside ``s2e`` (DDS nodes, relay), same error rules."""
    args = parser.parse_args(argv)
    _configure_logging()
    return _run_handler(parser.prog, handler, args)


if __name__ == "__main__":
    sys.exit(main())
