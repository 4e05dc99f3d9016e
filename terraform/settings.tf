# Values computed from variables alone, and the problems that involve two variables, which a
# variable's own validation cannot see before Terraform 1.9: preconditions refuse them at plan
# time with these messages. Like queues.tf, this file needs no provider, so the tests
# (tests/terraform/) evaluate it with Terraform itself.

locals {
  cloud_tasks_location    = var.cloud_tasks_location != null ? var.cloud_tasks_location : var.region
  scheduler_region        = var.scheduler_region != null ? var.scheduler_region : var.region
  push_cloud_run_location = var.push_cloud_run_location != null ? var.push_cloud_run_location : var.region

  apis = concat(
    ["pubsub.googleapis.com", "iam.googleapis.com", "cloudresourcemanager.googleapis.com"],
    var.enable_delayed_jobs ? ["cloudtasks.googleapis.com"] : [],
    length(var.schedules) > 0 ? ["cloudscheduler.googleapis.com"] : [],
  )

  # Who may create Cloud Tasks tasks: the application (using(delay=...)) and, unless told
  # otherwise, the worker, which reschedules retry_wait and Retry(delay=...) through Cloud Tasks.
  delayed_job_schedulers = var.enable_delayed_jobs ? concat(["app"], var.worker_enqueues_delayed_jobs ? ["worker"] : []) : []

  # Which of the module's accounts may cancel waiting jobs (delete their Cloud Tasks tasks):
  # the application unless told otherwise, the worker when asked (jobs that cancel jobs).
  job_canceller_roles = var.enable_delayed_jobs ? concat(var.app_cancels_jobs ? ["app"] : [], var.worker_cancels_jobs ? ["worker"] : []) : []

  # Account ids of the accounts the module may create, and what is wrong with each (an empty
  # list when nothing): Google takes 6 to 30 of [a-z0-9-], starting with a letter.
  service_account_prefix = var.service_account_prefix != null ? var.service_account_prefix : var.prefix
  service_account_ids = {
    for role in ["worker", "app", "scheduler", "push"] : role => "${local.service_account_prefix}${role}"
  }
  service_account_id_problems = {
    for role, id in local.service_account_ids : role => can(regex("^[a-z][-a-z0-9]{4,28}[a-z0-9]$", id)) ? [] : [
      "\"${id}\" is not a valid account id (6 to 30 lowercase letters, digits and hyphens, starting with a letter).",
      var.service_account_prefix == null ? "It comes from prefix \"${var.prefix}\": set service_account_prefix (3 to 21 of a-z 0-9 -)." : "Change service_account_prefix.",
    ]
  }

  # Cloud Scheduler job of each schedule: <prefix><name>, every character outside
  # A-Z a-z 0-9 _ - replaced by "-".
  schedules = {
    for name, s in var.schedules : name => {
      job_name   = replace("${var.prefix}${name}", "/[^A-Za-z0-9_-]/", "-")
      queue      = s.queue
      cron       = s.cron
      time_zone  = s.time_zone
      data       = s.data
      attributes = s.attributes
    }
  }
  schedule_problems = {
    for name, s in local.schedules : name => compact([
      contains(keys(var.queues), s.queue) ? "" : "it publishes to queue \"${s.queue}\", which is not in queues (${join(", ", keys(var.queues))}).",
      length(s.job_name) <= 500 ? "" : "its Cloud Scheduler job name \"${s.job_name}\" is over 500 characters.",
    ])
  }
}
