# pubsub-jobs on Google Cloud: per queue a topic, a worker subscription with dead-letter
# and retry policies, a dead-letter topic and subscription (pubsub.tf); the IAM that
# dead-lettering needs and least-privilege accounts (iam.tf); the Cloud Tasks queue for
# delayed jobs (delayed.tf). Names and policies come from queues.tf.

data "google_project" "this" {
  project_id = var.project

  depends_on = [google_project_service.enabled]
}

locals {
  apis = concat(
    ["pubsub.googleapis.com", "iam.googleapis.com", "cloudresourcemanager.googleapis.com"],
    var.enable_delayed_jobs ? ["cloudtasks.googleapis.com"] : [],
  )

  cloud_tasks_location   = var.cloud_tasks_location != null ? var.cloud_tasks_location : var.region
  service_account_prefix = var.service_account_prefix != null ? var.service_account_prefix : var.prefix

  # Google's own account that moves messages to dead-letter topics.
  pubsub_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_project_service" "enabled" {
  for_each = var.enable_apis ? toset(local.apis) : toset([])

  project            = var.project
  service            = each.value
  disable_on_destroy = false
}
