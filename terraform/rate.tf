# Rate-limited queues (queue(..., rate_limit=N) in code, rate_limit in var.queues): every job
# of such a queue goes through the queue's own Cloud Tasks queue, <prefix>Q-rate, which
# publishes it to the queue's topic (the same HTTP task as a delayed job, with the scheduler
# account's token) at most N a second, however many workers run. The grants are those of
# delayed jobs, on these queues too (iam.tf): whoever enqueues creates tasks in them
# (enqueuer) and lets Cloud Tasks use the scheduler's token (actAs, given once for the
# delayed-jobs queue); the scheduler account publishes to the topics.

resource "google_cloud_tasks_queue" "rate" {
  for_each = local.rate_queues

  project  = var.project
  location = local.cloud_tasks_location
  name     = each.value.rate_queue

  rate_limits {
    max_dispatches_per_second = each.value.rate_limit
  }

  # As the delayed-jobs queue: a failed publish is tried again, 1 s to 5 min apart.
  retry_config {
    max_attempts = var.cloud_tasks_max_attempts
    min_backoff  = "1s"
    max_backoff  = "300s"
  }

  stackdriver_logging_config {
    sampling_ratio = var.cloud_tasks_log_sampling_ratio
  }

  lifecycle {
    precondition {
      condition     = length(local.queue_problems[each.key]) == 0
      error_message = "Queue ${each.key}: ${join(" ", local.queue_problems[each.key])}"
    }
  }

  depends_on = [google_project_service.enabled]
}
