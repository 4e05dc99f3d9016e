# Delayed jobs: the application creates an HTTP task whose request publishes the job to
# its queue's topic through the Pub/Sub REST API, with an OAuth token of the scheduler
# account. Cloud Tasks keeps the task until it is due. The queue is the one bootstrap
# creates (cloud_tasks_queue_spec in pubsub_jobs/admin/topology.py).

resource "google_cloud_tasks_queue" "delayed" {
  count = var.enable_delayed_jobs ? 1 : 0

  project  = var.project
  location = local.cloud_tasks_location
  name     = var.cloud_tasks_queue

  # A failed publish of a due job (Pub/Sub unavailable, a permission missing) is tried
  # again, 1 s to 5 min apart.
  retry_config {
    max_attempts = var.cloud_tasks_max_attempts
    min_backoff  = "1s"
    max_backoff  = "300s"
  }

  # Unset: Cloud Tasks' default rate (500 dispatches per second).
  dynamic "rate_limits" {
    for_each = var.cloud_tasks_max_dispatches_per_second == null ? [] : [var.cloud_tasks_max_dispatches_per_second]
    content {
      max_dispatches_per_second = rate_limits.value
    }
  }

  stackdriver_logging_config {
    sampling_ratio = var.cloud_tasks_log_sampling_ratio
  }

  depends_on = [google_project_service.enabled]
}
