"""The Terraform module is right at plan time and safe to change (issue 21, items 1 to 8).

Terraform itself evaluates the provider-free files (variables.tf, queues.tf, settings.tf)
where a value or a refusal is at stake; python-hcl2 checks how the resources use them. The
real provider cannot be downloaded here, so nothing below plans against it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.terraform.test_module import (
    EXAMPLES,
    MODULE,
    ROOT,
    evaluate_module,
    load_hcl,
    module_resources,
    module_variables,
    refusal,
    resources,
    unquote,
)

#: google provider versions whose schemas the module and the examples were planned against.
PLANNED_PROVIDERS = ("5.0.0", "6.1.0", "6.50.0", "7.46.1", "8.7.0")


def data_sources(path: Path) -> dict[str, dict[str, dict[str, Any]]]:
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for block in load_hcl(path).get("data", []):
        for dtype, named in block.items():
            for name, body in named.items():
                found.setdefault(unquote(dtype), {})[unquote(name)] = body
    return found


def module_locals() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for path in sorted(MODULE.glob("*.tf")):
        for block in load_hcl(path).get("locals", []):
            found.update({k: v for k, v in block.items() if not k.startswith("__")})
    return found


def precondition(body: dict[str, Any]) -> dict[str, Any]:
    """The one precondition of a resource body."""
    (lifecycle,) = body["lifecycle"]
    (check,) = lifecycle["precondition"]
    return dict(check)


# 1. Changing the set of APIs replaced the dead-lettering grants.

def test_service_agent_is_known_at_plan_time() -> None:
    """The data source that names the service agents depends on no resource, so Terraform
    reads it while planning and the grants to the agents never change with the APIs (a data
    source behind google_project_service is read during apply whenever the APIs change, and
    every member built from it is replaced: "2 must be replaced" per queue)."""
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for path in sorted(MODULE.glob("*.tf")):
        for dtype, named in data_sources(path).items():
            found.setdefault(dtype, {}).update(named)
    assert found, "the module reads the project number"
    for dtype, named in found.items():
        for name, body in named.items():
            assert "depends_on" not in body, f"data.{dtype}.{name} waits for resources"
            for key, expr in body.items():
                if key.startswith("__"):
                    continue
                refs = re.findall(r"\b(?:var|local|data|module|google_\w+)\.\w+", str(expr))
                assert all(ref.startswith("var.") for ref in refs), (dtype, name, key, expr)

    agent_grants = [body for named in module_resources().values() for body in named.values()
                    if body.get("member") == "${local.pubsub_service_agent}"]
    assert len(agent_grants) == 3  # dead letters: publish, ack; push: sign tokens
    number = module_locals()["project_number"]
    assert "google_project_service" not in number
    assert module_variables()["project_number"]["default"] is None


# 2. The worker reschedules retries through Cloud Tasks.

def test_worker_may_schedule_delayed_jobs_by_default(tmp_path: Path) -> None:
    """The worker creates Cloud Tasks tasks for retry_wait and Retry(delay=...), so by default
    it gets the application's two Cloud Tasks grants; false is a choice that the variable's
    description spells out, and without delayed jobs nobody gets them."""
    variables = module_variables()
    assert variables["worker_enqueues_delayed_jobs"]["default"] is True
    assert "PermissionDenied" in variables["worker_enqueues_delayed_jobs"]["description"]

    def schedulers(**tfvars: Any) -> list[str]:
        out = evaluate_module(tmp_path, {"queues": {"default": {}}, **tfvars},
                              outputs=["delayed_job_schedulers"])
        result: list[str] = out["delayed_job_schedulers"]
        return result

    assert schedulers() == ["app", "worker"]
    assert schedulers(worker_enqueues_delayed_jobs=False) == ["app"]
    assert schedulers(enable_delayed_jobs=False) == []

    iam = resources(MODULE / "iam.tf")
    iam_locals = load_hcl(MODULE / "iam.tf")["locals"][0]
    assert "local.delayed_job_schedulers" in iam_locals["schedulers"]
    assert iam["google_cloud_tasks_queue_iam_member"]["schedulers_enqueue"]["for_each"] == (
        "${local.schedulers}")
    assert iam["google_service_account_iam_member"]["schedulers_act_as_scheduler"][
        "for_each"] == "${local.schedulers}"


# 3. A prefix that cannot start account ids failed with the provider's error.

def test_account_ids_are_checked_before_the_provider_sees_them(tmp_path: Path) -> None:
    out = evaluate_module(tmp_path, {"queues": {"default": {}}},
                          outputs=["service_account_ids", "service_account_id_problems"])
    assert out["service_account_ids"] == {
        "worker": "jobs-worker", "app": "jobs-app", "scheduler": "jobs-scheduler",
        "push": "jobs-push"}
    assert all(problems == [] for problems in out["service_account_id_problems"].values())

    # A valid Pub/Sub prefix that is no account id: each account says what to do.
    problems = evaluate_module(tmp_path, {"prefix": "Jobs.", "queues": {"default": {}}},
                               outputs=["service_account_id_problems"])
    for role, found in problems["service_account_id_problems"].items():
        assert f'"Jobs.{role}" is not a valid account id' in found[0], role
        assert "set service_account_prefix" in found[1]

    # 22 characters: only <prefix>scheduler is over 30.
    long_prefix = "a-prefix-of-22-chars--"
    assert len(long_prefix) == 22
    problems = evaluate_module(tmp_path, {"prefix": long_prefix, "queues": {"default": {}}},
                               outputs=["service_account_id_problems"])
    assert [role for role, found in problems["service_account_id_problems"].items()
            if found] == ["scheduler"]

    assert "3 to 21 lowercase letters" in refusal(
        tmp_path, {"queues": {"default": {}}, "service_account_prefix": "Pj_"})

    accounts = resources(MODULE / "service_accounts.tf")["google_service_account"]
    assert sorted(accounts) == ["app", "push", "scheduler", "worker"]
    for role, body in accounts.items():
        assert body["account_id"] == f"${{local.service_account_ids.{role}}}"
        check = precondition(body)
        assert check["condition"] == (
            f"${{length(local.service_account_id_problems.{role}) == 0}}")
        assert f"local.service_account_id_problems.{role}" in check["error_message"]


# 4. The GKE example granted the metrics adapter's role to a principal that is not it.

def test_gke_metrics_adapter_gets_its_workload_identity_principal() -> None:
    """The adapter's manifest (adapter_new_resource_model.yaml) binds no Google service
    account: its Kubernetes service account reads Cloud Monitoring as the Workload Identity
    Federation principal, which needs the project number."""
    grant = resources(EXAMPLES / "gke" / "main.tf")["google_project_iam_member"][
        "metrics_adapter_reads_monitoring"]
    assert unquote(grant["role"]) == "roles/monitoring.viewer"
    assert unquote(grant["member"]) == (
        "principal://iam.googleapis.com/projects/${module.pubsub_jobs.project_number}"
        "/locations/global/workloadIdentityPools/${var.project}.svc.id.goog"
        "/subject/ns/custom-metrics/sa/custom-metrics-stackdriver-adapter")
    manifest = (EXAMPLES / "gke" / "worker.yaml").read_text()
    assert "custom-metrics-stackdriver-adapter/deploy/production/adapter_new_resource_model.yaml" \
        in manifest


# 5. roles/pubsub.subscriber does not allow reading a subscription.

def test_worker_may_read_its_subscriptions() -> None:
    """The worker reads each subscription's policies at start-up (and /status shows them):
    it gets roles/pubsub.viewer on each worker subscription, nothing wider."""
    worker = (ROOT / "pubsub_jobs" / "worker" / "runner.py").read_text()
    check = (ROOT / "pubsub_jobs" / "adapters" / "subscriptions.py").read_text()
    assert "check_subscription(" in worker and "get_subscription(" in check
    grant = resources(MODULE / "iam.tf")["google_pubsub_subscription_iam_member"][
        "worker_reads_subscriptions"]
    assert grant["for_each"] == "${local.queues}"
    assert grant["subscription"] == "${google_pubsub_subscription.worker[each.key].name}"
    assert unquote(grant["role"]) == "roles/pubsub.viewer"
    assert grant["member"] == "${local.worker_member}"


# 6. Values Google refuses planned without complaint.

@pytest.mark.parametrize(("tfvars", "message"), [
    ({"queues": {"default": {"min_retry_backoff": 600, "max_retry_backoff": 1}}},
     "A queue's min_retry_backoff is at most its max_retry_backoff."),
    ({"queue_defaults": {"min_retry_backoff": 600, "max_retry_backoff": 1}},
     "queue_defaults' min_retry_backoff is at most its max_retry_backoff."),
    ({"cloud_tasks_max_dispatches_per_second": 501}, "at most 500"),
    ({"cloud_tasks_max_dispatches_per_second": 0}, "above 0"),
    ({"cloud_tasks_max_attempts": -2}, "a whole number of at least -1"),
    ({"cloud_tasks_max_attempts": 2.5}, "a whole number of at least -1"),
    ({"cloud_tasks_queue": "jobs_delayed"}, "letters, digits and hyphens"),
    ({"project_number": "my-project"}, "digits only"),
    ({"dead_letter_operators": ["ops@example.com"]}, '"user:EMAIL"'),
])
def test_variables_refuse_what_google_refuses(
    tmp_path: Path, tfvars: dict[str, Any], message: str
) -> None:
    text = refusal(tmp_path, {"queues": {"default": {}}, **tfvars})
    assert "Invalid value for variable" in text
    assert message in text


def test_backoffs_are_checked_once_combined(tmp_path: Path) -> None:
    """A queue's maximum under the default minimum (10 s) is refused by a precondition of
    the worker subscription, with the values in the message."""
    out = evaluate_module(tmp_path, {
        "queues": {"default": {"max_retry_backoff": 5}, "fast": {"min_retry_backoff": 0,
                                                                "max_retry_backoff": 1}},
    }, outputs=["queue_problems"])
    assert out["queue_problems"]["fast"] == []
    (problem,) = out["queue_problems"]["default"]
    assert problem.startswith("min_retry_backoff (10 s) is above max_retry_backoff (5 s)")

    worker = module_resources()["google_pubsub_subscription"]["worker"]
    check = precondition(worker)
    assert check["condition"] == "${length(local.queue_problems[each.key]) == 0}"
    assert "local.queue_problems[each.key]" in check["error_message"]


# 7. The Cloud Tasks service agent was misnamed.

def test_cloud_tasks_service_agent_is_named_right() -> None:
    right = "service-PROJECT_NUMBER@gcp-sa-cloudtasks.iam.gserviceaccount.com"
    deploying = (ROOT / "docs" / "deploying.md").read_text()
    assert right in deploying
    texts = {"README.md": (ROOT / "README.md").read_text(), "deploying.md": deploying}
    texts.update({str(p.relative_to(ROOT)): p.read_text() for p in MODULE.rglob("*.tf")})
    for name, text in texts.items():
        assert "@gcp-cloudtasks." not in text, name


# 8. Provider constraints narrower than what was planned; services that start before
# their grants.

def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def admits(constraint: str, version: str) -> bool:
    """Whether a Terraform version constraint (>=, >, <=, <, =, ~>) admits ``version``."""
    for part in constraint.split(","):
        m = re.fullmatch(r"\s*(>=|<=|~>|>|<|=)?\s*([0-9.]+)\s*", part)
        assert m, constraint
        op, want = m[1] or "=", _version(m[2])
        width = max(len(want), 3)
        have = _version(version) + (0,) * width
        have, low = have[:width], want + (0,) * (width - len(want))
        if op == "~>":  # the last given part may grow: ~> 6.0 is >= 6.0, < 7.0
            high = (*want[:-2], want[-2] + 1) if len(want) > 1 else (want[0] + 1,)
            ok = low <= have < high + (0,) * (width - len(high))
        else:
            ok = {">=": have >= low, ">": have > low, "<=": have <= low,
                  "<": have < low, "=": have == low}[op]
        if not ok:
            return False
    return True


def provider_constraint(root: Path) -> str:
    (terraform,) = load_hcl(root / "versions.tf")["terraform"]
    (providers,) = terraform["required_providers"]
    return unquote(providers["google"]["version"])


@pytest.mark.parametrize(("root", "oldest"), [
    (MODULE, "5.0.0"),
    (EXAMPLES / "gke", "5.0.0"),
    # google_cloud_run_v2_service has no deletion_protection in 5.0.
    (EXAMPLES / "cloud-run", "6.1.0"),
    (EXAMPLES / "cloud-run-push", "6.1.0"),
])
def test_provider_constraints_admit_what_was_planned(root: Path, oldest: str) -> None:
    assert admits("~> 6.0", "6.50.0") and not admits("~> 6.0", "7.0.0")  # the checker
    constraint = provider_constraint(root)
    for version in PLANNED_PROVIDERS:
        wanted = _version(version) >= _version(oldest)
        assert admits(constraint, version) == wanted, (root.name, constraint, version)
    assert not admits(constraint, "9.0.0"), "a major version nobody planned against"
    assert admits(provider_constraint(MODULE), oldest), "the examples' module allows it too"


def test_cloud_run_services_wait_for_their_grants() -> None:
    """A worker that starts before it may pull reports failed streams; an application that
    starts before it may publish fails its first enqueues."""
    services = resources(EXAMPLES / "cloud-run" / "main.tf")["google_cloud_run_v2_service"]
    assert sorted(services) == ["app", "worker"]
    for name, body in services.items():
        assert "${module.pubsub_jobs}" in body.get("depends_on", []), name

    # The push example: the application waits likewise; the push server cannot (the module's
    # invoker grant names it), but it receives nothing before its push subscriptions exist,
    # and those wait for the grants that pushing needs.
    push_services = resources(EXAMPLES / "cloud-run-push" / "main.tf")[
        "google_cloud_run_v2_service"]
    assert "${module.pubsub_jobs}" in push_services["app"]["depends_on"]
    worker = module_resources()["google_pubsub_subscription"]["worker"]
    assert worker["depends_on"] == [
        "${google_cloud_run_v2_service_iam_member.push_invokes}",
        "${google_service_account_iam_member.service_agent_signs_push_tokens}",
    ]
