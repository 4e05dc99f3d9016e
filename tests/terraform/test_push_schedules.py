"""Push queues and periodic jobs in the Terraform module (DESIGN.md).

As in tests/terraform/test_module.py: Terraform evaluates the provider-free files for values and
refusals, python-hcl2 checks how the resources use them.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from tests.terraform.test_module import (
    EXAMPLES,
    MODULE,
    Resolver,
    evaluate_module,
    load_hcl,
    module_resources,
    module_variables,
    refusal,
    resources,
    unquote,
)

PUSH_EMAIL = "jobs-push@test-project.iam.gserviceaccount.com"


def nightly(**changes: Any) -> dict[str, Any]:
    """A schedule as `pubsub-jobs terraform-vars` writes it (DESIGN.md, "Periodic jobs")."""
    data = json.dumps({"args": [], "kwargs": {"days": 30}}).encode()
    schedule = {
        "queue": "default",
        "cron": "0 2 * * *",
        "time_zone": "Europe/Berlin",
        "data": base64.b64encode(data).decode(),
        "attributes": {"job_name": "myapp.jobs.cleanup", "queue_name": "default",
                       "wire_version": "1", "schedule": "nightly"},
    }
    schedule.update(changes)
    return schedule


# Push delivery

def test_push_queue_targets_the_push_server(tmp_path: Path) -> None:
    """push_endpoint is the server's base URL: Pub/Sub POSTs to <base>/push/QUEUE, waits 600 s,
    and the token's audience defaults to the base URL, the one PUBSUB_JOBS_PUSH_AUDIENCE."""
    out = evaluate_module(tmp_path, {"queues": {
        "default": {"push_endpoint": "https://jobs-push-123.us-central1.run.app/"},
        "mailers": {"push_endpoint": "https://jobs-push-123.us-central1.run.app",
                    "ack_deadline_seconds": 30},
        "reports": {"ack_deadline_seconds": 120},
    }}, outputs=["queues", "push_audience"])
    queues = out["queues"]
    base = "https://jobs-push-123.us-central1.run.app"
    assert queues["default"]["push_endpoint"] == f"{base}/push/default"
    assert queues["mailers"]["push_endpoint"] == f"{base}/push/mailers"
    assert queues["default"]["ack_deadline_seconds"] == 600
    assert queues["mailers"]["ack_deadline_seconds"] == 600
    assert queues["default"]["push_audience"] == base
    assert out["push_audience"] == base
    # A pull queue is what it was.
    assert queues["reports"]["push_endpoint"] is None
    assert queues["reports"]["push_audience"] is None
    assert queues["reports"]["ack_deadline_seconds"] == 120

    custom = evaluate_module(tmp_path, {
        "queues": {"default": {"push_endpoint": "https://push.example.com/jobs"}},
        "push_audience": "pubsub-jobs",
    }, outputs=["queues", "push_audience"])
    assert custom["queues"]["default"]["push_endpoint"] == (
        "https://push.example.com/jobs/push/default")
    assert custom["queues"]["default"]["push_audience"] == "pubsub-jobs"
    assert custom["push_audience"] == "pubsub-jobs"

    pull_only = evaluate_module(tmp_path, {"queues": {"default": {}}, "push_audience": "x"},
                                outputs=["push_audience"])
    assert pull_only.get("push_audience") is None  # Terraform leaves null outputs out


