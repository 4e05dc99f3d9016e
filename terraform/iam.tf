# Least privilege: every grant is on a single topic, subscription, queue, service account
# or Cloud Run service, never on the project, so no account here can create or delete topics.
# The roles used: roles/pubsub.publisher, roles/pubsub.subscriber, roles/pubsub.viewer,
# roles/cloudtasks.enqueuer, roles/cloudtasks.taskDeleter (cancelling), roles/iam.serviceAccountUser,
# and for push queues roles/run.invoker and roles/iam.serviceAccountTokenCreator.

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

# The worker: pulls its subscriptions, reads their policies (it compares delivery attempts
# with max_delivery_attempts at start-up, and /status shows them), publishes dead-lettered
# copies (with the reason) and jobs that jobs enqueue or reschedule. The push server runs as
# the same account; Pub/Sub delivers push queues to it, so it pulls nothing.

resource "google_pubsub_subscription_iam_member" "worker_pulls" {
  for_each = { for queue, spec in local.queues : queue => spec if spec.push_endpoint == null }

  project      = var.project
  subscription = google_pubsub_subscription.worker[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = local.worker_member
}

resource "google_pubsub_subscription_iam_member" "worker_reads_subscriptions" {
  for_each = local.queues

  project      = var.project
  subscription = google_pubsub_subscription.worker[each.key].name
  role         = "roles/pubsub.viewer"
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

# Delayed jobs: the scheduler's token publishes due jobs; whoever schedules them (the
# application, and the worker for its retries: local.delayed_job_schedulers) creates tasks in
# the queue (enqueuer) and lets Cloud Tasks use the scheduler's token (actAs).

resource "google_pubsub_topic_iam_member" "scheduler_publishes_jobs" {
  for_each = { for queue, spec in local.queues : queue => spec if var.enable_delayed_jobs }

  project = var.project
  topic   = google_pubsub_topic.queue[each.key].name
  role    = "roles/pubsub.publisher"
  member  = local.scheduler_member
}

locals {
  schedulers = {
    for who in local.delayed_job_schedulers : who => who == "app" ? local.app_member : local.worker_member
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

# Rate-limited queues (rate.tf): the same schedulers create tasks in each queue's own Cloud
# Tasks queue, <prefix>Q-rate; actAs on the scheduler account and its publisher role on the
# topics are the grants above.

locals {
  rate_enqueuers = {
    for pair in setproduct(keys(local.rate_queues), keys(local.schedulers)) :
    "${pair[0]} ${pair[1]}" => { queue = pair[0], member = local.schedulers[pair[1]] }
  }
}

resource "google_cloud_tasks_queue_iam_member" "schedulers_enqueue_rate" {
  for_each = local.rate_enqueuers

  project  = var.project
  location = google_cloud_tasks_queue.rate[each.value.queue].location
  name     = google_cloud_tasks_queue.rate[each.value.queue].name
  role     = "roles/cloudtasks.enqueuer"
  member   = each.value.member
}

# Cancelling a waiting job (EnqueuedJob.cancel(), pubsub_jobs.cancel, `pubsub-jobs cancel`)
# deletes its task: roles/cloudtasks.taskDeleter (cloudtasks.tasks.delete) on every Cloud
# Tasks queue a job waits in, for local.job_cancellers (settings.tf): the application by
# default, the worker when asked, and var.job_cancellers. Nobody else can delete a task.

locals {
  cancellers = merge(
    { for who in local.job_canceller_roles : who => who == "app" ? local.app_member : local.worker_member },
    { for member in var.job_cancellers : member => member },
  )
  rate_cancellers = {
    for pair in setproduct(keys(local.rate_queues), keys(local.cancellers)) :
    "${pair[0]} ${pair[1]}" => { queue = pair[0], member = local.cancellers[pair[1]] }
  }
}

resource "google_cloud_tasks_queue_iam_member" "cancellers_delete_delayed" {
  for_each = var.enable_delayed_jobs ? local.cancellers : {}

  project  = var.project
  location = google_cloud_tasks_queue.delayed[0].location
  name     = google_cloud_tasks_queue.delayed[0].name
  role     = "roles/cloudtasks.taskDeleter"
  member   = each.value
}

resource "google_cloud_tasks_queue_iam_member" "cancellers_delete_rate" {
  for_each = local.rate_cancellers

  project  = var.project
  location = google_cloud_tasks_queue.rate[each.value.queue].location
  name     = google_cloud_tasks_queue.rate[each.value.queue].name
  role     = "roles/cloudtasks.taskDeleter"
  member   = each.value.member
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

# Push queues: Pub/Sub's service agent signs each push request with an OIDC token of the
# push account (token creator on that one account), and the push account may call the Cloud
# Run service behind the endpoints (invoker on that one service).

resource "google_service_account_iam_member" "service_agent_signs_push_tokens" {
  count = length(local.push_bases) > 0 ? 1 : 0

  service_account_id = "projects/${var.project}/serviceAccounts/${local.push_email}"
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent
}

resource "google_cloud_run_v2_service_iam_member" "push_invokes" {
  count = length(local.push_bases) > 0 && var.push_cloud_run_service != null ? 1 : 0

  project  = var.project
  location = local.push_cloud_run_location
  name     = var.push_cloud_run_service
  role     = "roles/run.invoker"
  member   = local.push_member
}

resource "google_pubsub_topic_iam_member" "worker_publishes_heartbeats" {
  project = var.project
  topic   = google_pubsub_topic.workers.name
  role    = "roles/pubsub.publisher"
  member  = local.worker_member
}
