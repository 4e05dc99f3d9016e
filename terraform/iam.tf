# Least privilege: every grant is on a single topic, subscription, queue or service
# account, never on the project, so no account here can create or delete topics.
# The roles used: roles/pubsub.publisher, roles/pubsub.subscriber,
# roles/cloudtasks.enqueuer, roles/iam.serviceAccountUser.

# Dead-lettering, the part people forget: Pub/Sub's own service agent publishes a message
# that failed max_delivery_attempts times to the dead-letter topic, and acknowledges it on
# the worker subscription. Without these two grants messages are redelivered forever.

resource "google_pubsub_topic_iam_member" "service_agent_publishes_dead_letters" {
  for_each = local.queues

  project = var.project
  topic   = google_pubsub_topic.dead_letter[each.key].name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "service_agent_acks_worker_subscription" {
  for_each = local.queues

  project      = var.project
  subscription = google_pubsub_subscription.worker[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}

# The worker: pulls its subscriptions, publishes dead-lettered copies (with the reason)
# and jobs that jobs enqueue or reschedule.

resource "google_pubsub_subscription_iam_member" "worker_pulls" {
  for_each = local.queues

  project      = var.project
  subscription = google_pubsub_subscription.worker[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = local.worker_member
}

resource "google_pubsub_topic_iam_member" "worker_publishes_dead_letters" {
  for_each = local.queues

  project = var.project
  topic   = google_pubsub_topic.dead_letter[each.key].name
  role    = "roles/pubsub.publisher"
  member  = local.worker_member
}

resource "google_pubsub_topic_iam_member" "worker_publishes_jobs" {
  for_each = local.queues

  project = var.project
  topic   = google_pubsub_topic.queue[each.key].name
  role    = "roles/pubsub.publisher"
  member  = local.worker_member
}

# The application: publishes jobs.

resource "google_pubsub_topic_iam_member" "app_publishes_jobs" {
  for_each = local.queues

  project = var.project
  topic   = google_pubsub_topic.queue[each.key].name
  role    = "roles/pubsub.publisher"
  member  = local.app_member
}

# Delayed jobs: the scheduler's token publishes due jobs; whoever schedules them creates
# tasks in the queue (enqueuer) and lets Cloud Tasks use the scheduler's token (actAs).

resource "google_pubsub_topic_iam_member" "scheduler_publishes_jobs" {
  for_each = { for queue, spec in local.queues : queue => spec if var.enable_delayed_jobs }

  project = var.project
  topic   = google_pubsub_topic.queue[each.key].name
  role    = "roles/pubsub.publisher"
  member  = local.scheduler_member
}

locals {
  schedulers = {
    for who, member in { app = local.app_member, worker = local.worker_member } : who => member
    if var.enable_delayed_jobs && (who == "app" || var.worker_enqueues_delayed_jobs)
  }
}

resource "google_cloud_tasks_queue_iam_member" "schedulers_enqueue" {
  for_each = local.schedulers

  project  = var.project
  location = google_cloud_tasks_queue.delayed[0].location
  name     = google_cloud_tasks_queue.delayed[0].name
  role     = "roles/cloudtasks.enqueuer"
  member   = each.value
}

resource "google_service_account_iam_member" "schedulers_act_as_scheduler" {
  for_each = local.schedulers

  service_account_id = "projects/${var.project}/serviceAccounts/${local.scheduler_email}"
  role               = "roles/iam.serviceAccountUser"
  member             = each.value
}

# People who inspect, retry and purge dead jobs (`pubsub-jobs dead ...`).

locals {
  operator_grants = {
    for pair in setproduct(keys(local.queues), var.dead_letter_operators) :
    "${pair[0]} ${pair[1]}" => { queue = pair[0], member = pair[1] }
  }
}

resource "google_pubsub_subscription_iam_member" "operators_read_dead_letters" {
  for_each = local.operator_grants

  project      = var.project
  subscription = google_pubsub_subscription.dead_letter[each.value.queue].name
  role         = "roles/pubsub.subscriber"
  member       = each.value.member
}

resource "google_pubsub_topic_iam_member" "operators_retry_jobs" {
  for_each = local.operator_grants

  project = var.project
  topic   = google_pubsub_topic.queue[each.value.queue].name
  role    = "roles/pubsub.publisher"
  member  = each.value.member
}