def test_push_subscription_keeps_the_pull_policies(tmp_path: Path) -> None:
    """One resource for both kinds, so a queue keeps its name, dead-letter and retry policy
    (and its address in the state) when it changes between pull and push."""
    options = {"max_delivery_attempts": 7, "min_retry_backoff": 5, "max_retry_backoff": 300}
    specs = evaluate_module(tmp_path, {"queues": {
        "pushed": {**options, "push_endpoint": "https://push.example.com"},
        "pulled": options,
    }})["queues"]
    found = module_resources()
    resolver = Resolver("test-project", specs, found, known={"${local.push_email}": PUSH_EMAIL})
    body = found["google_pubsub_subscription"]["worker"]
    pushed, pulled = resolver.body(body, "pushed"), resolver.body(body, "pulled")

    assert pushed.pop("push_config") == {
        "push_endpoint": "https://push.example.com/push/pushed",
        "oidc_token": {"service_account_email": PUSH_EMAIL,
                       "audience": "https://push.example.com"},
    }
    assert "push_config" not in pulled
    assert pushed.pop("ack_deadline_seconds") == 600
    assert pulled.pop("ack_deadline_seconds") == 60
    assert pushed["name"] == "jobs-pushed-worker"
    for key in ("dead_letter_policy", "retry_policy", "expiration_policy",
                "message_retention_duration"):
        assert json.dumps(pushed[key]).replace("pushed", "Q") == (
            json.dumps(pulled[key]).replace("pulled", "Q")), key
    assert pushed["dead_letter_policy"] == {
        "dead_letter_topic": "projects/test-project/topics/jobs-pushed-dead-letter",
        "max_delivery_attempts": 7}
    assert pushed["retry_policy"] == {"minimum_backoff": "5s", "maximum_backoff": "300s"}
    assert len(found["google_pubsub_subscription"]) == 2  # worker and dead_letter, no other


def test_push_grants() -> None:
    """Pub/Sub's service agent may sign tokens of the push account (only that account), the
    push account may invoke the Cloud Run service (only that service), and the worker, which
    pulls nothing from a push queue, gets no subscriber role on it."""
    found = module_resources()
    signs = found["google_service_account_iam_member"]["service_agent_signs_push_tokens"]
    assert signs["count"] == "${length(local.push_bases) > 0 ? 1 : 0}"
    assert unquote(signs["service_account_id"]) == (
        "projects/${var.project}/serviceAccounts/${local.push_email}")
    assert unquote(signs["role"]) == "roles/iam.serviceAccountTokenCreator"
    assert signs["member"] == "${local.pubsub_service_agent}"

    invokes = found["google_cloud_run_v2_service_iam_member"]["push_invokes"]
    assert invokes["count"] == (
        "${length(local.push_bases) > 0 && var.push_cloud_run_service != null ? 1 : 0}")
    assert invokes["name"] == "${var.push_cloud_run_service}"
    assert invokes["location"] == "${local.push_cloud_run_location}"
    assert unquote(invokes["role"]) == "roles/run.invoker"
    assert invokes["member"] == "${local.push_member}"

    account = found["google_service_account"]["push"]
    assert account["count"] == (
        "${length(local.push_bases) > 0 && var.push_service_account == null ? 1 : 0}")
    pulls = found["google_pubsub_subscription_iam_member"]["worker_pulls"]
    assert pulls["for_each"] == (
        "${{for queue, spec in local.queues : queue => spec if spec.push_endpoint == null}}")

    outputs = {unquote(name): body for block in load_hcl(MODULE / "outputs.tf")["output"]
               for name, body in block.items()}
    assert outputs["push_audience"]["value"] == "${local.push_audience}"
    assert "local.push_email" in outputs["push_service_account"]["value"]
    assert "PUBSUB_JOBS_PUSH_SERVICE_ACCOUNT" in outputs["push_service_account"]["description"]
    assert "PUBSUB_JOBS_PUSH_AUDIENCE" in outputs["push_audience"]["description"]


@pytest.mark.parametrize(("tfvars", "message"), [
    ({"queues": {"default": {"push_endpoint": "http://push.example.com"}}}, "https://HOST"),
    ({"queues": {"default": {"push_endpoint": "https://push.example.com/?a=1"}}},
     "without query or fragment"),
    ({"queues": {"default": {"push_endpoint": "push.example.com"}}}, "https://HOST"),
    ({"push_cloud_run_service": "Jobs_Push"}, "A Cloud Run service name"),
    ({"push_service_account": "jobs-push"}, "a service account's email"),
    ({"push_audience": ""}, "non-empty string"),
])
def test_push_variables_refuse_bad_values(
    tmp_path: Path, tfvars: dict[str, Any], message: str
) -> None:
    text = refusal(tmp_path, {"queues": {"default": {}}, **tfvars})
    assert "Invalid value for variable" in text
    assert message in text


