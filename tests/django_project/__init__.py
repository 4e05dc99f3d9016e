"""A small Django project for tests/test_django.py (Django 6, or Django 5.2 + django-tasks)."""
