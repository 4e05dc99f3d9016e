"""What starting up imports (issue 15): the package and its pytest plugin, which pytest loads
in every run of a project that has pubsub-jobs installed, and the command line, whose parser
every command builds. Each check runs in a fresh interpreter and looks at ``sys.modules``;
no timings (they are for the benchmarks)."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run_python(code: str) -> None:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_the_package_and_the_plugin_import_no_pydantic_and_no_google_library():
    """Public names load on first use; every name of ``__all__`` still imports, and ``job``
    is the decorator even after its module was imported by name."""
    run_python("""
        import sys
        import pubsub_jobs
        import pubsub_jobs.testing.plugin
        heavy = sorted(m for m in sys.modules if m.startswith(("pydantic", "google")))
        assert heavy == [], heavy
        import pubsub_jobs.jobs
        assert callable(pubsub_jobs.job), pubsub_jobs.job
        for name in pubsub_jobs.__all__:
            exec(f"from pubsub_jobs import {name}")
        from pubsub_jobs import job
        from pubsub_jobs.jobs import Job
        assert isinstance(job(lambda: None), Job)
        assert set(pubsub_jobs.__all__) <= set(dir(pubsub_jobs))
    """)


def test_a_job_module_imported_alone_enqueues_through_the_default_adapter():
    """The core reaches the default adapter (from the settings, or one set by a test) without
    ``pubsub_jobs.adapters`` imported beforehand: importing the package no longer does it."""
    run_python("""
        import sys
        from pubsub_jobs.jobs import job
        from pubsub_jobs.message import EnqueuedJob
        assert "pubsub_jobs.adapters" not in sys.modules

        @job
        def hello(name: str) -> None: ...

        from pubsub_jobs._default_adapter import default_adapter
        assert type(default_adapter()).__name__ == "PubSubAdapter"

        from pubsub_jobs.adapters.memory import InMemoryAdapter
        from pubsub_jobs.adapters import set_adapter
        memory = InMemoryAdapter()
        set_adapter(memory)
        hello.enqueue("x")
        assert [m.args for m in memory.jobs("default")] == [["x"]]
    """)


def test_building_the_command_line_imports_no_command_machinery():
    """``pubsub-jobs worker ...`` builds every command's parser: none of them imports the
    admin, dead set, emulator, cron, push or dashboard machinery or a Google client for it
    (the core's modules in the dead set's and cron's folders are not machinery)."""
    run_python("""
        import sys
        from pubsub_jobs.cli import build_parser
        build_parser().parse_args(["worker", "m", "--queue", "q"])
        loaded = sorted(m for m in sys.modules if m.startswith((
            "pubsub_jobs.admin", "pubsub_jobs.dead.operations", "pubsub_jobs.dead.subscription",
            "pubsub_jobs.emulator", "pubsub_jobs.cron.sync", "pubsub_jobs.cron.local",
            "pubsub_jobs.cron.listing",
            "pubsub_jobs.push", "pubsub_jobs.dashboard", "pubsub_jobs.adapters",
            "pubsub_jobs.worker.runner", "google.cloud", "google.api_core")))
        assert loaded == [], loaded
    """)


def test_the_dead_commands_reasons_are_the_dead_sets():
    """``dead list --reason`` names every reason a dead job can have."""
    from pubsub_jobs.cli.dead import REASONS
    from pubsub_jobs.dead.job import DERIVED_REASON
    from pubsub_jobs.outcome import Reason

    dead_letter_reasons = {Reason.MAX_ATTEMPTS, Reason.NOT_RETRYABLE, Reason.INVALID_MESSAGE,
                           Reason.UNKNOWN_JOB, Reason.INVALID_ARGUMENTS}
    assert set(REASONS) == {*dead_letter_reasons, DERIVED_REASON}


def test_importing_reads_no_environment():
    code = (
        "import pubsub_jobs, pubsub_jobs.worker, pubsub_jobs.cli, pubsub_jobs.testing\n"
        "from pubsub_jobs import adapters, settings\n"
        "assert settings._settings is None, 'settings were built at import'\n"
        "assert adapters._default is None, 'an adapter was built at import'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_plugin_loads_no_google_client_until_a_fixture_runs():
    """pytest imports the plugin in every project that has pubsub-jobs installed, used or
    not: it must not pay for the Pub/Sub client library there (issue: 0.75 s per run)."""
    code = ("import sys, pubsub_jobs.testing.plugin; "
            "heavy = [m for m in ('google.cloud.pubsub_v1', 'google.cloud.tasks_v2', "
            "'pubsub_jobs.worker', 'pubsub_jobs.admin') if m in sys.modules]; "
            "assert not heavy, heavy")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
