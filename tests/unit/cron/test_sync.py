"""``cron sync``: the Cloud Scheduler requests it sends (create, update, delete, and nothing
when nothing changed), checked against the API's own request types. No Cloud Scheduler
emulator exists, so a fake client keeps the jobs and records each request."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest
from google.api_core import exceptions as gexc
from google.cloud import scheduler_v1
from google.protobuf import timestamp_pb2

from pubsub_jobs import Settings, cli
from pubsub_jobs.cron import plan_sync, scheduler_client, scheduler_job_id, sync_schedules
from pubsub_jobs.cron.schedules import build_schedule, schedules_for
from pubsub_jobs.cron.sync import UPDATE_MASK
from pubsub_jobs.errors import ConfigurationError
from pubsub_jobs.settings import reset
from tests import jobs_cron

SETTINGS = Settings(project_id="acme", prefix="jobs-")
PARENT = "projects/acme/locations/europe-west1"
SCHEDULES = list(schedules_for(jobs_cron.REGISTRY))
QUARTERLY_JOB = f"{PARENT}/jobs/jobs-report-quarterly"


class FakeCloudScheduler:
    """The four calls of CloudSchedulerClient that sync makes, on jobs kept in memory. Like
    the service, it fills in what a request left out (state, retry defaults)."""

    def __init__(self, *jobs: scheduler_v1.Job) -> None:
        self.jobs = {job.name: job for job in jobs}
        self.requests: list[object] = []

    def list_jobs(self, *, request: scheduler_v1.ListJobsRequest) -> list[scheduler_v1.Job]:
        assert isinstance(request, scheduler_v1.ListJobsRequest)
        self.requests.append(request)
        return [copy.deepcopy(job) for name, job in sorted(self.jobs.items())
                if name.startswith(request.parent + "/jobs/")]

    def create_job(self, *, request: scheduler_v1.CreateJobRequest) -> scheduler_v1.Job:
        assert isinstance(request, scheduler_v1.CreateJobRequest)
        self.requests.append(request)
        job = copy.deepcopy(request.job)
        assert job.name.startswith(request.parent + "/jobs/")
        if job.name in self.jobs:
            raise gexc.AlreadyExists(job.name)
        job.state = scheduler_v1.Job.State.ENABLED
        job.user_update_time = timestamp_pb2.Timestamp(seconds=1_700_000_000)
        job.retry_config.max_doublings = job.retry_config.max_doublings or 5
        self.jobs[job.name] = job
        return job

    def update_job(self, *, request: scheduler_v1.UpdateJobRequest) -> scheduler_v1.Job:
        assert isinstance(request, scheduler_v1.UpdateJobRequest)
        self.requests.append(request)
        job = self.jobs[request.job.name]
        for path in request.update_mask.paths:
            setattr(job, path, copy.deepcopy(getattr(request.job, path)))
        return job

    def delete_job(self, *, request: scheduler_v1.DeleteJobRequest) -> None:
        assert isinstance(request, scheduler_v1.DeleteJobRequest)
        self.requests.append(request)
        del self.jobs[request.name]

    def kinds(self) -> list[str]:
        return [type(r).__name__ for r in self.requests]


def sync(client: FakeCloudScheduler, schedules=SCHEDULES, **options):
    client.requests.clear()
    return sync_schedules(schedules, location="europe-west1", client=client, settings=SETTINGS,
                          **options)


def test_job_ids_are_the_terraform_module_s():
    # terraform/settings.tf: replace("${var.prefix}${name}", "/[^A-Za-z0-9_-]/", "-")
    assert scheduler_job_id("report-quarterly", "jobs-") == "jobs-report-quarterly"
    assert scheduler_job_id("tests.jobs_cron.every_minute", "jobs-") == (
        "jobs-tests-jobs_cron-every_minute")
    assert scheduler_job_id("nightly", "app.v2-") == "app-v2-nightly"


def test_two_schedules_meeting_in_one_job_name_are_refused():
    one = build_schedule(jobs_cron.report, "0 * * * *", name="a.b", args=["x"])
    other = build_schedule(jobs_cron.report, "0 * * * *", name="a-b", args=["x"])
    with pytest.raises(ConfigurationError, match="schedules 'a.b' and 'a-b' would both be the "
                                                 "Cloud Scheduler job 'jobs-a-b'"):
        sync(FakeCloudScheduler(), [one, other])


def test_create_sends_one_typed_request_per_schedule():
    client = FakeCloudScheduler()
    plan = sync(client)
    assert [c.action for c in plan.changes] == ["create"] * 3
    assert client.kinds() == ["ListJobsRequest"] + ["CreateJobRequest"] * 3
    assert client.requests[0] == scheduler_v1.ListJobsRequest(parent=PARENT)
    creates = {r.job.name: r for r in client.requests[1:]}
    request = creates[QUARTERLY_JOB]
    assert request.parent == PARENT
    assert request.job == scheduler_v1.Job(
        name=QUARTERLY_JOB,
        description="pubsub-jobs schedule report-quarterly",
        schedule="*/15 * * * *",
        time_zone="Europe/Berlin",
        pubsub_target=scheduler_v1.PubsubTarget(
            topic_name="projects/acme/topics/jobs-cron",
            data=b'{"args":["sales"],"kwargs":{"limit":5}}',
            attributes={"job_name": "tests.jobs_cron.report", "queue_name": "cron",
                        "wire_version": "1", "schedule": "report-quarterly"},
        ),
        retry_config=scheduler_v1.RetryConfig(
            retry_count=3, min_backoff_duration=timedelta(seconds=5),
            max_backoff_duration=timedelta(seconds=60),
        ),
    )
    nightly = creates[f"{PARENT}/jobs/{scheduler_job_id('tests.jobs_cron.nightly', 'jobs-')}"]
    assert (nightly.job.schedule, nightly.job.time_zone) == ("30 2 * * *", "Europe/Berlin")
    assert "create  jobs-report-quarterly  (schedule report-quarterly)" in plan.describe()


def test_nothing_changed_sends_nothing():
    client = FakeCloudScheduler()
    sync(client)
    plan = sync(client)
    assert client.kinds() == ["ListJobsRequest"]
    assert plan.pending == [] and {c.action for c in plan.changes} == {"keep"}


def test_update_sends_only_what_changed_with_a_field_mask():
    client = FakeCloudScheduler()
    sync(client)
    client.jobs[QUARTERLY_JOB].state = scheduler_v1.Job.State.PAUSED  # paused in the console
    changed = build_schedule(jobs_cron.report, "0 * * * *", name="report-quarterly",
                             args=["sales"], kwargs={"limit": 6}, timezone="Europe/Berlin")
    others = [s for s in SCHEDULES if s.name != "report-quarterly"]
    plan = sync(client, [*others, changed])
    assert client.kinds() == ["ListJobsRequest", "UpdateJobRequest"]
    [update] = plan.pending
    assert update.differences == (
        "cron '*/15 * * * *' -> '0 * * * *'",
        """data '{"args":["sales"],"kwargs":{"limit":5}}' -> '{"args":["sales"],"kwargs":"""
        """{"limit":6}}'""",
    )
    request = client.requests[1]
    assert list(request.update_mask.paths) == list(UPDATE_MASK)
    assert request.job.name == QUARTERLY_JOB and request.job.schedule == "0 * * * *"
    assert client.jobs[QUARTERLY_JOB].state == scheduler_v1.Job.State.PAUSED  # left as it was
    assert sync(client, [*others, changed]).pending == []


