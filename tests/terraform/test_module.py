"""The Terraform module creates what ``pubsub-jobs bootstrap`` creates, from the same settings.

Terraform cannot download the google provider here, so ``terraform validate`` cannot run.
Instead: ``queues.tf`` and ``settings.tf`` compute every name, policy and plan-time check
from variables alone, and Terraform itself evaluates them (with ``variables.tf``, which
type-checks and validates the variables) in a scratch directory that needs no provider;
python-hcl2 reads the resources of ``pubsub.tf``, whose attributes are values of those locals
or literals. The result is compared with what bootstrap created on the emulator.
tests/terraform/test_safety.py and tests/terraform/test_push_schedules.py use the same helpers.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import hcl2
import pytest
from google.api_core.exceptions import NotFound

from pubsub_jobs import cli
from pubsub_jobs import queues as queues_module
from pubsub_jobs.adapters.clients import publisher_client, subscriber_client
from pubsub_jobs.admin.terraform_vars import DEFAULT_TFVARS_PATH, queue_variables, terraform_vars
from pubsub_jobs.admin.topology import DEAD_LETTER_ACK_DEADLINE, BootstrapReport
from pubsub_jobs.queues import queue as declare_queue
from pubsub_jobs.settings import QueueOptions, Settings, configure, reset

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "terraform"
EXAMPLES = MODULE / "examples"

#: Files of the module that Terraform can evaluate without a provider.
PROVIDER_FREE = ("variables.tf", "queues.tf", "settings.tf")

#: Attributes of the subscriptions that bootstrap does not set (placement, labels, checks).
NOT_COMPARED = {"for_each", "project", "labels", "depends_on", "lifecycle"}

TERRAFORM = shutil.which("terraform")


def terraform(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run terraform without its update check or colours; fails the test when it is missing."""
    if TERRAFORM is None:
        pytest.fail("terraform is not installed: CI installs it from the HashiCorp release zip")
    env = {**os.environ, "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1"}
    return subprocess.run(
        [TERRAFORM, *args, "-no-color"], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=60, check=False,
    )


def load_hcl(path: Path) -> dict[str, Any]:
    with path.open() as f:
        data: dict[str, Any] = hcl2.load(f)
    return data


def unquote(label: str) -> str:
    return label[1:-1] if label.startswith('"') and label.endswith('"') else label


