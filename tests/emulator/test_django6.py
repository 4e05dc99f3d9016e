"""The Django tests again on Django 6 (``django.tasks``), which needs Python 3.12: run in the
virtualenv ``.venv-django6`` (or ``$PUBSUB_JOBS_DJANGO6_PYTHON``), on this session's
emulators. This suite's own interpreter runs them on Django 5.2 with the django-tasks backport.

``scripts/django6-venv`` creates the virtualenv (or brings it up to date with pyproject.toml)
when this test runs, so a run that does not select it never builds it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.django6

ROOT = Path(__file__).resolve().parents[2]
DJANGO_TESTS = ["tests/unit/adapters/django/test_backend.py", "tests/emulator/test_django.py"]


@pytest.fixture(scope="session")
def django6_python() -> Path:
    """``$PUBSUB_JOBS_DJANGO6_PYTHON``, else ``.venv-django6``'s Python, created first."""
    if os.environ.get("PUBSUB_JOBS_DJANGO6_PYTHON"):
        path = Path(os.environ["PUBSUB_JOBS_DJANGO6_PYTHON"])
        if not path.exists():
            pytest.fail(f"PUBSUB_JOBS_DJANGO6_PYTHON={path}, which does not exist")
        return path
    made = subprocess.run([str(ROOT / "scripts" / "django6-venv")], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    if made.returncode != 0:
        pytest.fail(f"scripts/django6-venv could not create .venv-django6:\n{made.stderr}")
    return ROOT / ".venv-django6" / "bin" / "python"


@pytest.mark.timeout(900)  # creating the virtualenv on first use included
def test_django_backend_on_django6(
    django6_python: Path, pubsub_emulator: str, cloud_tasks_emulator: str
) -> None:
    python = str(django6_python)
    version = subprocess.run(
        [python, "-c", "import django; print(django.VERSION[0])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert int(version) >= 6, f"{python} has Django {version}, not 6: run scripts/django6-venv"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(PUBSUB_EMULATOR_HOST=pubsub_emulator, CLOUD_TASKS_EMULATOR_HOST=cloud_tasks_emulator)
    proc = subprocess.run(
        [python, "-m", "pytest", *DJANGO_TESTS, "-q", "-p", "no:cacheprovider"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=280,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and " failed" not in proc.stdout
