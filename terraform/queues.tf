# Names and policies of every queue, computed from variables only: the same names
# and specs as pubsub_jobs/topology.py (`pubsub-jobs bootstrap`). tests/test_terraform.py
# evaluates this file with variables.tf, without a provider, and compares the result
# with what bootstrap creates on the emulator.

locals {
  # Defaults of pubsub_jobs.settings.QueueOptions, durations in seconds.
  queue_option_defaults = {
    max_delivery_attempts = 5
    min_retry_backoff     = 10
    max_retry_backoff     = 600
    ack_deadline_seconds  = 60
    message_retention     = 604800
    dead_letter_retention = 604800
  }

  # Dead-letter subscriptions hold jobs for a person to look at
  # (DEAD_LETTER_ACK_DEADLINE in pubsub_jobs/topology.py).
  dead_letter_ack_deadline_seconds = 60

  # Each option of each queue: the queue's own value, else queue_defaults, else the default.
  queue_options = {
    for queue, options in var.queues : queue => {
      for key, default in local.queue_option_defaults :
      key => coalesce(options[key], var.queue_defaults[key], default)
    }
  }

  queues = {
    for queue, o in local.queue_options : queue => {
      topic                            = "${var.prefix}${queue}"
      worker_subscription              = "${var.prefix}${queue}-worker"
      dead_letter_topic                = "${var.prefix}${queue}-dead-letter"
      dead_letter_subscription         = "${var.prefix}${queue}-dead-letter"
      ack_deadline_seconds             = o.ack_deadline_seconds
      message_retention_duration       = "${o.message_retention}s"
      max_delivery_attempts            = o.max_delivery_attempts
      minimum_backoff                  = "${o.min_retry_backoff}s"
      maximum_backoff                  = "${o.max_retry_backoff}s"
      dead_letter_ack_deadline_seconds = local.dead_letter_ack_deadline_seconds
      dead_letter_retention_duration   = "${o.dead_letter_retention}s"
    }
  }

  # The resolved options as PUBSUB_JOBS_QUEUES, so the worker's settings match the
  # subscriptions (it compares delivery attempts with max_delivery_attempts).
  queues_setting = jsonencode(local.queue_options)
}
