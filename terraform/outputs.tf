output "queues" {
  description = "Resource ids of each queue: topic, worker subscription, dead-letter topic and subscription."
  value = {
    for queue, spec in local.queues : queue => {
      topic                    = google_pubsub_topic.queue[queue].id
      worker_subscription      = google_pubsub_subscription.worker[queue].id
      dead_letter_topic        = google_pubsub_topic.dead_letter[queue].id
      dead_letter_subscription = google_pubsub_subscription.dead_letter[queue].id
    }
  }
}

output "worker_service_account" {
  description = "Email of the account the worker runs as."
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

output "cloud_tasks_queue" {
  description = "Id of the Cloud Tasks queue for delayed jobs (null without delayed jobs)."
  value       = one(google_cloud_tasks_queue.delayed[*].id)
}

output "pubsub_service_agent" {
  description = "Pub/Sub's service agent, which forwards dead letters."
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
