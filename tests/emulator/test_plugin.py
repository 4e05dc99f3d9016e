"""The pytest plugin as a user's project sees it: a test file using its fixtures."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

USER_TESTS = '''
from pubsub_jobs import job, current_job

DONE = []

@job(queue="emails")
def send(to: str) -> None:
    DONE.append((to, current_job().attempt))

@job(queue="emails", max_attempts=2)
def broken() -> None:
    raise ValueError("nope")

def test_on_the_emulator(bootstrap_queues, drain_queues, dead_letters):
    bootstrap_queues("emails")
    send.enqueue("a@example.com")
    broken.enqueue()
    worker = drain_queues("emails")
    assert DONE == [("a@example.com", 1)]
    assert worker.stats.dead_lettered == 1
    [dead] = dead_letters("emails", expect=1)
    assert dead.reason == "max_attempts"

def test_in_memory(memory_adapter):
    DONE.clear()
    send.enqueue("b@example.com")
    assert [j.args for j in memory_adapter.jobs("emails")] == [["b@example.com"]]
    memory_adapter.run()
    assert DONE == [("b@example.com", 1)]

def test_immediate(immediate_adapter):
    DONE.clear()
    send.enqueue("c@example.com")
    assert DONE == [("c@example.com", 1)]
'''


def test_users_can_test_with_the_plugin(pytester: pytest.Pytester, pubsub_emulator: str):
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


