"""``bootstrap --push-endpoint URL``: push subscriptions to ``URL/push/Q`` with the same
policies and an ack deadline of 600 s, on the emulator; what the push server checks of them
when it starts; and the OIDC token a push subscription on Google Cloud is given."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pubsub_jobs.adapters.clients import subscriber_client
from pubsub_jobs.admin.topology import PUSH_ACK_DEADLINE, bootstrap, delete_topology, push_config
from pubsub_jobs.cli import main
from pubsub_jobs.errors import ConfigurationError
from pubsub_jobs.push.checks import check_subscriptions
from pubsub_jobs.settings import Settings, load_settings

URL = "http://127.0.0.1:8080"


@pytest.fixture
def queues(pubsub_jobs_settings: Settings) -> Iterator[list[str]]:
    """Queue names whose topology the test makes; deleted afterwards."""
    made: list[str] = []
    yield made
    delete_topology(made, pubsub_jobs_settings)


def subscription(settings: Settings, queue: str):  # type: ignore[no-untyped-def]
    subscriber = subscriber_client(settings)
    try:
        return subscriber.get_subscription(subscription=settings.subscription_path(queue))
    finally:
        subscriber.close()


def test_creates_a_push_subscription_with_the_same_policies(pubsub_jobs_settings, queues):
    s = pubsub_jobs_settings
    queues += ["pushed", "pulled"]
    bootstrap(["pulled"], s)
    report = bootstrap(["pushed"], s, push_endpoint=URL + "/")
    assert s.subscription_path("pushed") in report.created
    pushed, pulled = subscription(s, "pushed"), subscription(s, "pulled")
    assert pushed.push_config.push_endpoint == f"{URL}/push/pushed"
    assert pushed.ack_deadline_seconds == PUSH_ACK_DEADLINE == 600
    assert pushed.dead_letter_policy.dead_letter_topic == s.dead_letter_topic_path("pushed")
    assert (pushed.dead_letter_policy.max_delivery_attempts
            == pulled.dead_letter_policy.max_delivery_attempts)
    assert pushed.retry_policy == pulled.retry_policy
    assert pushed.message_retention_duration == pulled.message_retention_duration
    assert not pulled.push_config.push_endpoint
    again = bootstrap(["pushed"], s, push_endpoint=URL)
    assert again.created == [] and again.drift == {}


def test_pull_and_push_are_drift_that_update_turns_around(pubsub_jobs_settings, queues):
    s = pubsub_jobs_settings
    queues.append("q")
    bootstrap(["q"], s)
    report = bootstrap(["q"], s, push_endpoint=URL)
    diffs = report.drift[s.subscription_path("q")]
    assert f"push_config: is pull, configured push to {URL}/push/q" in diffs
    assert "ack_deadline_seconds: is 60, configured 600" in diffs
    report = bootstrap(["q"], s, push_endpoint=URL, update=True)
    assert report.updated == [s.subscription_path("q")]
    sub = subscription(s, "q")
    assert (sub.push_config.push_endpoint, sub.ack_deadline_seconds) == (f"{URL}/push/q", 600)
    back = bootstrap(["q"], s, update=True)
    assert back.updated == [s.subscription_path("q")]
    sub = subscription(s, "q")
    assert (sub.push_config.push_endpoint, sub.ack_deadline_seconds) == ("", 60)


def test_the_command_line_takes_the_base_url(pubsub_jobs_settings, queues, capsys):
    queues.append("cli")
    assert main(["bootstrap", "--queue", "cli", "--push-endpoint", URL]) == 0
    assert f"created  {pubsub_jobs_settings.subscription_path('cli')}" in capsys.readouterr().out
    assert subscription(pubsub_jobs_settings, "cli").push_config.push_endpoint == (
        f"{URL}/push/cli")
    assert main(["bootstrap", "--queue", "cli", "--push-endpoint", f"{URL}/push/cli"]) == 2
    assert "give the server's base URL" in capsys.readouterr().err


def test_push_subscriptions_on_google_cloud_send_an_oidc_token(monkeypatch):
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    cloud = load_settings(project_id="p", push_service_account="push@p.iam.gserviceaccount.com")
    config = push_config("mailers", "https://jobs-abc-uc.a.run.app/", cloud)
    assert config.push_endpoint == "https://jobs-abc-uc.a.run.app/push/mailers"
    assert config.oidc_token.service_account_email == "push@p.iam.gserviceaccount.com"
    assert config.oidc_token.audience == "https://jobs-abc-uc.a.run.app"
    explicit = load_settings(project_id="p", push_service_account="push@p.iam.gserviceaccount.com",
                             push_audience="jobs")
    assert push_config("q", "https://x.run.app", explicit).oidc_token.audience == "jobs"
    with pytest.raises(ConfigurationError, match="PUBSUB_JOBS_PUSH_SERVICE_ACCOUNT"):
        push_config("q", "https://x.run.app", load_settings(project_id="p"))
    with pytest.raises(ConfigurationError, match="only to https"):
        push_config("q", "http://x.run.app", cloud)
    with pytest.raises(ConfigurationError, match="base URL"):
        push_config("q", "x.run.app", cloud)


def test_the_push_server_checks_the_subscriptions_it_serves(pubsub_jobs_settings, queues):
    s = pubsub_jobs_settings
    queues += ["good", "pull", "elsewhere"]
    bootstrap(["good"], s, push_endpoint=URL)
    bootstrap(["pull"], s)
    bootstrap(["elsewhere"], s, push_endpoint=URL)
    subscriber = subscriber_client(s)
    try:  # pointed elsewhere by hand
        subscriber.modify_push_config(subscription=s.subscription_path("elsewhere"),
                                      push_config={"push_endpoint": f"{URL}/hook"})
    finally:
        subscriber.close()
    warnings = check_subscriptions(["good", "pull", "elsewhere", "missing"], s)
    assert len(warnings) == 4, warnings
    assert "the emulator sends no token" in warnings[0]
    assert "is a pull subscription" in warnings[1]
    assert f"pushes to {URL}/hook, not to .../push/elsewhere" in warnings[2]
    assert "does not exist" in warnings[3]


def test_the_push_server_refuses_a_subscription_without_dead_letter_policy(
    pubsub_jobs_settings, queues
):
    s = pubsub_jobs_settings
    queues.append("bare")
    bootstrap(["bare"], s, push_endpoint=URL)
    subscriber = subscriber_client(s)
    try:
        sub = subscriber.get_subscription(subscription=s.subscription_path("bare"))
        subscriber.delete_subscription(subscription=sub.name)
        subscriber.create_subscription(request={"name": sub.name, "topic": sub.topic,
                                                "push_config": sub.push_config,
                                                "ack_deadline_seconds": 600})
    finally:
        subscriber.close()
    with pytest.raises(ConfigurationError, match="no dead-letter policy"):
        check_subscriptions(["bare"], s)
