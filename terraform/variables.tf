# Inputs of the pubsub-jobs module. The queue options mirror
# pubsub_jobs.settings.QueueOptions, durations in seconds; `pubsub-jobs terraform-vars`
# writes `prefix`, `queues`, `cloud_tasks_queue` and `cloud_tasks_location` from the
# application's own settings. Each validation checks one variable (Terraform before 1.9
# cannot look at two); what takes two is refused by preconditions (settings.tf, queues.tf).

variable "project" {
  description = "Google Cloud project id that holds the queues."
  type        = string
}

variable "project_number" {
  description = "The project's number; null reads it (data.google_project) at plan time, which needs the Resource Manager API enabled in your credentials' project."
  type        = string
  default     = null

  validation {
    condition     = var.project_number == null ? true : can(regex("^[0-9]+$", var.project_number))
    error_message = "project_number is the project's number (digits only), not its id."
  }
}

variable "region" {
  description = "Region of the Cloud Tasks queue and the Cloud Scheduler jobs, unless cloud_tasks_location or scheduler_region say otherwise."
  type        = string
}

variable "prefix" {
  description = "Prefix of every topic, subscription and Cloud Scheduler job name (PUBSUB_JOBS_PREFIX)."
  type        = string
  default     = "jobs-"

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9._~+%-]*$", var.prefix)) && lower(substr(var.prefix, 0, 4)) != "goog"
    error_message = "A Pub/Sub name starts with a letter, holds only letters, digits and - _ . ~ + %, and does not start with \"goog\"."
  }
}

variable "queues" {
  description = <<-EOT
    Queues by name, each with options that override queue_defaults (durations in seconds);
    ordered and exactly_once, as queue(...) declares them in code (Pub/Sub message ordering and
    exactly-once delivery on the worker subscription, which Pub/Sub cannot change in place:
    changing either replaces the subscription, and its undelivered messages with it);
    rate_limit, as queue(..., rate_limit=N) declares it: the jobs of the queue go through its own
    Cloud Tasks queue <prefix><queue>-rate, which publishes at most N a second (above 0, at
    most 500; needs enable_delayed_jobs); and
    push_endpoint: null (the default) for a pull queue, which workers pull; for a push queue the
    base HTTPS URL of the push server (`pubsub-jobs push-server`), to which Pub/Sub POSTs each
    message at <push_endpoint>/push/<queue> with an OIDC token of the push account. It must be
    known at plan time: a custom domain, or a Cloud Run service's deterministic URL
    https://SERVICE-PROJECT_NUMBER.REGION.run.app (see examples/cloud-run-push).
  EOT
  type = map(object({
    max_delivery_attempts = optional(number)
    min_retry_backoff     = optional(number)
    max_retry_backoff     = optional(number)
    ack_deadline_seconds  = optional(number)
    message_retention     = optional(number)
    dead_letter_retention = optional(number)
    push_endpoint         = optional(string)
    ordered               = optional(bool, false)
    exactly_once          = optional(bool, false)
    rate_limit            = optional(number)
  }))

  validation {
    condition     = alltrue([for queue in keys(var.queues) : can(regex("^[A-Za-z0-9._~+%-]+$", queue))])
    error_message = "A queue name holds only letters, digits and - _ . ~ + % (it ends Pub/Sub names)."
  }
  validation {
    condition     = alltrue([for o in values(var.queues) : o.max_delivery_attempts == null ? true : o.max_delivery_attempts >= 5 && o.max_delivery_attempts <= 100])
    error_message = "max_delivery_attempts is between 5 and 100."
  }
  validation {
    condition = alltrue(flatten([for o in values(var.queues) : [
      for b in [o.min_retry_backoff, o.max_retry_backoff] : b == null ? true : b >= 0 && b <= 600
    ]]))
    error_message = "A retry backoff is between 0 and 600 seconds."
  }
  validation {
    condition = alltrue([
      for o in values(var.queues) : o.min_retry_backoff == null || o.max_retry_backoff == null ? true : o.min_retry_backoff <= o.max_retry_backoff
    ])
    error_message = "A queue's min_retry_backoff is at most its max_retry_backoff."
  }
  validation {
    condition     = alltrue([for o in values(var.queues) : o.ack_deadline_seconds == null ? true : o.ack_deadline_seconds >= 10 && o.ack_deadline_seconds <= 600])
    error_message = "ack_deadline_seconds is between 10 and 600."
  }
  validation {
    condition = alltrue(flatten([for o in values(var.queues) : [
      for r in [o.message_retention, o.dead_letter_retention] : r == null ? true : r >= 600 && r <= 604800
    ]]))
    error_message = "A subscription keeps messages between 600 seconds (10 minutes) and 604800 seconds (7 days)."
  }
  validation {
    condition     = alltrue([for o in values(var.queues) : o.rate_limit == null ? true : o.rate_limit > 0 && o.rate_limit <= 500])
    error_message = "A queue's rate_limit is above 0 and at most 500 jobs a second (Cloud Tasks' limit)."
  }
  validation {
    condition     = alltrue([for o in values(var.queues) : o.push_endpoint == null ? true : can(regex("^https://[^/?#[:space:]]+(/[^?#[:space:]]*)?$", o.push_endpoint))])
    error_message = "A push_endpoint is the push server's base URL: https://HOST[/PATH], without query or fragment (the module appends /push/QUEUE)."
  }
}

