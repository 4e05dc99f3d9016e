"""Rate-limited queues and cancelling in the Terraform module: each rate-limited queue's
Cloud Tasks queue ``<prefix>Q-rate`` with its rate and the delayed-jobs queue's retries, the
grants to create tasks there, and who may delete tasks (cancel jobs).

As in test_module.py, Terraform itself evaluates the provider-free files (values and
refusals) and python-hcl2 reads how the resources use them; the plan against the provider's
schema is tfcheck's (../shared/tools/tfcheck), run by hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pubsub_jobs import queues as queues_module
from pubsub_jobs.admin.terraform_vars import terraform_vars
from pubsub_jobs.queues import queue as declare_queue
from pubsub_jobs.settings import QueueOptions, Settings
from tests.terraform.test_module import (
    MODULE,
    evaluate_module,
    load_hcl,
    module_resources,
    module_variables,
    refusal,
    resources,
    unquote,
)


@pytest.fixture
def declared() -> Iterator[None]:
    declare_queue("emails", rate_limit=20)
    declare_queue("trickle", rate_limit=0.5, ordered=True)
    declare_queue("plain")
    yield
    for name in ("emails", "trickle", "plain"):
        queues_module.declared_queues.remove(name)


@pytest.mark.usefixtures("declared")
def test_terraform_vars_write_each_declared_rate_limit(tmp_path: Path) -> None:
    settings = Settings(project_id="p", prefix="app-", queue_defaults=QueueOptions(),
                        cloud_tasks_location="europe-west1")
    variables = terraform_vars(["emails", "trickle", "plain", "undeclared"], settings)
    queues = variables["queues"]
    assert queues["emails"]["rate_limit"] == 20 and isinstance(queues["emails"]["rate_limit"],
                                                                int)
    assert queues["trickle"]["rate_limit"] == 0.5
    assert "rate_limit" not in queues["plain"] and "rate_limit" not in queues["undeclared"]

    specs = evaluate_module(tmp_path, variables, outputs=["queues", "rate_queues"])
    assert sorted(specs["rate_queues"]) == ["emails", "trickle"]
    for name in ("emails", "trickle"):
        # the queue the application sends the jobs to: Settings.rate_queue
        assert specs["queues"][name]["rate_queue"] == settings.rate_queue(name)
        assert specs["rate_queues"][name]["rate_limit"] == queues[name]["rate_limit"]
    assert specs["queues"]["plain"]["rate_queue"] is None
    assert specs["queues"]["plain"]["rate_limit"] is None


def test_each_rate_limited_queue_gets_its_cloud_tasks_queue() -> None:
    found = module_resources()["google_cloud_tasks_queue"]
    rate, delayed = found["rate"], found["delayed"]
    assert rate["for_each"] == "${local.rate_queues}"
    assert rate["name"] == "${each.value.rate_queue}"
    assert rate["location"] == delayed["location"] == "${local.cloud_tasks_location}"
    (limits,) = rate["rate_limits"]
    assert limits["max_dispatches_per_second"] == "${each.value.rate_limit}"
    # Retries and logging as the delayed-jobs queue's (cloud_tasks_queue_spec of bootstrap).
    assert rate["retry_config"] == delayed["retry_config"]
    assert rate["stackdriver_logging_config"] == delayed["stackdriver_logging_config"]
    (lifecycle,) = rate["lifecycle"]
    (check,) = lifecycle["precondition"]
    assert check["condition"] == "${length(local.queue_problems[each.key]) == 0}"


def test_a_rate_limit_cloud_tasks_refuses_is_refused(tmp_path: Path) -> None:
    for rate in (0, 501):
        assert "A queue's rate_limit is above 0 and at most 500" in refusal(
            tmp_path, {"queues": {"emails": {"rate_limit": rate}}})

    problems = evaluate_module(tmp_path, {
        "queues": {"emails": {"rate_limit": 20}, "plain": {}}, "enable_delayed_jobs": False,
    }, outputs=["queue_problems"])["queue_problems"]
    assert problems["plain"] == []
    assert problems["emails"] == [
        "rate_limit needs Cloud Tasks, whose queue jobs-emails-rate publishes the jobs with the "
        "scheduler account's token: set enable_delayed_jobs = true, or drop rate_limit."]

    # A Pub/Sub prefix may hold "." and "_"; a Cloud Tasks queue name may not.
    problems = evaluate_module(tmp_path, {"prefix": "jobs.", "queues": {
        "emails": {"rate_limit": 20}, "plain": {}}}, outputs=["queue_problems"])
    assert problems["queue_problems"]["plain"] == []
    assert problems["queue_problems"]["emails"] == [
        'its Cloud Tasks queue name "jobs.emails-rate" is not 1 to 100 letters, digits and '
        "hyphens: choose a prefix and queue name of those only."]


def grant(name: str) -> dict[str, Any]:
    return dict(resources(MODULE / "iam.tf")["google_cloud_tasks_queue_iam_member"][name])


def test_whoever_enqueues_may_create_tasks_in_the_rate_queues() -> None:
    """The application and (unless told otherwise) the worker create the tasks: enqueuer on
    each -rate queue, beside the delayed-jobs queue's; actAs and the scheduler's publisher
    role are the delayed jobs' grants, given whenever a rate-limited queue can exist."""
    iam_locals = {k: v for block in load_hcl(MODULE / "iam.tf")["locals"]
                  for k, v in block.items()}
    assert "keys(local.rate_queues), keys(local.schedulers)" in iam_locals["rate_enqueuers"]
    body = grant("schedulers_enqueue_rate")
    assert body["for_each"] == "${local.rate_enqueuers}"
    assert body["role"] == '"roles/cloudtasks.enqueuer"'
    assert body["name"] == "${google_cloud_tasks_queue.rate[each.value.queue].name}"
    assert body["member"] == "${each.value.member}"