def test_cloud_run_push_example_runs_the_push_server() -> None:
    main = EXAMPLES / "cloud-run-push" / "main.tf"
    push = resources(main)["google_cloud_run_v2_service"]["push"]
    (template,) = push["template"]
    assert template["service_account"] == "${module.pubsub_jobs.worker_service_account}"
    assert unquote(template["timeout"]) == "600s"  # the push subscriptions' ack deadline
    (container,) = template["containers"]
    assert [unquote(word) for word in container["command"]] == ["pubsub-jobs"]
    assert container["args"] == (
        '${concat(["push-server"], var.jobs_modules, '
        'flatten([for queue in keys(var.queues) : ["--queue", queue]]), '
        '["--host", "0.0.0.0", "--port", "8080"])}')
    ((env,),) = [[block['"env"'] for block in container["dynamic"]]]
    assert env["for_each"] == (
        "${merge(module.pubsub_jobs.environment, "
        "{PUBSUB_JOBS_PUSH_AUDIENCE = module.pubsub_jobs.push_audience, "
        "PUBSUB_JOBS_PUSH_SERVICE_ACCOUNT = module.pubsub_jobs.push_service_account})}")

    root = load_hcl(main)
    (module,) = [block['"pubsub_jobs"'] for block in root["module"]]
    assert module["push_cloud_run_service"] == "${google_cloud_run_v2_service.push.name}"
    (local_block,) = root["locals"]
    assert local_block["push_service"] == '"${var.prefix}push"'
    assert push["name"] == "${local.push_service}"
    # Cloud Run's deterministic URL, known at plan time (its `uri` would be a cycle).
    assert local_block["push_url"] == (
        '"https://${local.push_service}-${module.pubsub_jobs.project_number}'
        '.${var.region}.run.app"')


# Periodic jobs

def test_schedule_names_follow_cloud_schedulers_rules(tmp_path: Path) -> None:
    out = evaluate_module(tmp_path, {
        "prefix": "Jobs.",
        "queues": {"default": {}},
        "schedules": {"nightly": nightly(),
                      "myapp.jobs.report@daily": nightly(attributes={
                          "job_name": "myapp.jobs.report", "queue_name": "default",
                          "wire_version": "1", "schedule": "myapp.jobs.report@daily"})},
    }, outputs=["schedules", "schedule_problems", "apis"])
    assert out["schedules"]["nightly"]["job_name"] == "Jobs-nightly"
    assert out["schedules"]["myapp.jobs.report@daily"]["job_name"] == (
        "Jobs-myapp-jobs-report-daily")
    assert out["schedules"]["nightly"]["data"] == nightly()["data"]
    assert out["schedules"]["nightly"]["attributes"] == nightly()["attributes"]
    assert out["schedule_problems"] == {"nightly": [], "myapp.jobs.report@daily": []}
    assert "cloudscheduler.googleapis.com" in out["apis"]

    assert "cloudscheduler.googleapis.com" not in evaluate_module(
        tmp_path, {"queues": {"default": {}}}, outputs=["apis"])["apis"]


def test_schedules_check_what_takes_two_variables(tmp_path: Path) -> None:
    out = evaluate_module(tmp_path, {
        "prefix": "p" * 101,
        "queues": {"default": {}},
        "schedules": {"nightly": nightly(queue="mailers",
                                         attributes={**nightly()["attributes"],
                                                     "queue_name": "mailers"}),
                      "n" * 400: nightly()},
    }, outputs=["schedule_problems"])
    (unknown,) = out["schedule_problems"]["nightly"]
    assert unknown == 'it publishes to queue "mailers", which is not in queues (default).'
    (too_long,) = out["schedule_problems"]["n" * 400]
    assert too_long.endswith("is over 500 characters.")

    job = module_resources()["google_cloud_scheduler_job"]["schedule"]
    (lifecycle,) = job["lifecycle"]
    (check,) = lifecycle["precondition"]
    assert check["condition"] == "${length(local.schedule_problems[each.key]) == 0}"
    assert "local.schedule_problems[each.key]" in check["error_message"]


