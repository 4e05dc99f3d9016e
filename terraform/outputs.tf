output "queues" {
  description = "Resource ids of each queue: topic, worker subscription, dead-letter topic and subscription, and its push endpoint (null for a pull queue)."
  value = {
    for queue, spec in local.queues : queue => {
      topic                    = google_pubsub_topic.queue[queue].id
      worker_subscription      = google_pubsub_subscription.worker[queue].id
      dead_letter_topic        = google_pubsub_topic.dead_letter[queue].id
      dead_letter_subscription = google_pubsub_subscription.dead_letter[queue].id
      push_endpoint            = spec.push_endpoint
    }
  }
}

output "worker_service_account" {
  description = "Email of the account the worker (and the push server) runs as."
  value       = local.worker_email
}

output "app_service_account" {
  description = "Email of the account the application that enqueues jobs runs as."
  value       = local.app_email
}

output "scheduler_service_account" {
  description = "Email of the account whose token publishes due delayed jobs (null without delayed jobs)."
  value       = local.scheduler_email
}

output "push_service_account" {
  description = "Email of the account whose OIDC tokens authenticate push requests: the push server's PUBSUB_JOBS_PUSH_SERVICE_ACCOUNT (null without push queues)."
  value       = length(local.push_bases) > 0 ? local.push_email : null
}

output "push_audience" {
  description = "Audience of the push tokens: the push server's PUBSUB_JOBS_PUSH_AUDIENCE (null without push queues, or when queues push to several base URLs and push_audience is unset)."
  value       = local.push_audience
}

output "cloud_tasks_queue" {
  description = "Id of the Cloud Tasks queue for delayed jobs (null without delayed jobs)."
  value       = one(google_cloud_tasks_queue.delayed[*].id)
}

output "rate_queues" {
  description = "Id of the Cloud Tasks queue (<prefix>Q-rate) of each rate-limited queue, which publishes its jobs at most rate_limit a second."
  value       = { for queue, q in google_cloud_tasks_queue.rate : queue => q.id }
}

output "schedules" {
  description = "Id of the Cloud Scheduler job of each schedule."
  value       = { for name, job in google_cloud_scheduler_job.schedule : name => job.id }
}

output "project_number" {
  description = "The project's number (var.project_number, else read from the project), e.g. for Cloud Run's deterministic URLs."
  value       = local.project_number
}

output "pubsub_service_agent" {
  description = "Pub/Sub's service agent, which forwards dead letters and signs push tokens."
  value       = local.pubsub_service_agent
}

output "environment" {
  description = "Environment variables that point pubsub-jobs, in the application and the worker, at these resources."
  value = merge(
    {
      PUBSUB_JOBS_PROJECT_ID = var.project
      PUBSUB_JOBS_PREFIX     = var.prefix
      PUBSUB_JOBS_QUEUES     = local.queues_setting
    },
    {
      for name, value in {
        PUBSUB_JOBS_CLOUD_TASKS_LOCATION        = one(google_cloud_tasks_queue.delayed[*].location)
        PUBSUB_JOBS_CLOUD_TASKS_QUEUE           = one(google_cloud_tasks_queue.delayed[*].name)
        PUBSUB_JOBS_CLOUD_TASKS_SERVICE_ACCOUNT = local.scheduler_email
      } : name => value if var.enable_delayed_jobs
    },
  )
}
