"""Middleware: hook order, loading from settings and the CLI, and the three built-ins
(structured logging, Prometheus metrics, OpenTelemetry tracing) on the in-memory adapter and
end to end on the emulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from pubsub_jobs import PubSubAdapter, use_adapter
from pubsub_jobs.middleware.opentelemetry import OpenTelemetry
from pubsub_jobs.middleware.prometheus import PrometheusMetrics
from pubsub_jobs.testing.helpers import publish_raw
from tests import jobs_middleware
from tests.unit.middleware.test_middleware import check_trace

pytestmark = pytest.mark.usefixtures("middleware_events")

ROOT = Path(__file__).resolve().parents[2]
PROBE = jobs_middleware.probe.name


# -- end to end on the emulator ------------------------------------------------------------


@pytest.fixture
def tracing() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def test_trace_and_metrics_cross_the_emulator(
    pubsub_jobs_settings, bootstrap_queues, drain_queues, tracing
):
    provider, exporter = tracing
    registry = CollectorRegistry()
    bootstrap_queues("default")
    adapter = PubSubAdapter(pubsub_jobs_settings, middleware=[
        OpenTelemetry(tracer_provider=provider), PrometheusMetrics(registry)])
    try:
        with use_adapter(adapter), \
                provider.get_tracer("test").start_as_current_span("request") as request:
            jobs_middleware.traced_sync.enqueue("a")
            jobs_middleware.traced_async.enqueue("b")
    finally:
        adapter.close()
    publish_raw("default", b"not a job", {"job_name": "x"}, pubsub_jobs_settings)
    drain_queues("default", idle=1.0, middleware=[
        OpenTelemetry(tracer_provider=provider), PrometheusMetrics(registry)])
    check_trace(exporter, request)
    assert registry.get_sample_value("pubsub_jobs_jobs_processed_total", {
        "queue": "default", "job_name": jobs_middleware.traced_async.name,
        "outcome": "succeeded"}) == 1
    assert registry.get_sample_value("pubsub_jobs_jobs_dead_lettered_total", {
        "queue": "default", "job_name": "", "reason": "invalid_message"}) == 1


def test_cli_worker_logs_json_with_middleware_from_the_command_line(
    pubsub_jobs_settings, bootstrap_queues
):
    bootstrap_queues("default")
    adapter = PubSubAdapter(pubsub_jobs_settings, middleware=[])
    try:
        with use_adapter(adapter):
            job_id = jobs_middleware.probe.enqueue("cli").job_id
    finally:
        adapter.close()
    env = {
        **os.environ,
        "PUBSUB_EMULATOR_HOST": pubsub_jobs_settings.pubsub_emulator_host,
        "PUBSUB_JOBS_PROJECT_ID": pubsub_jobs_settings.project_id,
        "PUBSUB_JOBS_PREFIX": pubsub_jobs_settings.prefix,
    }
    env.pop("PUBSUB_JOBS_MIDDLEWARE", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pubsub_jobs", "--log-format", "json", "worker",
         "tests.jobs_middleware", "--queue", "default", "--burst", "--burst-idle", "1",
         "--middleware", "logging"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    entries = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    assert any(e["logger"].startswith("pubsub_jobs.worker.") for e in entries), proc.stderr
    [done] = [e for e in entries if e["logger"] == "pubsub_jobs.jobs"]
    assert done["severity"] == "INFO"
    assert (done["job_id"], done["job_name"], done["queue"], done["attempt"],
            done["outcome"]) == (job_id, PROBE, "default", 1, "succeeded")
    assert done["duration"] >= 0