def test_schedule_publishes_the_jobs_message_to_its_queue() -> None:
    found = module_resources()
    job = found["google_cloud_scheduler_job"]["schedule"]
    assert job["for_each"] == "${local.schedules}"
    assert job["name"] == "${each.value.job_name}"
    assert job["region"] == "${local.scheduler_region}"
    assert job["schedule"] == "${each.value.cron}"
    assert job["time_zone"] == "${each.value.time_zone}"
    (target,) = job["pubsub_target"]
    # The queue's topic, by its id: projects/P/topics/<prefix><queue>.
    assert target["topic_name"] == "${google_pubsub_topic.queue[each.value.queue].id}"
    assert found["google_pubsub_topic"]["queue"]["for_each"] == "${local.queues}"
    assert target["data"] == "${each.value.data}"
    assert target["attributes"] == "${each.value.attributes}"
    (retry,) = job["retry_config"]
    assert retry["retry_count"] == "${var.schedule_retry_count}"
    assert 1 <= module_variables()["schedule_retry_count"]["default"] <= 5
    assert job["depends_on"] == ["${google_project_service.enabled}"]


def test_schedules_variable_documents_the_shape_terraform_vars_writes(tmp_path: Path) -> None:
    variable = module_variables()["schedules"]
    assert variable["type"] == (
        "${map(object({queue = string, cron = string, time_zone = string, data = string, "
        "attributes = map(string)}))}")
    for word in ("queue", "cron", "time_zone", "data", "attributes", "base64",
                 "terraform-vars", "job_name", "queue_name", "wire_version", "schedule"):
        assert word in variable["description"], word
    # The shape, with the job's message as the worker decodes it, passes every validation.
    out = evaluate_module(tmp_path, {"queues": {"default": {}},
                                     "schedules": {"nightly": nightly()}},
                          outputs=["schedules"])
    data = base64.b64decode(out["schedules"]["nightly"]["data"])
    assert json.loads(data) == {"args": [], "kwargs": {"days": 30}}


@pytest.mark.parametrize(("schedule", "message"), [
    (nightly(cron="every 5 minutes"), "five-field unix-cron"),
    (nightly(cron="0 2 * * * *"), "five-field unix-cron"),
    (nightly(time_zone="Europe Berlin"), "tz database name"),
    (nightly(data='{"args": [], "kwargs": {}}'), "standard base64"),
    (nightly(data=""), "standard base64"),
    (nightly(attributes={"job_name": "myapp.jobs.cleanup", "queue_name": "default"}),
     "at least job_name, queue_name, wire_version and schedule"),
    (nightly(attributes={**nightly()["attributes"], "queue_name": "mailers"}),
     "queue_name attribute is its queue"),
    (nightly(attributes={**nightly()["attributes"], "googfoo": "x"}), 'not starting with "goog"'),
])
def test_schedules_refuse_bad_values(
    tmp_path: Path, schedule: dict[str, Any], message: str
) -> None:
    text = refusal(tmp_path, {"queues": {"default": {}}, "schedules": {"nightly": schedule}})
    assert "Invalid value for variable" in text
    assert message in text


@pytest.mark.parametrize(("tfvars", "message"), [
    ({"schedules": {"a.b": nightly(), "a-b": nightly()}}, "the same Cloud Scheduler job name"),
    ({"schedules": {"": nightly()}}, "1 to 400 characters"),
    ({"schedule_retry_count": 6}, "from 0 to 5"),
])
def test_schedule_names_and_retries_refuse_bad_values(
    tmp_path: Path, tfvars: dict[str, Any], message: str
) -> None:
    text = refusal(tmp_path, {"queues": {"default": {}}, **tfvars})
    assert "Invalid value for variable" in text
    assert message in text


def test_the_workers_heartbeat_topic_and_the_workers_grant_to_publish_there() -> None:
    """The dashboard reads worker heartbeats from `<prefix>workers`, the name bootstrap uses."""
    from pubsub_jobs.settings import Settings

    found = module_resources()
    topic = found["google_pubsub_topic"]["workers"]
    assert unquote(topic["name"]) == "${var.prefix}workers"
    assert Settings(prefix="jobs-", project_id="p").workers_topic_path() == (
        "projects/p/topics/jobs-workers")
    grant = found["google_pubsub_topic_iam_member"]["worker_publishes_heartbeats"]
    assert grant["topic"] == "${google_pubsub_topic.workers.name}"
    assert unquote(grant["role"]) == "roles/pubsub.publisher"
    assert grant["member"] == "${local.worker_member}"
