# One account per role, unless an existing one is given: the worker runs jobs (pulled, or
# pushed to the push server, which runs as the same account), the application enqueues them,
# the scheduler's OAuth token publishes due delayed jobs, and Pub/Sub signs push requests
# with the push account's OIDC tokens. Ids come from local.service_account_ids (settings.tf).

resource "google_service_account" "worker" {
  count = var.worker_service_account == null ? 1 : 0

  project      = var.project
  account_id   = local.service_account_ids.worker
  display_name = "pubsub-jobs worker"
  description  = "Runs jobs: pulls the worker subscriptions, publishes dead letters and re-enqueued jobs."

  lifecycle {
    precondition {
      condition     = length(local.service_account_id_problems.worker) == 0
      error_message = "Worker account: ${join(" ", local.service_account_id_problems.worker)}"
    }
  }

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "app" {
  count = var.app_service_account == null ? 1 : 0

  project      = var.project
  account_id   = local.service_account_ids.app
  display_name = "pubsub-jobs application"
  description  = "Enqueues jobs: publishes to the queues' topics and schedules delayed jobs."

  lifecycle {
    precondition {
      condition     = length(local.service_account_id_problems.app) == 0
      error_message = "Application account: ${join(" ", local.service_account_id_problems.app)}"
    }
  }

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "scheduler" {
  count = var.enable_delayed_jobs && var.scheduler_service_account == null ? 1 : 0

  project      = var.project
  account_id   = local.service_account_ids.scheduler
  display_name = "pubsub-jobs scheduler"
  description  = "Cloud Tasks publishes due delayed jobs to the queues' topics with this account's token."

  lifecycle {
    precondition {
      condition     = length(local.service_account_id_problems.scheduler) == 0
      error_message = "Scheduler account: ${join(" ", local.service_account_id_problems.scheduler)}"
    }
  }

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "push" {
  count = length(local.push_bases) > 0 && var.push_service_account == null ? 1 : 0

  project      = var.project
  account_id   = local.service_account_ids.push
  display_name = "pubsub-jobs push"
  description  = "Pub/Sub signs the requests of push subscriptions with this account's OIDC tokens; the push server checks them."

  lifecycle {
    precondition {
      condition     = length(local.service_account_id_problems.push) == 0
      error_message = "Push account: ${join(" ", local.service_account_id_problems.push)}"
    }
  }

  depends_on = [google_project_service.enabled]
}

locals {
  worker_email    = var.worker_service_account != null ? var.worker_service_account : one(google_service_account.worker[*].email)
  app_email       = var.app_service_account != null ? var.app_service_account : one(google_service_account.app[*].email)
  scheduler_email = var.scheduler_service_account != null ? var.scheduler_service_account : one(google_service_account.scheduler[*].email)
  push_email      = var.push_service_account != null ? var.push_service_account : one(google_service_account.push[*].email)

  worker_member    = "serviceAccount:${local.worker_email}"
  app_member       = "serviceAccount:${local.app_email}"
  scheduler_member = local.scheduler_email == null ? null : "serviceAccount:${local.scheduler_email}"
  push_member      = local.push_email == null ? null : "serviceAccount:${local.push_email}"
}
