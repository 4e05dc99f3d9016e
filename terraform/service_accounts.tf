# One account per role, unless an existing one is given: the worker runs jobs, the
# application enqueues them, the scheduler's OAuth token publishes due delayed jobs.

resource "google_service_account" "worker" {
  count = var.worker_service_account == null ? 1 : 0

  project      = var.project
  account_id   = "${local.service_account_prefix}worker"
  display_name = "pubsub-jobs worker"
  description  = "Runs jobs: pulls the worker subscriptions, publishes dead letters and re-enqueued jobs."

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "app" {
  count = var.app_service_account == null ? 1 : 0

  project      = var.project
  account_id   = "${local.service_account_prefix}app"
  display_name = "pubsub-jobs application"
  description  = "Enqueues jobs: publishes to the queues' topics and schedules delayed jobs."

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "scheduler" {
  count = var.enable_delayed_jobs && var.scheduler_service_account == null ? 1 : 0

  project      = var.project
  account_id   = "${local.service_account_prefix}scheduler"
  display_name = "pubsub-jobs scheduler"
  description  = "Cloud Tasks publishes due delayed jobs to the queues' topics with this account's token."

  depends_on = [google_project_service.enabled]
}

locals {
  worker_email    = var.worker_service_account != null ? var.worker_service_account : one(google_service_account.worker[*].email)
  app_email       = var.app_service_account != null ? var.app_service_account : one(google_service_account.app[*].email)
  scheduler_email = var.scheduler_service_account != null ? var.scheduler_service_account : one(google_service_account.scheduler[*].email)

  worker_member    = "serviceAccount:${local.worker_email}"
  app_member       = "serviceAccount:${local.app_email}"
  scheduler_member = local.scheduler_email == null ? null : "serviceAccount:${local.scheduler_email}"
}
