"""Declaring periodic jobs: validation when declared, the fixed message, the derived job id,
and the schedules ``terraform-vars`` writes (no emulator needed; the commands themselves run
in tests/processes/test_cron_cli.py)."""

from __future__ import annotations

import base64
import json
import logging
from datetime import UTC, datetime

import jsonschema
import pytest

import pubsub_jobs
from pubsub_jobs import (
    InvalidSchedule,
    JobDefinitionError,
    JobError,
    Registry,
    Schedule,
    Settings,
    job,
    schedule,
)
from pubsub_jobs.admin.terraform_vars import terraform_vars, writing_schedules
from pubsub_jobs.cron.schedules import schedules_for
from pubsub_jobs.cron.terraform import schedule_variables
from pubsub_jobs.delivery import Delivery
from pubsub_jobs.errors import ConfigurationError
from pubsub_jobs.message import schema
from pubsub_jobs.outcome import Action, Reason
from pubsub_jobs.perform import Performer
from tests import jobs_cron


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def registry() -> Registry:
    return Registry()


@pytest.fixture
def ran():
    jobs_cron.RAN.clear()
    yield jobs_cron.RAN
    jobs_cron.RAN.clear()


def make_report(registry: Registry):
    @job(name="report", registry=registry)
    def report(kind: str, *, limit: int = 10) -> None: ...

    return report


class TestDeclarationErrors:
    """Each a clear InvalidSchedule naming the schedule, raised when the module is imported."""

    def test_a_bad_cron_expression(self, registry):
        report = make_report(registry)
        with pytest.raises(InvalidSchedule, match=r"schedule 'sales': cron '61 \* \* \* \*' is "
                                                  r"invalid: minute 61 is out of range 0-59"):
            schedule(report, "61 * * * *", name="sales", args=["sales"], registry=registry)
        assert "sales" not in schedules_for(registry)

    def test_a_bad_cron_on_job_registers_nothing(self, registry):
        with pytest.raises(InvalidSchedule, match=r"schedule 'cleanup': cron 'every day'.*"
                                                  "five fields"):
            @job(name="cleanup", cron="every day", registry=registry)
            def cleanup() -> None: ...
        assert "cleanup" not in registry and "cleanup" not in schedules_for(registry)

    def test_an_unknown_time_zone(self, registry):
        report = make_report(registry)
        with pytest.raises(InvalidSchedule, match="schedule 'mars': unknown time zone "
                                                  "'Mars/Olympus_Mons'; give an IANA name"):
            schedule(report, "0 * * * *", name="mars", args=["x"], timezone="Mars/Olympus_Mons",
                     registry=registry)
        with pytest.raises(InvalidSchedule, match="unknown time zone '../etc/passwd'"):
            schedule(report, "0 * * * *", name="path", args=["x"], timezone="../etc/passwd",
                     registry=registry)

    def test_arguments_that_do_not_fit_the_signature(self, registry):
        report = make_report(registry)
        with pytest.raises(InvalidSchedule, match="schedule 'two': the arguments do not fit "
                                                  "job 'report'.*too many positional"):
            schedule(report, "0 * * * *", name="two", args=["a", "b"], registry=registry)
        with pytest.raises(InvalidSchedule, match="schedule 'typed': .*argument 'limit' is "
                                                  "invalid"):
            schedule(report, "0 * * * *", name="typed", args=["a"], kwargs={"limit": "many"},
                     registry=registry)
        with pytest.raises(InvalidSchedule, match="schedule 'report': .*missing a required "
                                                  r"argument.*pubsub_jobs.schedule\(job, cron, "
                                                  "args="):
            schedule(report, "0 * * * *", registry=registry)

    def test_job_cron_on_a_job_that_takes_arguments(self, registry):
        with pytest.raises(InvalidSchedule, match="schedule 'greet': the arguments do not fit "
                                                  "job 'greet'.*pubsub_jobs.schedule"):
            @job(name="greet", cron="0 9 * * *", registry=registry)
            def greet(name: str) -> None: ...

    def test_two_schedules_with_one_name(self, registry):
        report = make_report(registry)
        schedule(report, "0 * * * *", name="hourly", args=["a"], registry=registry)
        schedule(report, "0 * * * *", name="hourly", args=["a"], registry=registry)  # same: ok
        with pytest.raises(InvalidSchedule, match="schedule 'hourly' is declared twice: for "
                                                  r"job 'report' \(0 \* \* \* \*, UTC\) and for "
                                                  r"job 'report' \(30 \* \* \* \*, UTC\)"):
            schedule(report, "30 * * * *", name="hourly", args=["a"], registry=registry)

    def test_a_job_cron_clashing_with_a_named_schedule(self, registry):
        report = make_report(registry)
        schedule(report, "0 * * * *", name="tick", args=["a"], registry=registry)
        with pytest.raises(InvalidSchedule, match="schedule 'tick' is declared twice"):
            @job(name="tick", cron="* * * * *", registry=registry)
            def tick() -> None: ...

    def test_names_and_targets(self, registry):
        report = make_report(registry)
        with pytest.raises(InvalidSchedule, match="schedule name 'a b' is not"):
            schedule(report, "0 * * * *", name="a b", args=["x"], registry=registry)
        with pytest.raises(InvalidSchedule, match="takes a job"):
            schedule(print, "0 * * * *", registry=registry)  # type: ignore[arg-type]
        with pytest.raises(JobDefinitionError, match="timezone= goes with cron="):
            @job(name="tz", timezone="UTC", registry=registry)
            def tz() -> None: ...

    def test_the_error_is_in_the_tree(self):
        assert issubclass(InvalidSchedule, JobError) and issubclass(InvalidSchedule, ValueError)
        assert "InvalidSchedule" in pubsub_jobs.errors.__doc__


