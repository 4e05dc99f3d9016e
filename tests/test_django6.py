"""tests/test_django.py again on Django 6 (``django.tasks``), which needs Python 3.12: run in
the virtualenv ``.venv-django6`` (or ``$PUBSUB_JOBS_DJANGO6_PYTHON``), on this session's
emulators. This suite's own interpreter runs it on Django 5.2 with the django-tasks backport.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SETUP = (
    '"$(pyenv root)/versions/3.12.1/bin/python" -m venv .venv-django6 && '
    ".venv-django6/bin/python -m pip install -e '.[dev,django]' 'django>=6'"
)


def django6_python() -> Path:
    path = Path(os.environ.get("PUBSUB_JOBS_DJANGO6_PYTHON") or ROOT / ".venv-django6/bin/python")
    if not path.exists():
        pytest.fail(f"no Django 6 virtualenv at {path}: create it with {SETUP}")
    return path


@pytest.mark.emulator
@pytest.mark.timeout(300)
def test_django_backend_on_django6(pubsub_emulator: str, cloud_tasks_emulator: str) -> None:
    python = str(django6_python())
    version = subprocess.run(
        [python, "-c", "import django; print(django.VERSION[0])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert int(version) >= 6, f"{python} has Django {version}, not 6: {SETUP}"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(PUBSUB_EMULATOR_HOST=pubsub_emulator, CLOUD_TASKS_EMULATOR_HOST=cloud_tasks_emulator)
    proc = subprocess.run(
        [python, "-m", "pytest", "tests/test_django.py", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=280,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and " failed" not in proc.stdout
