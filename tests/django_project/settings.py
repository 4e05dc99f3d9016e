"""Settings of the test project: two Pub/Sub backends (one enqueues on commit) and one that
is not Pub/Sub, on a SQLite file shared with worker processes (PUBSUB_JOBS_TEST_DJANGO_DB)."""

import importlib.util
import os
import tempfile

import django

#: Django 6 has django.tasks; older Django uses the django-tasks backport, an app of its own.
BACKPORT = importlib.util.find_spec("django.tasks") is None
TASKS_FRAMEWORK = "django_tasks" if BACKPORT else "django.tasks"

SECRET_KEY = "pubsub-jobs-tests"  # noqa: S105
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = [
    *(["django_tasks"] if BACKPORT else []),
    "pubsub_jobs.adapters.django",
    "tests.django_project.testapp",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("PUBSUB_JOBS_TEST_DJANGO_DB")
        or os.path.join(tempfile.gettempdir(), "pubsub-jobs-django-tests.sqlite3"),
        "CONN_MAX_AGE": 0,
        "OPTIONS": {"timeout": 30},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
if django.VERSION >= (6, 1):
    MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
else:
    EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
LOGGING_CONFIG = None

#: The project every test's topology lives in; it wins over PUBSUB_JOBS_PROJECT_ID.
PUBSUB_OPTIONS = {"project_id": "test-project"}

TASKS = {
    "default": {
        "BACKEND": "pubsub_jobs.adapters.django.PubSubBackend",
        "QUEUES": ["default", "mailers"],
        "OPTIONS": PUBSUB_OPTIONS,
    },
    "on_commit": {
        "BACKEND": "pubsub_jobs.adapters.django.PubSubBackend",
        "QUEUES": ["default"],
        "OPTIONS": {**PUBSUB_OPTIONS, "enqueue_on_commit": True},
    },
    "immediate": {"BACKEND": f"{TASKS_FRAMEWORK}.backends.immediate.ImmediateBackend"},
}
