"""The ``s2e`` dispatcher: subcommands from entry points, errors as one line."""

from __future__ import annotations

import argparse

import pytest

from s2e_policy import cli
from s2e_policy.errors import S2EError


class _EntryPoint:
    """An entry point as importlib.metadata yields it (name + load())."""

    def __init__(self, name: str, register) -> None:
        self.name = name
        self._register = register

    def load(self):
        return self._register


def _register_failing(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("explode", help="raise a user-facing error")

    def handler(args: argparse.Namespace) -> int:
        raise S2EError("scene.ply: property 'opacity' missing (expected INRIA 3DGS layout)")

    parser.set_defaults(func=handler)


def _register_ok(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("hello")
    parser.add_argument("--code", type=int, default=0)
    parser.set_defaults(func=lambda args: args.code)


@pytest.fixture
def fake_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    eps = [_EntryPoint("explode", _register_failing), _EntryPoint("hello", _register_ok)]
    monkeypatch.setattr(cli, "entry_points", lambda group: eps if group == cli.ENTRY_POINT_GROUP
                        else [])


def test_user_error_is_one_line_exit_2(fake_commands, capsys) -> None:
    assert cli.main(["explode"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == ("s2e explode: error: scene.ply: property 'opacity' missing "
                           "(expected INRIA 3DGS layout)")


def test_handler_exit_status_is_returned(fake_commands) -> None:
    assert cli.main(["hello", "--code", "3"]) == 3
    assert cli.main(["hello"]) == 0


def test_no_command_prints_help(fake_commands, capsys) -> None:
    assert cli.main([]) == 2
    assert "explode" in capsys.readouterr().out


def test_errors_are_value_errors() -> None:
    assert issubclass(S2EError, ValueError)