def test_job_cron_declares_a_schedule_named_like_the_job():
    nightly = schedules_for(jobs_cron.REGISTRY).get("tests.jobs_cron.nightly")
    assert isinstance(nightly, Schedule)
    assert (nightly.job_name, nightly.queue, nightly.cron, nightly.timezone) == (
        "tests.jobs_cron.nightly", "cron", "30 2 * * *", "Europe/Berlin")
    assert schedules_for(jobs_cron.REGISTRY).get("tests.jobs_cron.every_minute").timezone == "UTC"
    assert jobs_cron.every_minute.name in jobs_cron.REGISTRY
    # the default registry never saw them
    assert "tests.jobs_cron.nightly" not in schedules_for()


def test_the_message_cloud_scheduler_publishes():
    quarterly = jobs_cron.QUARTERLY
    assert quarterly.data() == b'{"args":["sales"],"kwargs":{"limit":5}}'
    assert quarterly.attributes() == {
        "job_name": "tests.jobs_cron.report", "queue_name": "cron", "wire_version": "1",
        "schedule": "report-quarterly",
    }
    jsonschema.validate({"data": json.loads(quarterly.data()),
                         "attributes": quarterly.attributes()}, schema())
    # A message of no schedule still needs job_id and enqueued_at.
    plain = {k: v for k, v in quarterly.attributes().items() if k != "schedule"}
    with pytest.raises(jsonschema.ValidationError, match="job_id"):
        jsonschema.validate({"data": {"args": [], "kwargs": {}}, "attributes": plain}, schema())


def test_next_runs_in_the_schedule_time_zone():
    runs = jobs_cron.QUARTERLY.next_runs(utc("2026-01-15T10:07:00"), 2)
    assert runs == [utc("2026-01-15T10:15:00"), utc("2026-01-15T10:30:00")]
    assert jobs_cron.QUARTERLY.job_id(runs[0]) == "report-quarterly@2026-01-15T10:15:00Z"