variable "queue_defaults" {
  description = "Options of queues that do not set them; unset ones take QueueOptions' defaults."
  type = object({
    max_delivery_attempts = optional(number)
    min_retry_backoff     = optional(number)
    max_retry_backoff     = optional(number)
    ack_deadline_seconds  = optional(number)
    message_retention     = optional(number)
    dead_letter_retention = optional(number)
  })
  default = {}

  validation {
    condition     = var.queue_defaults.max_delivery_attempts == null ? true : var.queue_defaults.max_delivery_attempts >= 5 && var.queue_defaults.max_delivery_attempts <= 100
    error_message = "max_delivery_attempts is between 5 and 100."
  }
  validation {
    condition = alltrue([
      for b in [var.queue_defaults.min_retry_backoff, var.queue_defaults.max_retry_backoff] : b == null ? true : b >= 0 && b <= 600
    ])
    error_message = "A retry backoff is between 0 and 600 seconds."
  }
  validation {
    condition     = var.queue_defaults.min_retry_backoff == null || var.queue_defaults.max_retry_backoff == null ? true : var.queue_defaults.min_retry_backoff <= var.queue_defaults.max_retry_backoff
    error_message = "queue_defaults' min_retry_backoff is at most its max_retry_backoff."
  }
  validation {
    condition     = var.queue_defaults.ack_deadline_seconds == null ? true : var.queue_defaults.ack_deadline_seconds >= 10 && var.queue_defaults.ack_deadline_seconds <= 600
    error_message = "ack_deadline_seconds is between 10 and 600."
  }
  validation {
    condition = alltrue([
      for r in [var.queue_defaults.message_retention, var.queue_defaults.dead_letter_retention] : r == null ? true : r >= 600 && r <= 604800
    ])
    error_message = "A subscription keeps messages between 600 seconds (10 minutes) and 604800 seconds (7 days)."
  }
}

variable "labels" {
  description = "Labels put on topics and subscriptions."
  type        = map(string)
  default     = {}
}

variable "enable_apis" {
  description = "Enable the APIs the queues need (Pub/Sub, IAM, Resource Manager, and Cloud Tasks and Cloud Scheduler when used); they stay enabled on destroy."
  type        = bool
  default     = true
}

# Delayed jobs (Cloud Tasks)

variable "enable_delayed_jobs" {
  description = "Create the Cloud Tasks queue and the account that publishes due jobs, for using(delay=...), using(run_at=...), retry_wait and Retry(delay=...)."
  type        = bool
  default     = true
}

