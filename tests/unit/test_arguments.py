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


def test_aenqueue_checks_arguments_at_once_and_does_not_block_the_loop(memory_adapter):
    """An async endpoint awaits the enqueue; the loop keeps running while it publishes."""
    import asyncio
    import threading

    loop_thread: list[threading.Thread] = []
    publish_thread: list[threading.Thread] = []
    original = memory_adapter.publish

    def publish(message):  # type: ignore[no-untyped-def]
        publish_thread.append(threading.current_thread())
        return original(message)

    memory_adapter.publish = publish  # type: ignore[method-assign]

    async def endpoint() -> None:
        loop_thread.append(threading.current_thread())
        result = await greet.using(queue="default").aenqueue("Ada", 2)
        assert result.job_id
        results = await greet.aenqueue_many([("Bo", 1), {"name": "Cy", "count": 3}])
        assert len(results) == 2
        with pytest.raises(InvalidArguments):
            await greet.aenqueue("Ada", "many")

    asyncio.run(endpoint())
    assert len(memory_adapter.jobs()) == 3
    assert publish_thread and all(t is not loop_thread[0] for t in publish_thread)


def test_unknown_missing_and_invalid_arguments_are_named_in_one_error():
    """The getting-started page's promise: one error names every problem of the call."""
    with pytest.raises(InvalidArguments) as raised:
        greet.message(123, mode="x", when="not a date")
    assert str(raised.value) == (
        "job 'tests.arguments.greet': unexpected keyword argument 'mode'; missing a required "
        "argument: 'count'; argument 'name' is invalid: Input should be a valid string (got "
        "123); argument 'when' is invalid: Input should be a valid datetime or date, invalid "
        "character in year (got 'not a date')"
    )


def test_many_aenqueues_wait_at_once_in_their_own_threads(memory_adapter):
    """Many requests' enqueues can wait for Pub/Sub together: not only as many as the event
    loop's default executor has threads (6 on two cores), and each in its task's context."""
    import asyncio
    import contextvars
    import threading

    from pubsub_jobs._enqueue_threads import AENQUEUE_THREADS

    waiting = 32
    assert waiting <= AENQUEUE_THREADS
    everyone_in = threading.Barrier(waiting)  # passes only once all publish at the same time
    request_id: contextvars.ContextVar[int] = contextvars.ContextVar("request_id")
    seen: list[tuple[int, str]] = []
    original = memory_adapter.publish

    def publish(message):  # type: ignore[no-untyped-def]
        everyone_in.wait(timeout=60)  # a deadlock guard, not a timing check
        seen.append((request_id.get(), message.args[0]))
        return original(message)

    memory_adapter.publish = publish  # type: ignore[method-assign]

    async def request(number: int) -> None:
        request_id.set(number)
        await greet.aenqueue(f"user{number}", 1)

    async def main() -> None:
        await asyncio.gather(*(request(n) for n in range(waiting)))

    asyncio.run(main())
    assert sorted(seen) == sorted((n, f"user{n}") for n in range(waiting))
