from django.db import models


class Run(models.Model):
    """One run of a test task."""

    tag = models.CharField(max_length=64)
    task = models.CharField(max_length=64)
    value = models.IntegerField(default=0)
    attempt = models.IntegerField(default=1)
    job_id = models.CharField(max_length=64, blank=True)
    scheduled_at = models.DateTimeField(null=True)
    ran_at = models.DateTimeField(auto_now_add=True)
