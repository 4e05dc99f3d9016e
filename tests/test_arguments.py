"""Argument errors at enqueue name every bad argument, and an unknown keyword by its name."""

from __future__ import annotations

from datetime import datetime

import pytest

from pubsub_jobs import InvalidArguments, Registry, job

registry = Registry()


@job(name="tests.arguments.greet", registry=registry)
def greet(name: str, count: int, *, when: datetime | None = None) -> None: ...


def test_a_misspelled_keyword_is_named_with_a_suggestion():
    with pytest.raises(InvalidArguments) as raised:
        greet.message(nme="Ada", count=1)
    assert "unexpected keyword argument 'nme' (did you mean 'name'?)" in str(raised.value)
    assert "missing" not in str(raised.value)


def test_every_bad_argument_is_reported_at_once():
    with pytest.raises(InvalidArguments) as raised:
        greet.message("Ada", "many", when="not a date")
    text = str(raised.value)
    assert "argument 'count' is invalid" in text and "argument 'when' is invalid" in text