def resources(path: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """``{type: {name: body}}`` of the resource blocks of a file."""
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for block in load_hcl(path).get("resource", []):
        for rtype, named in block.items():
            for name, body in named.items():
                found.setdefault(unquote(rtype), {})[unquote(name)] = body
    return found


def module_resources() -> dict[str, dict[str, dict[str, Any]]]:
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for path in sorted(MODULE.glob("*.tf")):
        for rtype, named in resources(path).items():
            found.setdefault(rtype, {}).update(named)
    return found


def _provider_free_root(
    workdir: Path, tfvars: dict[str, Any] | Path, outputs: Sequence[str]
) -> list[str]:
    """A scratch root of the provider-free files, with ``tfvars`` and an output per local;
    returns the arguments that give it the required variables."""
    workdir.mkdir(parents=True, exist_ok=True)
    for name in PROVIDER_FREE:
        shutil.copy(MODULE / name, workdir / name)
    (workdir / "evaluate.tf").write_text("".join(
        f'output "{name}" {{\n  value = local.{name}\n}}\n' for name in outputs
    ))
    for old in workdir.glob("*.auto.tfvars.json"):
        old.unlink()
    if isinstance(tfvars, Path):
        shutil.copy(tfvars, workdir / tfvars.name)
    else:
        (workdir / "test.auto.tfvars.json").write_text(json.dumps(tfvars))
    proc = terraform("init", "-input=false", cwd=workdir)
    assert proc.returncode == 0, f"terraform init: {proc.stdout}\n{proc.stderr}"
    return ["-input=false", "-var", "project=test-project", "-var", "region=us-central1"]


def evaluate_module(
    workdir: Path, tfvars: dict[str, Any] | Path,
    outputs: Sequence[str] = ("queues", "queues_setting"),
) -> dict[str, Any]:
    """Terraform's own values of the module's provider-free ``local.<output>`` for ``tfvars``
    (by default ``local.queues`` and ``local.queues_setting``)."""
    args = _provider_free_root(workdir, tfvars, outputs)
    proc = terraform("apply", "-auto-approve", *args, cwd=workdir)
    assert proc.returncode == 0, f"terraform apply: {proc.stdout}\n{proc.stderr}"
    proc = terraform("output", "-json", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    return {name: out["value"] for name, out in json.loads(proc.stdout).items()}


def refusal(workdir: Path, tfvars: dict[str, Any]) -> str:
    """What Terraform says when it refuses ``tfvars`` at plan time, on one line."""
    args = _provider_free_root(workdir, tfvars, ["queues"])
    proc = terraform("plan", *args, cwd=workdir)
    assert proc.returncode != 0, f"terraform accepted {tfvars}:\n{proc.stdout}"
    return " ".join(proc.stderr.split())


class Resolver:
    """Evaluates the few expression forms ``pubsub.tf`` uses, for one queue; ``known`` gives
    the values of other expressions (``{"${local.push_email}": ...}``)."""

    def __init__(self, project: str, specs: dict[str, Any],
                 all_resources: dict[str, dict[str, dict[str, Any]]],
                 known: dict[str, Any] | None = None) -> None:
        self.project = project
        self.specs = specs
        self.resources = all_resources
        self.known = known or {}

    def value(self, expr: Any, queue: str) -> Any:
        if isinstance(expr, bool | int | float):
            return expr
        text = str(expr)
        if text in self.known:
            return self.known[text]
        if re.fullmatch(r'"[^"$]*"', text):
            return json.loads(text)
        if m := re.fullmatch(r"\$\{each\.value\.(\w+)\}", text):
            return self.specs[queue][m[1]]
        if m := re.fullmatch(r"\$\{\w+\.value\.(\w+)\}", text):  # a dynamic block's item
            return self.specs[queue][m[1]]
        if text == "${var.project}":
            return self.project
        if m := re.fullmatch(r"\$\{google_pubsub_topic\.(\w+)\[each\.key\]\.id\}", text):
            topic = self.resources["google_pubsub_topic"][m[1]]
            assert topic["for_each"] == "${local.queues}"
            return f"projects/{self.project}/topics/{self.value(topic['name'], queue)}"
        raise AssertionError(f"expression the test cannot evaluate (keep it simple): {text}")

    def body(self, body: dict[str, Any], queue: str) -> dict[str, Any]:
        """Attributes and nested blocks of a resource, evaluated; a dynamic block whose
        for_each is ``each.value.X == null ? [] : [each.value]`` exists when X is set."""
        out: dict[str, Any] = {}
        for key, expr in body.items():
            if key.startswith("__") or key in NOT_COMPARED:
                continue
            if key == "dynamic":
                for block in expr:
                    for label, dynamic in block.items():
                        if label.startswith("__"):
                            continue
                        m = re.fullmatch(r"\$\{each\.value\.(\w+) == null \? \[\] : "
                                         r"\[each\.value\]\}", dynamic["for_each"])
                        assert m, f"dynamic block the test cannot evaluate: {dynamic['for_each']}"
                        if self.specs[queue][m[1]] is not None:
                            (content,) = dynamic["content"]
                            out[unquote(label)] = self.body(content, queue)
                continue
            if isinstance(expr, list) and expr and isinstance(expr[0], dict):
                (block,) = expr
                out[key] = self.body(block, queue)
            else:
                out[key] = self.value(expr, queue)
        return out


def seconds(text: str) -> timedelta:
    assert text.endswith("s"), text
    return timedelta(seconds=float(text[:-1]))


def actual_subscription(sub: Any) -> dict[str, Any]:
    """What the emulator holds, in the module's vocabulary."""
    out: dict[str, Any] = {
        "name": sub.name.rsplit("/", 1)[1],
        "topic": sub.topic,
        "ack_deadline_seconds": sub.ack_deadline_seconds,
        "message_retention_duration": sub.message_retention_duration,
        "expiration_policy": {"ttl": sub.expiration_policy.ttl or None},
    }
    if sub.dead_letter_policy.dead_letter_topic:  # the worker subscription
        out["enable_message_ordering"] = sub.enable_message_ordering
        out["enable_exactly_once_delivery"] = sub.enable_exactly_once_delivery
    if sub.dead_letter_policy.dead_letter_topic:
        out["dead_letter_policy"] = {
            "dead_letter_topic": sub.dead_letter_policy.dead_letter_topic,
            "max_delivery_attempts": sub.dead_letter_policy.max_delivery_attempts,
        }
    if sub.retry_policy.minimum_backoff or sub.retry_policy.maximum_backoff:
        out["retry_policy"] = {
            "minimum_backoff": sub.retry_policy.minimum_backoff,
            "maximum_backoff": sub.retry_policy.maximum_backoff,
        }
    return out


def expected_subscription(spec: dict[str, Any]) -> dict[str, Any]:
    """A subscription of the module, durations as timedelta, ttl "" (never) as None."""
    out = dict(spec)
    out["message_retention_duration"] = seconds(spec["message_retention_duration"])
    out["expiration_policy"] = {"ttl": spec["expiration_policy"]["ttl"] or None}
    if "retry_policy" in spec:
        out["retry_policy"] = {k: seconds(v) for k, v in spec["retry_policy"].items()}
    return out


QUEUE_SETTINGS = {
    "mailers": QueueOptions(
        max_delivery_attempts=10,
        min_retry_backoff=timedelta(seconds=0.5),
        max_retry_backoff=timedelta(seconds=120),
        ack_deadline_seconds=30,
        message_retention=timedelta(hours=1),
        dead_letter_retention=timedelta(days=2),
    ),
    "fast": QueueOptions(min_retry_backoff=timedelta(0), max_retry_backoff=timedelta(seconds=1)),
}


@pytest.fixture
def queue_settings(pubsub_jobs_settings: Settings) -> Settings:
    """The test's settings (emulator, own prefix) with production defaults and two queues
    of their own, installed so the command line reads them (pubsub_jobs_settings resets)."""
    return configure(
        **pubsub_jobs_settings.model_dump(exclude={"queue_defaults", "queues"}),
        queue_defaults=QueueOptions(),
        queues=QUEUE_SETTINGS,
    )


@pytest.fixture
def declared_queues() -> Iterator[None]:
    """Two queues declared in code, as an application's module declares them."""
    declare_queue("sequenced", ordered=True, max_delivery_attempts=7)
    declare_queue("once", exactly_once=True)
    yield
    queues_module.declared_queues.remove("sequenced")
    queues_module.declared_queues.remove("once")


@pytest.mark.emulator
@pytest.mark.usefixtures("declared_queues")
def test_module_creates_what_bootstrap_creates(
    queue_settings: Settings,
    bootstrap_queues: Callable[..., BootstrapReport],
    tmp_path: Path,
) -> None:
    queues = ["default", "mailers", "fast", "sequenced", "once"]
    bootstrap_queues(*queues, settings=queue_settings)

    tfvars = tmp_path / DEFAULT_TFVARS_PATH
    assert cli.main(["terraform-vars", *[f"--queue={q}" for q in queues],
                     "--output", str(tfvars)]) == 0
    evaluated = evaluate_module(tmp_path / "module", tfvars)
    specs = evaluated["queues"]
    assert sorted(specs) == sorted(queues)

    project = queue_settings.require_project()
    found = module_resources()
    resolver = Resolver(project, specs, found)
    publisher = publisher_client(queue_settings)
    subscriber = subscriber_client(queue_settings)
    try:
        for queue in queues:
            for name in ("queue", "dead_letter"):
                body = found["google_pubsub_topic"][name]
                assert body["for_each"] == "${local.queues}"
                topic = f"projects/{project}/topics/{resolver.value(body['name'], queue)}"
                try:
                    publisher.get_topic(topic=topic)
                except NotFound:
                    pytest.fail(f"the module names topic {topic}; bootstrap did not create it")
            for name in ("worker", "dead_letter"):
                body = found["google_pubsub_subscription"][name]
                assert body["for_each"] == "${local.queues}"
                assert resolver.value(body["project"], queue) == project
                spec = resolver.body(body, queue)
                path = f"projects/{project}/subscriptions/{spec['name']}"
                try:
                    sub = subscriber.get_subscription(subscription=path)
                except NotFound:
                    pytest.fail(f"the module names subscription {path}; bootstrap did not "
                                "create it")
                assert actual_subscription(sub) == expected_subscription(spec), (queue, name)
    finally:
        subscriber.close()
        publisher.stop()

    # The declared queues' features reach the module's worker subscriptions.
    assert specs["sequenced"]["enable_message_ordering"] is True
    assert specs["sequenced"]["max_delivery_attempts"] == 7
    assert specs["once"]["enable_exactly_once_delivery"] is True
    assert specs["mailers"]["enable_message_ordering"] is False

    # Bootstrap's own names, for the record: the contract of DESIGN.md.
    assert specs["mailers"]["worker_subscription"] == queue_settings.subscription("mailers")
    assert specs["mailers"]["dead_letter_topic"] == queue_settings.dead_letter_topic("mailers")

    # A queue the file leaves out takes the module's defaults: QueueOptions' defaults.
    defaults = evaluate_module(tmp_path / "defaults", {
        "prefix": queue_settings.prefix, "queues": {"default": {}},
    })
    assert defaults["queues"]["default"] == specs["default"]


def test_module_defaults_are_queue_options_defaults() -> None:
    body = load_hcl(MODULE / "queues.tf")["locals"][0]
    assert body["queue_option_defaults"] == queue_variables(QueueOptions())
    assert body["dead_letter_ack_deadline_seconds"] == DEAD_LETTER_ACK_DEADLINE

    variables = module_variables()
    assert unquote(variables["prefix"]["default"]) == Settings.model_fields["prefix"].default
    assert (unquote(variables["cloud_tasks_queue"]["default"])
            == Settings.model_fields["cloud_tasks_queue"].default)


def module_variables() -> dict[str, dict[str, Any]]:
    return {unquote(name): spec for block in load_hcl(MODULE / "variables.tf")["variable"]
            for name, spec in block.items()}


def test_cloud_tasks_queue_is_the_one_bootstrap_creates() -> None:
    from pubsub_jobs.admin.topology import cloud_tasks_queue_spec

    settings = Settings(project_id="p", cloud_tasks_location="europe-west1")
    wanted = cloud_tasks_queue_spec(settings)
    variables = module_variables()
    body = module_resources()["google_cloud_tasks_queue"]["delayed"]
    assert body["name"] == "${var.cloud_tasks_queue}"
    assert body["location"] == "${local.cloud_tasks_location}"
    name = unquote(variables["cloud_tasks_queue"]["default"])
    assert wanted.name == f"projects/p/locations/europe-west1/queues/{name}"
    (retry,) = body["retry_config"]
    assert retry["max_attempts"] == "${var.cloud_tasks_max_attempts}"
    assert variables["cloud_tasks_max_attempts"]["default"] == wanted.retry_config.max_attempts
    assert seconds(unquote(retry["min_backoff"])) == wanted.retry_config.min_backoff
    assert seconds(unquote(retry["max_backoff"])) == wanted.retry_config.max_backoff
    # Rate and logging stay Cloud Tasks' defaults unless the variables say otherwise.
    assert variables["cloud_tasks_max_dispatches_per_second"]["default"] is None
    assert variables["cloud_tasks_log_sampling_ratio"]["default"] == 0


def test_terraform_vars_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The file the command writes passes the module's variable types and validations, and
    the module hands the same options back to the application as PUBSUB_JOBS_QUEUES."""
    settings = Settings(
        project_id="p", prefix="app-", queue_defaults=QueueOptions(), queues=QUEUE_SETTINGS,
        cloud_tasks_location="europe-west1",
    )
    queues = ["default", "mailers", "fast"]
    variables = terraform_vars(queues, settings)
    assert variables["cloud_tasks_location"] == "europe-west1"
    assert variables["cloud_tasks_queue"] == "jobs-delayed"
    evaluated = evaluate_module(tmp_path, variables)
    assert evaluated["queues"]["mailers"]["topic"] == "app-mailers"

    monkeypatch.setenv("PUBSUB_JOBS_QUEUES", evaluated["queues_setting"])
    from_module = Settings()
    for queue in queues:
        assert from_module.queues[queue] == settings.queue_options(queue)


def test_module_refuses_options_pubsub_refuses(tmp_path: Path) -> None:
    variables = {"queues": {"default": {"max_delivery_attempts": 3}}}
    with pytest.raises(AssertionError, match="between 5 and 100"):
        evaluate_module(tmp_path, variables)


def test_ordered_and_exactly_once_default_to_false_and_refuse_push(tmp_path: Path) -> None:
    """terraform-vars writes ordered and exactly_once for declared queues only; a queue the
    file gives neither is a plain one, and exactly-once delivery is pull only."""
    evaluated = evaluate_module(tmp_path / "plain", {"queues": {
        "plain": {}, "billing": {"ordered": True}, "payments": {"exactly_once": True}}})
    specs = evaluated["queues"]
    assert (specs["plain"]["enable_message_ordering"],
            specs["plain"]["enable_exactly_once_delivery"]) == (False, False)
    assert specs["billing"]["enable_message_ordering"] is True
    assert specs["payments"]["enable_exactly_once_delivery"] is True
    assert "ordered" not in json.loads(evaluated["queues_setting"])["billing"]
    problems = evaluate_module(tmp_path / "push", {"queues": {"payments": {
        "exactly_once": True, "push_endpoint": "https://jobs.example.com"}}},
        outputs=["queue_problems"])["queue_problems"]
    assert problems["payments"] == [
        "exactly_once delivery is offered on pull subscriptions only: drop push_endpoint "
        "(run pubsub-jobs worker) or exactly_once."]


def test_least_privilege() -> None:
    """Grants are per topic, subscription, queue, account or Cloud Run service; nothing can
    create topics."""
    found = module_resources()
    allowed = {"roles/pubsub.publisher", "roles/pubsub.subscriber", "roles/pubsub.viewer",
               "roles/cloudtasks.enqueuer", "roles/cloudtasks.taskDeleter",
               "roles/iam.serviceAccountUser", "roles/run.invoker",
               "roles/iam.serviceAccountTokenCreator"}
    grants: dict[str, tuple[str, str, str]] = {}
    for rtype, named in found.items():
        assert not rtype.startswith("google_project_iam"), rtype
        assert not rtype.endswith(("_iam_binding", "_iam_policy")), rtype
        if rtype.endswith("_iam_member"):
            for name, body in named.items():
                role = unquote(body["role"])
                assert role in allowed, (name, role)
                grants[name] = (rtype, role, body["member"])

    agent = "${local.pubsub_service_agent}"
    assert grants["service_agent_publishes_dead_letters"] == (
        "google_pubsub_topic_iam_member", "roles/pubsub.publisher", agent)
    assert (found["google_pubsub_topic_iam_member"]["service_agent_publishes_dead_letters"]
            ["topic"] == "${google_pubsub_topic.dead_letter[each.key].name}")
    assert grants["service_agent_acks_worker_subscription"] == (
        "google_pubsub_subscription_iam_member", "roles/pubsub.subscriber", agent)
    assert (found["google_pubsub_subscription_iam_member"]
            ["service_agent_acks_worker_subscription"]["subscription"]
            == "${google_pubsub_subscription.worker[each.key].name}")
    main_locals = load_hcl(MODULE / "main.tf")["locals"][0]
    assert main_locals["pubsub_service_agent"] == (
        '"serviceAccount:service-${local.project_number}@gcp-sa-pubsub.iam.gserviceaccount.com"'
    )
    assert main_locals["project_number"] == (
        "${var.project_number != null ? var.project_number : "
        "one(data.google_project.this[*].number)}"
    )

    by_member: dict[str, set[str]] = {}
    for rtype, role, member in grants.values():
        by_member.setdefault(member, set()).add(f"{rtype} {role}")
    assert by_member["${local.app_member}"] == {
        "google_pubsub_topic_iam_member roles/pubsub.publisher"}
    assert by_member["${local.worker_member}"] == {
        "google_pubsub_topic_iam_member roles/pubsub.publisher",
        "google_pubsub_subscription_iam_member roles/pubsub.subscriber",
        "google_pubsub_subscription_iam_member roles/pubsub.viewer"}
    assert by_member[agent] == {
        "google_pubsub_topic_iam_member roles/pubsub.publisher",
        "google_pubsub_subscription_iam_member roles/pubsub.subscriber",
        "google_service_account_iam_member roles/iam.serviceAccountTokenCreator"}
    assert by_member["${local.push_member}"] == {
        "google_cloud_run_v2_service_iam_member roles/run.invoker"}
    assert by_member["${local.scheduler_member}"] == {
        "google_pubsub_topic_iam_member roles/pubsub.publisher"}
    assert by_member["${each.value}"] == {  # whoever schedules delayed jobs, or cancels
        "google_cloud_tasks_queue_iam_member roles/cloudtasks.enqueuer",
        "google_cloud_tasks_queue_iam_member roles/cloudtasks.taskDeleter",
        "google_service_account_iam_member roles/iam.serviceAccountUser"}
    assert by_member["${each.value.member}"] >= {  # the same, on rate-limited queues
        "google_cloud_tasks_queue_iam_member roles/cloudtasks.enqueuer",
        "google_cloud_tasks_queue_iam_member roles/cloudtasks.taskDeleter"}

    queue = found["google_cloud_tasks_queue"]["delayed"]
    assert queue["name"] == "${var.cloud_tasks_queue}"


@pytest.mark.parametrize("example", ["cloud-run", "cloud-run-push", "gke"])
def test_example_uses_generated_variables(example: str) -> None:
    """An example's tfvars file is what `terraform-vars` writes, and its root passes each
    of those variables to the module (the push example adds each queue's push endpoint)."""
    example_dir = EXAMPLES / example
    written = json.loads((example_dir / DEFAULT_TFVARS_PATH).read_text())
    settings = Settings(
        prefix="jobs-", queue_defaults=QueueOptions(), cloud_tasks_location="us-central1",
        queues={"mailers": QueueOptions(max_delivery_attempts=10, ack_deadline_seconds=120)},
    )
    assert written == terraform_vars(["default", "mailers"], settings)

    declared = {unquote(name) for block in load_hcl(example_dir / "variables.tf")["variable"]
                for name in block}
    assert set(written) <= declared
    modules = {unquote(name): body for block in load_hcl(example_dir / "main.tf")["module"]
               for name, body in block.items()}
    jobs = modules["pubsub_jobs"]
    assert unquote(jobs["source"]) == "../.."
    for name in written:
        if example == "cloud-run-push" and name == "queues":
            assert jobs[name] == ("${{for queue, options in var.queues : queue => "
                                  "merge(options, {push_endpoint = local.push_url})}}")
        else:
            assert jobs[name] == f"${{var.{name}}}", name


def test_readme_section_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The console session of docs/deploying.md prints what it shows and writes
    the JSON shown after it."""
    text = (ROOT / "docs" / "deploying.md").read_text()
    console = re.search(r"```console\n(.*?)```", text, re.S)
    shown = re.search(r"```json\n(.*?)```", text, re.S)
    assert console and shown
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("PUBSUB_JOBS_")]:
        monkeypatch.delenv(name)
    reset()
    try:
        expected_output: list[str] = []
        for line in console[1].splitlines():
            if line.startswith("$ export "):
                name, _, value = line.removeprefix("$ export ").partition("=")
                monkeypatch.setenv(name, shlex.split(value)[0])
            elif line.startswith("$ pubsub-jobs "):
                assert cli.main(shlex.split(line.removeprefix("$ "))[1:]) == 0
            else:
                expected_output.append(line)
    finally:
        reset()
    assert capsys.readouterr().out.splitlines() == expected_output
    assert json.loads((tmp_path / DEFAULT_TFVARS_PATH).read_text()) == json.loads(shown[1])


def test_every_file_parses() -> None:
    files = sorted(MODULE.rglob("*.tf"))
    assert len(files) >= 8
    for path in files:
        load_hcl(path)


def test_terraform_fmt() -> None:
    proc = terraform("fmt", "-check", "-recursive", "-diff", "terraform", cwd=ROOT)
    assert proc.returncode == 0, f"run `terraform fmt -recursive terraform`:\n{proc.stdout}"
