output "worker_service_account" {
  description = "Put in worker.yaml's iam.gke.io/gcp-service-account annotation."
  value       = module.pubsub_jobs.worker_service_account
}

output "configmap" {
  description = "The PUBSUB_JOBS_* settings as a ConfigMap for the worker: terraform output -raw configmap | kubectl apply -f -"
  value = yamlencode({
    apiVersion = "v1"
    kind       = "ConfigMap"
    metadata   = { name = "pubsub-jobs", namespace = var.namespace }
    data       = module.pubsub_jobs.environment
  })
}
