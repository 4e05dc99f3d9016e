"""A module no message may make the worker import."""

IMPORTED = True


def boom() -> None:
    raise AssertionError("a message made the worker run a function it never registered")