variable "cloud_tasks_queue" {
  description = "Name of the Cloud Tasks queue for delayed jobs (PUBSUB_JOBS_CLOUD_TASKS_QUEUE)."
  type        = string
  default     = "jobs-delayed"

  validation {
    condition     = can(regex("^[A-Za-z0-9-]{1,100}$", var.cloud_tasks_queue))
    error_message = "A Cloud Tasks queue name is 1 to 100 letters, digits and hyphens."
  }
}

variable "cloud_tasks_location" {
  description = "Location of the Cloud Tasks queue (PUBSUB_JOBS_CLOUD_TASKS_LOCATION); null means var.region."
  type        = string
  default     = null
}

variable "cloud_tasks_max_dispatches_per_second" {
  description = "How many due jobs per second Cloud Tasks publishes at most (above 0, at most 500); null keeps Cloud Tasks' default (500)."
  type        = number
  default     = null

  validation {
    condition     = var.cloud_tasks_max_dispatches_per_second == null ? true : var.cloud_tasks_max_dispatches_per_second > 0 && var.cloud_tasks_max_dispatches_per_second <= 500
    error_message = "cloud_tasks_max_dispatches_per_second is above 0 and at most 500 (Cloud Tasks' limit)."
  }
}

variable "cloud_tasks_max_attempts" {
  description = "How often Cloud Tasks tries to publish a due job before giving up (-1: forever)."
  type        = number
  default     = 100

  validation {
    condition     = var.cloud_tasks_max_attempts >= -1 && floor(var.cloud_tasks_max_attempts) == var.cloud_tasks_max_attempts
    error_message = "cloud_tasks_max_attempts is a whole number of at least -1 (-1: unlimited attempts)."
  }
}

variable "cloud_tasks_log_sampling_ratio" {
  description = "Fraction of Cloud Tasks operations written to Cloud Logging, 0 (none, Cloud Tasks' default) to 1."
  type        = number
  default     = 0

  validation {
    condition     = var.cloud_tasks_log_sampling_ratio >= 0 && var.cloud_tasks_log_sampling_ratio <= 1
    error_message = "The sampling ratio is between 0 and 1."
  }
}

# Service accounts: null creates one named <service_account_prefix><role>.

variable "service_account_prefix" {
  description = "Prefix of the account ids of created service accounts (<prefix>worker, app, scheduler, push); null means var.prefix. Account ids are 6 to 30 lowercase letters, digits and hyphens."
  type        = string
  default     = null

  validation {
    condition     = var.service_account_prefix == null ? true : can(regex("^[a-z][-a-z0-9]{2,20}$", var.service_account_prefix))
    error_message = "service_account_prefix is 3 to 21 lowercase letters, digits and hyphens, starting with a letter, so that <prefix>scheduler and <prefix>app are valid account ids (6 to 30 characters)."
  }
}

variable "worker_service_account" {
  description = "Email of an existing service account for the worker (and the push server); null creates <prefix>worker."
  type        = string
  default     = null

  validation {
    condition     = var.worker_service_account == null ? true : can(regex("^[^@[:space:]]+@[^@[:space:]]+$", var.worker_service_account))
    error_message = "worker_service_account is a service account's email, not its id."
  }
}

variable "app_service_account" {
  description = "Email of an existing service account for the application that enqueues jobs; null creates <prefix>app."
  type        = string
  default     = null

  validation {
    condition     = var.app_service_account == null ? true : can(regex("^[^@[:space:]]+@[^@[:space:]]+$", var.app_service_account))
    error_message = "app_service_account is a service account's email, not its id."
  }
}

variable "scheduler_service_account" {
  description = "Email of an existing service account whose OAuth token publishes due delayed jobs; null creates <prefix>scheduler."
  type        = string
  default     = null

  validation {
    condition     = var.scheduler_service_account == null ? true : can(regex("^[^@[:space:]]+@[^@[:space:]]+$", var.scheduler_service_account))
    error_message = "scheduler_service_account is a service account's email, not its id."
  }
}

