# The queues, and a worker on an existing GKE cluster (worker.yaml) that scales on the
# backlog of its subscriptions.
#
#   pubsub-jobs terraform-vars --queue default --queue mailers
#   terraform init && terraform apply -var project=my-project
#   terraform output -raw configmap | kubectl apply -f -
#   kubectl apply -f worker.yaml

module "pubsub_jobs" {
  source = "../.."

  project              = var.project
  region               = var.region
  prefix               = var.prefix
  queues               = var.queues
  cloud_tasks_queue    = var.cloud_tasks_queue
  cloud_tasks_location = var.cloud_tasks_location
  schedules            = var.schedules
}

# Workload Identity: pods of the worker's Kubernetes service account act as the worker's
# Google service account, without keys.
resource "google_service_account_iam_member" "worker_pods" {
  service_account_id = "projects/${var.project}/serviceAccounts/${module.pubsub_jobs.worker_service_account}"
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project}.svc.id.goog[${var.namespace}/${var.kubernetes_service_account}]"
}

# The Custom Metrics Stackdriver Adapter, which gives the HorizontalPodAutoscaler the
# subscriptions' backlog (num_undelivered_messages), reads Cloud Monitoring. Its manifest
# (adapter_new_resource_model.yaml, see worker.yaml) binds no Google service account, so the
# role goes to its Kubernetes service account itself, as a Workload Identity Federation
# principal (GKE's "Optimize Pod autoscaling based on metrics" guide does the same).
resource "google_project_iam_member" "metrics_adapter_reads_monitoring" {
  project = var.project
  role    = "roles/monitoring.viewer"
  member  = "principal://iam.googleapis.com/projects/${module.pubsub_jobs.project_number}/locations/global/workloadIdentityPools/${var.project}.svc.id.goog/subject/ns/custom-metrics/sa/custom-metrics-stackdriver-adapter"
}
