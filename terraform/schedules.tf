# Periodic jobs: each schedule is a Cloud Scheduler job that publishes its job's message to
# its queue's topic (DESIGN.md, "Periodic jobs"). Names and checks come from local.schedules
# (settings.tf). Cloud Scheduler publishes as its own service agent, whose role
# (roles/cloudscheduler.serviceAgent, granted by Google when the API is enabled) already
# includes pubsub.topics.publish for topics of the same project: no grant is needed here.

resource "google_cloud_scheduler_job" "schedule" {
  for_each = local.schedules

  project     = var.project
  region      = local.scheduler_region
  name        = each.value.job_name
  description = "pubsub-jobs schedule ${each.key}"
  schedule    = each.value.cron
  time_zone   = each.value.time_zone

  pubsub_target {
    topic_name = google_pubsub_topic.queue[each.value.queue].id
    data       = each.value.data
    attributes = each.value.attributes
  }

  # A publish that fails is tried again; the worker gives every firing of one slot the same
  # job id (<schedule>@<slot>), so a retry that did publish twice shows as one job.
  retry_config {
    retry_count          = var.schedule_retry_count
    min_backoff_duration = "5s"
    max_backoff_duration = "60s"
  }

  lifecycle {
    precondition {
      condition     = length(local.schedule_problems[each.key]) == 0
      error_message = "Schedule ${each.key}: ${join(" ", local.schedule_problems[each.key])}"
    }
  }

  depends_on = [google_project_service.enabled]
}