variable "worker_enqueues_delayed_jobs" {
  description = "Let the worker's account schedule delayed jobs, as the worker itself does for retry_wait and Retry(delay=...) and jobs that enqueue jobs with a delay. With false such a retry is refused (PermissionDenied), nacked, and ends in the dead-letter topic."
  type        = bool
  default     = true
}

variable "app_cancels_jobs" {
  description = "Let the application's account cancel waiting jobs (EnqueuedJob.cancel(), pubsub_jobs.cancel): roles/cloudtasks.taskDeleter on the delayed-jobs queue and every rate-limited queue's Cloud Tasks queue."
  type        = bool
  default     = true
}

variable "worker_cancels_jobs" {
  description = "Let the worker's account cancel waiting jobs too, for jobs that cancel other jobs: roles/cloudtasks.taskDeleter on the same queues."
  type        = bool
  default     = false
}

variable "job_cancellers" {
  description = "Further members (\"user:ops@example.com\", \"group:...\") who cancel waiting jobs with `pubsub-jobs cancel QUEUE JOB_ID`: roles/cloudtasks.taskDeleter on the same queues."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for member in var.job_cancellers : can(regex("^(user|group|serviceAccount|domain|principal|principalSet):.+$", member))])
    error_message = "A member is \"user:EMAIL\", \"group:EMAIL\", \"serviceAccount:EMAIL\", \"domain:DOMAIN\", \"principal:...\" or \"principalSet:...\"."
  }
}

variable "dead_letter_operators" {
  description = "Members (\"user:ops@example.com\", \"group:...\") who inspect and retry dead jobs with `pubsub-jobs dead`."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for member in var.dead_letter_operators : can(regex("^(user|group|serviceAccount|domain|principal|principalSet):.+$", member))])
    error_message = "A member is \"user:EMAIL\", \"group:EMAIL\", \"serviceAccount:EMAIL\", \"domain:DOMAIN\", \"principal:...\" or \"principalSet:...\"."
  }
}

# Push delivery: for queues with a push_endpoint.

variable "push_service_account" {
  description = "Email of an existing service account whose OIDC tokens Pub/Sub sends to the push endpoints (PUBSUB_JOBS_PUSH_SERVICE_ACCOUNT); null creates <prefix>push when a queue has a push_endpoint."
  type        = string
  default     = null

  validation {
    condition     = var.push_service_account == null ? true : can(regex("^[^@[:space:]]+@[^@[:space:]]+$", var.push_service_account))
    error_message = "push_service_account is a service account's email, not its id."
  }
}

variable "push_audience" {
  description = "Audience of the push tokens (PUBSUB_JOBS_PUSH_AUDIENCE); null means each push queue's push_endpoint, the service's base URL."
  type        = string
  default     = null

  validation {
    condition     = var.push_audience == null ? true : length(var.push_audience) > 0
    error_message = "push_audience is null (the push endpoint's base URL) or a non-empty string."
  }
}

