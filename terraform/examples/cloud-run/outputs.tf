output "queues" {
  value = module.pubsub_jobs.queues
}

output "environment" {
  description = "The PUBSUB_JOBS_* settings both services run with."
  value       = module.pubsub_jobs.environment
}

output "app_url" {
  value = google_cloud_run_v2_service.app.uri
}