def test_who_may_cancel_jobs(tmp_path: Path) -> None:
    """Cancelling deletes tasks: roles/cloudtasks.taskDeleter on the delayed-jobs queue and
    every -rate queue, for the application by default, the worker when asked, and the members
    named; nobody without delayed jobs (there is then no task to delete)."""
    variables = module_variables()
    assert variables["app_cancels_jobs"]["default"] is True
    assert variables["worker_cancels_jobs"]["default"] is False
    assert variables["job_cancellers"]["default"] == []

    def roles(**tfvars: Any) -> list[str]:
        out = evaluate_module(tmp_path, {"queues": {"default": {}}, **tfvars},
                              outputs=["job_canceller_roles"])
        found: list[str] = out["job_canceller_roles"]
        return found

    assert roles() == ["app"]
    assert roles(worker_cancels_jobs=True) == ["app", "worker"]
    assert roles(app_cancels_jobs=False) == []
    assert roles(enable_delayed_jobs=False, worker_cancels_jobs=True) == []
    assert "A member is" in refusal(tmp_path, {"queues": {"default": {}},
                                               "job_cancellers": ["ops@example.com"]})

    iam_locals = {k: v for block in load_hcl(MODULE / "iam.tf")["locals"]
                  for k, v in block.items()}
    assert "local.job_canceller_roles" in iam_locals["cancellers"]
    assert "var.job_cancellers" in iam_locals["cancellers"]
    delayed, rate = grant("cancellers_delete_delayed"), grant("cancellers_delete_rate")
    assert delayed["for_each"] == "${var.enable_delayed_jobs ? local.cancellers : {}}"
    assert delayed["name"] == "${google_cloud_tasks_queue.delayed[0].name}"
    assert rate["for_each"] == "${local.rate_cancellers}"
    assert rate["name"] == "${google_cloud_tasks_queue.rate[each.value.queue].name}"
    assert delayed["role"] == rate["role"] == '"roles/cloudtasks.taskDeleter"'


def test_rate_queues_are_an_output() -> None:
    outputs = {unquote(k): v for block in load_hcl(MODULE / "outputs.tf")["output"]
               for k, v in block.items()}
    assert outputs["rate_queues"]["value"] == (
        "${{for queue, q in google_cloud_tasks_queue.rate : queue => q.id}}")
