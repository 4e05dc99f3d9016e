# Inputs of the pubsub-jobs module. The queue options mirror
# pubsub_jobs.settings.QueueOptions, durations in seconds; `pubsub-jobs terraform-vars`
# writes `prefix`, `queues`, `cloud_tasks_queue` and `cloud_tasks_location` from the
# application's own settings.

variable "project" {
  description = "Google Cloud project id that holds the queues."
  type        = string
}

variable "region" {
  description = "Region of the Cloud Tasks queue for delayed jobs, unless cloud_tasks_location says otherwise."
  type        = string
}

variable "prefix" {
  description = "Prefix of every topic and subscription name (PUBSUB_JOBS_PREFIX)."
  type        = string
  default     = "jobs-"

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9._~+%-]*$", var.prefix)) && lower(substr(var.prefix, 0, 4)) != "goog"
    error_message = "A Pub/Sub name starts with a letter, holds only letters, digits and - _ . ~ + %, and does not start with \"goog\"."
  }
}

variable "queues" {
  description = "Queues by name, each with options that override queue_defaults (durations in seconds)."
  type = map(object({
    max_delivery_attempts = optional(number)
    min_retry_backoff     = optional(number)
    max_retry_backoff     = optional(number)
    ack_deadline_seconds  = optional(number)
    message_retention     = optional(number)
    dead_letter_retention = optional(number)
  }))

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
    condition     = alltrue([for o in values(var.queues) : o.ack_deadline_seconds == null ? true : o.ack_deadline_seconds >= 10 && o.ack_deadline_seconds <= 600])
    error_message = "ack_deadline_seconds is between 10 and 600."
  }
  validation {
    condition = alltrue(flatten([for o in values(var.queues) : [
      for r in [o.message_retention, o.dead_letter_retention] : r == null ? true : r >= 600 && r <= 604800
    ]]))
    error_message = "A subscription keeps messages between 600 seconds (10 minutes) and 604800 seconds (7 days)."
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
  description = "Enable the APIs the queues need (Pub/Sub, Cloud Tasks, IAM, Resource Manager); they stay enabled on destroy."
  type        = bool
  default     = true
}

# Delayed jobs (Cloud Tasks)

variable "enable_delayed_jobs" {
  description = "Create the Cloud Tasks queue and the account that publishes due jobs, for using(delay=...) and using(run_at=...)."
  type        = bool
  default     = true
}

variable "cloud_tasks_queue" {
  description = "Name of the Cloud Tasks queue for delayed jobs (PUBSUB_JOBS_CLOUD_TASKS_QUEUE)."
  type        = string
  default     = "jobs-delayed"
}

variable "cloud_tasks_location" {
  description = "Location of the Cloud Tasks queue (PUBSUB_JOBS_CLOUD_TASKS_LOCATION); null means var.region."
  type        = string
  default     = null
}

variable "cloud_tasks_max_dispatches_per_second" {
  description = "How many due jobs per second Cloud Tasks publishes at most (at most 500); null keeps Cloud Tasks' default."
  type        = number
  default     = null
}

variable "cloud_tasks_max_attempts" {
  description = "How often Cloud Tasks tries to publish a due job before giving up (-1: forever)."
  type        = number
  default     = 100
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
  description = "Prefix of the account ids of created service accounts; null means var.prefix (6 to 30 characters in all)."
  type        = string
  default     = null
}

variable "worker_service_account" {
  description = "Email of an existing service account for the worker; null creates <prefix>worker."
  type        = string
  default     = null
}

variable "app_service_account" {
  description = "Email of an existing service account for the application that enqueues jobs; null creates <prefix>app."
  type        = string
  default     = null
}

variable "scheduler_service_account" {
  description = "Email of an existing service account whose OAuth token publishes due delayed jobs; null creates <prefix>scheduler."
  type        = string
  default     = null
}

variable "worker_enqueues_delayed_jobs" {
  description = "Let the worker's account schedule delayed jobs too (jobs that enqueue jobs with a delay)."
  type        = bool
  default     = false
}

variable "dead_letter_operators" {
  description = "Members (\"user:ops@example.com\", \"group:...\") who inspect and retry dead jobs with `pubsub-jobs dead`."
  type        = list(string)
  default     = []
}