variable "push_cloud_run_service" {
  description = "Name of the Cloud Run service behind the push endpoints: the push account gets roles/run.invoker on it. null grants nothing (an endpoint outside Cloud Run)."
  type        = string
  default     = null

  validation {
    condition     = var.push_cloud_run_service == null ? true : can(regex("^[a-z]([-a-z0-9]{0,47}[a-z0-9])?$", var.push_cloud_run_service))
    error_message = "A Cloud Run service name is 1 to 49 lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "push_cloud_run_location" {
  description = "Region of push_cloud_run_service; null means var.region."
  type        = string
  default     = null
}

# Periodic jobs (Cloud Scheduler)

variable "schedules" {
  description = <<-EOT
    Periodic jobs, as `pubsub-jobs terraform-vars` writes them: a map from schedule name to
    {
      queue      = the queue whose topic the job's message is published to (a key of queues)
      cron       = a five-field unix-cron schedule, e.g. "0 2 * * *"
      time_zone  = a tz database name, e.g. "Europe/Berlin" or "UTC"
      data       = the message data, base64-encoded (Cloud Scheduler's pubsub_target.data)
      attributes = the message attributes: at least job_name, queue_name (= queue),
                   wire_version and schedule (the schedule's name)
    }
    Each becomes the Cloud Scheduler job <prefix><name>, where every character outside
    A-Z a-z 0-9 _ - becomes "-" (Cloud Scheduler's job-name rules).
  EOT
  type = map(object({
    queue      = string
    cron       = string
    time_zone  = string
    data       = string
    attributes = map(string)
  }))
  default = {}

  validation {
    condition     = alltrue([for name in keys(var.schedules) : length(name) >= 1 && length(name) <= 400])
    error_message = "A schedule name has 1 to 400 characters."
  }
  validation {
    condition = length(distinct([
      for name in keys(var.schedules) : replace(name, "/[^A-Za-z0-9_-]/", "-")
    ])) == length(var.schedules)
    error_message = "Two schedule names become the same Cloud Scheduler job name once characters outside A-Z a-z 0-9 _ - are replaced by \"-\": rename one."
  }
  validation {
    condition     = alltrue([for s in values(var.schedules) : can(regex("^[[:space:]]*[0-9A-Za-z*/,?-]+([[:space:]]+[0-9A-Za-z*/,?-]+){4}[[:space:]]*$", s.cron))])
    error_message = "cron is a five-field unix-cron schedule (minute hour day-of-month month day-of-week), e.g. \"*/15 * * * *\"."
  }
  validation {
    condition     = alltrue([for s in values(var.schedules) : can(regex("^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$", s.time_zone))])
    error_message = "time_zone is a tz database name such as \"UTC\" or \"Europe/Berlin\"."
  }
  validation {
    condition     = alltrue([for s in values(var.schedules) : length(s.data) > 0 && can(regex("^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$", s.data))])
    error_message = "data is the message data in standard base64 (Cloud Scheduler's pubsub_target.data), not empty: base64encode(jsonencode({args = [], kwargs = {}}))."
  }
  validation {
    condition = alltrue([
      for s in values(var.schedules) : alltrue([for key in ["job_name", "queue_name", "wire_version", "schedule"] : contains(keys(s.attributes), key)])
    ])
    error_message = "A schedule's attributes hold at least job_name, queue_name, wire_version and schedule, which the worker needs to run its job."
  }
  validation {
    condition     = alltrue([for s in values(var.schedules) : lookup(s.attributes, "queue_name", s.queue) == s.queue])
    error_message = "A schedule's queue_name attribute is its queue."
  }
  validation {
    condition = alltrue([
      for s in values(var.schedules) : length(s.attributes) <= 100 && alltrue([
        for key, value in s.attributes : length(key) >= 1 && length(key) <= 256 && length(value) <= 1024 && lower(substr(key, 0, 4)) != "goog"
      ])
    ])
    error_message = "Pub/Sub takes at most 100 attributes, keys of 1 to 256 characters not starting with \"goog\", values of at most 1024."
  }
}

variable "scheduler_region" {
  description = "Region of the Cloud Scheduler jobs; null means var.region."
  type        = string
  default     = null
}

variable "schedule_retry_count" {
  description = "How often Cloud Scheduler retries a failed publish of a scheduled job (0 to 5), 5 s to 1 min apart; a retry of one slot runs the job with the same job id."
  type        = number
  default     = 3

  validation {
    condition     = var.schedule_retry_count >= 0 && var.schedule_retry_count <= 5 && floor(var.schedule_retry_count) == var.schedule_retry_count
    error_message = "schedule_retry_count is a whole number from 0 to 5 (Cloud Scheduler's limit)."
  }
}