def test_delete_only_with_prune_and_only_our_jobs():
    theirs = scheduler_v1.Job(  # under our prefix, but not a schedule of ours
        name=f"{PARENT}/jobs/jobs-backup", schedule="0 3 * * *",
        pubsub_target=scheduler_v1.PubsubTarget(topic_name="projects/acme/topics/backup"),
    )
    elsewhere = scheduler_v1.Job(  # a schedule of another prefix (another app or environment)
        name=f"{PARENT}/jobs/staging-old", schedule="0 3 * * *",
        pubsub_target=scheduler_v1.PubsubTarget(attributes={"schedule": "old"}),
    )
    client = FakeCloudScheduler(theirs, elsewhere)
    sync(client)
    gone = [s for s in SCHEDULES if s.name != "report-quarterly"]

    plan = sync(client, gone)
    assert client.kinds() == ["ListJobsRequest"]
    assert [(c.action, c.name) for c in plan.changes if c.action != "keep"] == [
        ("stale", QUARTERLY_JOB)]
    assert "--prune deletes it" in plan.describe()

    plan = sync(client, gone, prune=True, dry_run=True)
    assert client.kinds() == ["ListJobsRequest"]  # a dry run only reads
    assert [c.action for c in plan.pending] == ["delete"]

    sync(client, gone, prune=True)
    assert client.kinds() == ["ListJobsRequest", "DeleteJobRequest"]
    assert client.requests[1] == scheduler_v1.DeleteJobRequest(name=QUARTERLY_JOB)
    assert set(client.jobs) == {theirs.name, elsewhere.name} | {
        f"{PARENT}/jobs/{scheduler_job_id(s.name, 'jobs-')}" for s in gone}
    sync(client, gone, prune=True)
    assert client.kinds() == ["ListJobsRequest"]


