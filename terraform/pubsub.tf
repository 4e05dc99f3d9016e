# The Pub/Sub resources of each queue, as `pubsub-jobs bootstrap` creates them.
# Every attribute is a value of local.queues (queues.tf) or a literal, so that the
# test can evaluate it.

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

  # An empty ttl: the subscription never expires, however long no worker runs.
  expiration_policy {
    ttl = ""
  }
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
