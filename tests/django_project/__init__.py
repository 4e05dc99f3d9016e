"""A small Django project for the Django tests (tests/unit/adapters/django/,
tests/emulator/test_django.py), on Django 6 or on Django 5.2 + django-tasks."""
