# Names and policies of every queue, computed from variables only: the same names
# and specs as pubsub_jobs/admin/topology.py (`pubsub-jobs bootstrap`). tests/terraform/test_module.py
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
  # (DEAD_LETTER_ACK_DEADLINE in pubsub_jobs/admin/topology.py).
  dead_letter_ack_deadline_seconds = 60

  # A push subscription waits this long for the push server's answer (DESIGN.md, "Push delivery").
  push_ack_deadline_seconds = 600

  # Each option of each queue: the queue's own value, else queue_defaults, else the default.
  queue_options = {
    for queue, options in var.queues : queue => {
      for key, default in local.queue_option_defaults :
      key => coalesce(options[key], var.queue_defaults[key], default)
    }
  }

  # The push server's base URL of each push queue (no trailing slash); pull queues are absent.
  push_bases = {
    for queue, options in var.queues : queue => trimsuffix(options.push_endpoint, "/")
    if options.push_endpoint != null
  }

  queues = {
    for queue, o in local.queue_options : queue => {
      topic                            = "${var.prefix}${queue}"
      worker_subscription              = "${var.prefix}${queue}-worker"
      dead_letter_topic                = "${var.prefix}${queue}-dead-letter"
      dead_letter_subscription         = "${var.prefix}${queue}-dead-letter"
      ack_deadline_seconds             = contains(keys(local.push_bases), queue) ? local.push_ack_deadline_seconds : o.ack_deadline_seconds
      message_retention_duration       = "${o.message_retention}s"
      max_delivery_attempts            = o.max_delivery_attempts
      minimum_backoff                  = "${o.min_retry_backoff}s"
      maximum_backoff                  = "${o.max_retry_backoff}s"
      dead_letter_ack_deadline_seconds = local.dead_letter_ack_deadline_seconds
      dead_letter_retention_duration   = "${o.dead_letter_retention}s"
      # Push queues only (null for pull queues): where Pub/Sub POSTs, and the token's audience.
      push_endpoint = contains(keys(local.push_bases), queue) ? "${local.push_bases[queue]}/push/${queue}" : null
      push_audience = contains(keys(local.push_bases), queue) ? coalesce(var.push_audience, local.push_bases[queue]) : null
      # Declared in code with queue(..., ordered=True, exactly_once=True).
      enable_message_ordering      = var.queues[queue].ordered
      enable_exactly_once_delivery = var.queues[queue].exactly_once
      # Declared in code with queue(..., rate_limit=N): its jobs go through the Cloud Tasks
      # queue <prefix>Q-rate (Settings.rate_queue), N a second at most; null otherwise.
      rate_limit = var.queues[queue].rate_limit
      rate_queue = var.queues[queue].rate_limit == null ? null : "${var.prefix}${queue}-rate"
    }
  }

  # The rate-limited queues, each with its Cloud Tasks queue (rate.tf).
  rate_queues = { for queue, spec in local.queues : queue => spec if spec.rate_limit != null }

  # PUBSUB_JOBS_PUSH_AUDIENCE: push_audience, else the one base URL all push queues share
  # (null without push queues, or when they push to several URLs without push_audience).
  push_audience = length(local.push_bases) == 0 ? null : var.push_audience != null ? var.push_audience : (
    length(distinct(values(local.push_bases))) == 1 ? values(local.push_bases)[0] : null
  )

  # What is wrong with each queue once queues, queue_defaults and the defaults are combined
  # (an empty list when nothing); google_pubsub_subscription.worker refuses it at plan time.
  queue_problems = {
    for queue, o in local.queue_options : queue => compact([
      o.min_retry_backoff <= o.max_retry_backoff ? "" : "min_retry_backoff (${o.min_retry_backoff} s) is above max_retry_backoff (${o.max_retry_backoff} s) once queues, queue_defaults and the defaults are combined.",
      var.queues[queue].exactly_once && var.queues[queue].push_endpoint != null ? "exactly_once delivery is offered on pull subscriptions only: drop push_endpoint (run pubsub-jobs worker) or exactly_once." : "",
      var.queues[queue].rate_limit != null && !var.enable_delayed_jobs ? "rate_limit needs Cloud Tasks, whose queue ${var.prefix}${queue}-rate publishes the jobs with the scheduler account's token: set enable_delayed_jobs = true, or drop rate_limit." : "",
      var.queues[queue].rate_limit == null || can(regex("^[A-Za-z0-9-]{1,100}$", "${var.prefix}${queue}-rate")) ? "" : "its Cloud Tasks queue name \"${var.prefix}${queue}-rate\" is not 1 to 100 letters, digits and hyphens: choose a prefix and queue name of those only.",
    ])
  }

  # The resolved options as PUBSUB_JOBS_QUEUES, so the worker's settings match the
  # subscriptions (it compares delivery attempts with max_delivery_attempts).
  queues_setting = jsonencode(local.queue_options)
}
