# pubsub-jobs on Google Cloud: per queue a topic, a worker subscription (pull, or push with
# OIDC) with dead-letter and retry policies, a dead-letter topic and subscription
# (pubsub.tf); the IAM that dead-lettering and pushing need and least-privilege accounts
# (iam.tf, service_accounts.tf); the Cloud Tasks queue for delayed jobs (delayed.tf) and one
# per rate-limited queue (rate.tf); Cloud Scheduler jobs for periodic jobs (schedules.tf).
# Names and policies come from queues.tf and settings.tf.

# The project number names Google's service agents. It is read at plan time: a data source
# that waited for google_project_service would be read during apply whenever the set of APIs
# changes, and every grant to a service agent would be replaced (no permission meanwhile).
data "google_project" "this" {
  count = var.project_number == null ? 1 : 0

  project_id = var.project
}

locals {
  project_number = var.project_number != null ? var.project_number : one(data.google_project.this[*].number)

  # Google's own account that moves messages to dead-letter topics and signs push tokens.
  pubsub_service_agent = "serviceAccount:service-${local.project_number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_project_service" "enabled" {
  for_each = var.enable_apis ? toset(local.apis) : toset([])

  project            = var.project
  service            = each.value
  disable_on_destroy = false
}
