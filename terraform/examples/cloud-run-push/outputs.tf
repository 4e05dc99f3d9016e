output "queues" {
  value = module.pubsub_jobs.queues
}

output "push_url" {
  description = "The push server's URL; Pub/Sub pushes each queue's jobs to <push_url>/push/QUEUE."
  value       = local.push_url
}

output "push_environment" {
  description = "The settings the push server runs with: the PUBSUB_JOBS_* of both services and the push token's audience and account."
  value = merge(module.pubsub_jobs.environment, {
    PUBSUB_JOBS_PUSH_AUDIENCE        = module.pubsub_jobs.push_audience
    PUBSUB_JOBS_PUSH_SERVICE_ACCOUNT = module.pubsub_jobs.push_service_account
  })
}

output "app_url" {
  value = google_cloud_run_v2_service.app.uri
}