class TestDerivedJobId:
    """The worker's side: a scheduled message without job_id gets <schedule>@<slot>."""

    @pytest.fixture
    def performer(self):
        performer = Performer(jobs_cron.REGISTRY, Settings(project_id="p"))
        yield performer
        performer.close()

    def perform(self, performer, declared: Schedule, publish_time: str, **extra: str):
        return performer.perform(Delivery(declared.data(), {**declared.attributes(), **extra},
                                          "m1", 1, declared.queue, utc(publish_time)))

    def test_the_slot_at_or_before_the_publish_time(self, performer, ran):
        outcome = self.perform(performer, jobs_cron.QUARTERLY, "2026-01-15T10:16:02.5")
        assert outcome.action is Action.ACK and outcome.reason is Reason.SUCCEEDED
        assert ran == [("report", "report-quarterly@2026-01-15T10:15:00Z", "report-quarterly",
                        utc("2026-01-15T10:15:00"), ("sales", 5))]

    def test_a_duplicate_firing_of_one_slot_has_the_same_id(self, performer, ran):
        self.perform(performer, jobs_cron.QUARTERLY, "2026-01-15T10:15:00.2")
        self.perform(performer, jobs_cron.QUARTERLY, "2026-01-15T10:29:59")
        self.perform(performer, jobs_cron.QUARTERLY, "2026-01-15T10:30:00")
        assert [job_id for _, job_id, *_ in ran] == [
            "report-quarterly@2026-01-15T10:15:00Z", "report-quarterly@2026-01-15T10:15:00Z",
            "report-quarterly@2026-01-15T10:30:00Z"]

    def test_across_daylight_saving(self, performer, ran):
        nightly = schedules_for(jobs_cron.REGISTRY).get("tests.jobs_cron.nightly")
        # 29 March: 02:30 Berlin does not exist; the slot is the jump, 03:00 CEST (01:00Z).
        self.perform(performer, nightly, "2026-03-29T01:00:00.4")
        # 25 October: 02:30 happens twice; a firing at the second belongs to the first.
        self.perform(performer, nightly, "2026-10-25T01:30:01")
        assert [job_id for _, job_id, *_ in ran] == [
            "tests.jobs_cron.nightly@2026-03-29T01:00:00Z",
            "tests.jobs_cron.nightly@2026-10-25T00:30:00Z"]

    def test_a_job_id_naming_the_slot_wins(self, performer, ran):
        self.perform(performer, jobs_cron.QUARTERLY, "2026-01-15T12:00:00",
                     job_id="report-quarterly@2026-01-15T10:15:00Z")
        [(_, job_id, _, slot, _)] = ran
        assert job_id == "report-quarterly@2026-01-15T10:15:00Z"
        assert slot == utc("2026-01-15T10:15:00")

    def test_enqueued_at_is_the_publish_time(self, performer):
        seen = []

        class Hooks:
            def __bool__(self): return True
            def before_perform(self, context): seen.append(context)
            def perform_context(self, context):
                import contextlib
                return contextlib.nullcontext()
            def after_perform(self, context, outcome): pass
            def on_rejected(self, queue, attributes, outcome): pass

        performer.middleware = Hooks()
        self.perform(performer, jobs_cron.QUARTERLY, "2026-01-15T10:16:02.5")
        [context] = seen
        assert context.enqueued_at == utc("2026-01-15T10:16:02.5")
        assert context.attributes["schedule"] == "report-quarterly"

    def test_an_undeclared_schedule_takes_the_minute(self, performer, ran, caplog):
        attributes = {**jobs_cron.QUARTERLY.attributes(), "schedule": "gone"}
        with caplog.at_level(logging.WARNING, "pubsub_jobs.cron.schedules"):
            performer.perform(Delivery(jobs_cron.QUARTERLY.data(), attributes, "m1", 1, "cron",
                                       utc("2026-01-15T10:16:02.5")))
        assert ran[0][1] == "gone@2026-01-15T10:16:00Z"
        assert "schedule 'gone' is not declared" in caplog.text

    def test_a_scheduled_message_still_needs_its_job_name(self, performer, ran):
        attributes = {k: v for k, v in jobs_cron.QUARTERLY.attributes().items()
                      if k != "job_name"}
        outcome = performer.perform(Delivery(b'{"args":[],"kwargs":{}}', attributes, "m1", 1,
                                             "cron", utc("2026-01-15T10:16:00")))
        assert outcome.reason is Reason.INVALID_MESSAGE and "job_name" in str(outcome.error)
        assert ran == []


class TestTerraformVars:
    def test_the_schedules_variable(self):
        variables = schedule_variables([jobs_cron.QUARTERLY], ["cron"])
        assert variables == {"report-quarterly": {
            "queue": "cron", "cron": "*/15 * * * *", "time_zone": "Europe/Berlin",
            "data": base64.b64encode(b'{"args":["sales"],"kwargs":{"limit":5}}').decode(),
            "attributes": {"job_name": "tests.jobs_cron.report", "queue_name": "cron",
                           "wire_version": "1", "schedule": "report-quarterly"},
        }}

    def test_a_schedule_of_a_queue_not_written_is_refused(self):
        with pytest.raises(ConfigurationError, match="schedule 'report-quarterly' publishes "
                                                     "to queue 'cron'.*add --queue cron"):
            schedule_variables([jobs_cron.QUARTERLY], ["default"])

    def test_terraform_vars_writes_them_only_when_asked(self):
        settings = Settings(project_id="p")
        assert "schedules" not in terraform_vars(["cron"], settings)
        with writing_schedules(schedules_for(jobs_cron.REGISTRY)):
            written = terraform_vars(["cron"], settings)
        assert set(written["schedules"]) == {"report-quarterly", "tests.jobs_cron.every_minute",
                                             "tests.jobs_cron.nightly"}
        assert "schedules" not in terraform_vars(["cron"], settings)


