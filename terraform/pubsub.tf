# The Pub/Sub resources of each queue, as `pubsub-jobs bootstrap` creates them.
# Every attribute is a value of local.queues (queues.tf) or a literal, so that the
# test can evaluate it (the push account's email aside).

resource "google_pubsub_topic" "queue" {
  for_each = local.queues

  project = var.project
  name    = each.value.topic
  labels  = var.labels

  depends_on = [google_project_service.enabled]
}

resource "google_pubsub_topic" "dead_letter" {
  for_each = local.queues

  project = var.project
  name    = each.value.dead_letter_topic
  labels  = var.labels

  depends_on = [google_project_service.enabled]
}

resource "google_pubsub_subscription" "worker" {
  for_each = local.queues

  project                    = var.project
  name                       = each.value.worker_subscription
  topic                      = google_pubsub_topic.queue[each.key].id
  ack_deadline_seconds       = each.value.ack_deadline_seconds
  message_retention_duration = each.value.message_retention_duration
  labels                     = var.labels

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter[each.key].id
    max_delivery_attempts = each.value.max_delivery_attempts
  }

  retry_policy {
    minimum_backoff = each.value.minimum_backoff
    maximum_backoff = each.value.maximum_backoff
  }

  # Declared in code (queue(..., ordered=True, exactly_once=True)); Pub/Sub cannot change
  # either in place, so changing one replaces the subscription.
  enable_message_ordering      = each.value.enable_message_ordering
  enable_exactly_once_delivery = each.value.enable_exactly_once_delivery

  # A push queue (a push_endpoint in var.queues): the same subscription, policies and name,
  # but Pub/Sub POSTs each message to the push server's /push/QUEUE with an OIDC token of
  # the push account, and waits 600 s for its answer. Changing a queue between pull and
  # push updates the subscription in place.
  dynamic "push_config" {
    for_each = each.value.push_endpoint == null ? [] : [each.value]
    content {
      push_endpoint = push_config.value.push_endpoint

      oidc_token {
        service_account_email = local.push_email
        audience              = push_config.value.push_audience
      }
    }
  }

  # An empty ttl: the subscription never expires, however long no worker runs.
  expiration_policy {
    ttl = ""
  }

  lifecycle {
    precondition {
      condition     = length(local.queue_problems[each.key]) == 0
      error_message = "Queue ${each.key}: ${join(" ", local.queue_problems[each.key])}"
    }
  }

  # Pushing starts as soon as the subscription exists: the push account must already be
  # allowed to call the service, and Pub/Sub to sign its tokens.
  depends_on = [
    google_cloud_run_v2_service_iam_member.push_invokes,
    google_service_account_iam_member.service_agent_signs_push_tokens,
  ]
}

resource "google_pubsub_subscription" "dead_letter" {
  for_each = local.queues

  project                    = var.project
  name                       = each.value.dead_letter_subscription
  topic                      = google_pubsub_topic.dead_letter[each.key].id
  ack_deadline_seconds       = each.value.dead_letter_ack_deadline_seconds
  message_retention_duration = each.value.dead_letter_retention_duration
  labels                     = var.labels

  expiration_policy {
    ttl = ""
  }
}

# Workers announce themselves here every few seconds (host, pid, queues, running jobs);
# `pubsub-jobs dashboard` reads it through a short-lived subscription of its own.
resource "google_pubsub_topic" "workers" {
  project                    = var.project
  name                       = "${var.prefix}workers"
  labels                     = var.labels
  message_retention_duration = "600s"

  depends_on = [google_project_service.enabled]
}