def test_a_dry_run_creates_nothing():
    client = FakeCloudScheduler()
    plan = sync(client, dry_run=True)
    assert client.kinds() == ["ListJobsRequest"] and len(plan.pending) == 3
    assert client.jobs == {}


def test_utc_spelled_another_way_is_no_change():
    client = FakeCloudScheduler()
    every_minute = [s for s in SCHEDULES if s.timezone == "UTC"]
    sync(client, every_minute)
    [job] = client.jobs.values()
    job.time_zone = "Etc/UTC"
    assert sync(client, every_minute).pending == []


def test_the_emulator_has_no_cloud_scheduler():
    with pytest.raises(ConfigurationError, match="no Cloud Scheduler emulator exists: run "
                                                 "`pubsub-jobs cron run"):
        scheduler_client(Settings(project_id="p", pubsub_emulator_host="localhost:8085"))


def test_plan_sync_reads_only():
    client = FakeCloudScheduler()
    plan = plan_sync(SCHEDULES, client, location="europe-west1", settings=SETTINGS)
    assert client.kinds() == ["ListJobsRequest"] and plan.parent == PARENT


class TestCommand:
    @pytest.fixture
    def client(self, monkeypatch):
        client = FakeCloudScheduler()
        monkeypatch.setattr("pubsub_jobs.cron.sync.scheduler_client", lambda settings: client)
        monkeypatch.setattr("pubsub_jobs.cron.schedules.schedules_for",
                            lambda: schedules_for(jobs_cron.REGISTRY))
        monkeypatch.setenv("PUBSUB_JOBS_PROJECT_ID", "acme")
        monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
        monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
        reset()  # settings an earlier test read from the environment would hide the project
        yield client
        reset()

    def test_dry_run_then_sync_then_nothing(self, client, capsys):
        assert cli.main(["cron", "sync", "--location", "europe-west1", "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert "create  jobs-report-quarterly" in out
        assert f"dry run: 3 change(s) planned in {PARENT}, none made" in out
        assert client.jobs == {}
        assert cli.main(["cron", "sync", "--location", "europe-west1"]) == 0
        assert f"3 change(s) made in {PARENT}" in capsys.readouterr().out
        assert cli.main(["cron", "sync", "--location", "europe-west1"]) == 0
        assert f"nothing to change in {PARENT}" in capsys.readouterr().out

    def test_a_location_is_needed(self, client, capsys):
        assert cli.main(["cron", "sync"]) == 2
        assert "--location REGION" in capsys.readouterr().err

    def test_nothing_declared_is_never_a_reason_to_delete(self, client, monkeypatch, capsys):
        monkeypatch.setattr("pubsub_jobs.cron.schedules.schedules_for", lambda: [])
        assert cli.main(["cron", "sync", "--location", "europe-west1", "--prune"]) == 1
        assert "no schedules declared" in capsys.readouterr().err
        assert client.requests == []


def test_fields_filled_in_by_the_service_are_no_change():
    client = FakeCloudScheduler()
    sync(client)
    job = client.jobs[QUARTERLY_JOB]
    assert job.retry_config.max_doublings == 5 and job.state == scheduler_v1.Job.State.ENABLED
    assert sync(client).pending == []


def test_a_retry_setting_changed_by_hand_is_put_back():
    client = FakeCloudScheduler()
    sync(client)
    client.jobs[QUARTERLY_JOB].retry_config.retry_count = 0
    [change] = sync(client).pending
    assert change.differences == ("retry count 0 -> 3",)
    assert client.jobs[QUARTERLY_JOB].retry_config.retry_count == 3
