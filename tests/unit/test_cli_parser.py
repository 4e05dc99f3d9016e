"""The command line's parser: options people put before or after the command."""

from __future__ import annotations

import pytest

from pubsub_jobs.cli import build_parser


@pytest.mark.parametrize("argv", [
    ["--app", "a", "bootstrap", "--app", "b"],
    ["--app", "a", "--app", "b", "bootstrap"],
    ["bootstrap", "--app", "a", "--app", "b"],
])
def test_app_before_or_after_the_command(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    given = [*(args.app or []), *getattr(args, "app_after", [])]
    assert given == ["a", "b"]


def test_app_after_a_nested_command() -> None:
    args = build_parser().parse_args(["dead", "list", "billing", "--app", "myapp.jobs"])
    assert args.app is None and args.app_after == ["myapp.jobs"]
