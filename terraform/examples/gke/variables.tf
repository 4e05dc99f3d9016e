variable "project" {
  description = "Google Cloud project id; its GKE cluster has Workload Identity enabled (Autopilot always has)."
  type        = string
}

variable "region" {
  description = "Region of Cloud Tasks."
  type        = string
  default     = "us-central1"
}

variable "namespace" {
  description = "Kubernetes namespace of the worker (worker.yaml)."
  type        = string
  default     = "jobs"
}

variable "kubernetes_service_account" {
  description = "Kubernetes service account the worker pods run as (worker.yaml)."
  type        = string
  default     = "pubsub-jobs-worker"
}

# Written by `pubsub-jobs terraform-vars` into pubsub-jobs.auto.tfvars.json.

variable "prefix" {
  type    = string
  default = "jobs-"
}

variable "queues" {
  type = any
}

variable "cloud_tasks_queue" {
  type    = string
  default = "jobs-delayed"
}

variable "cloud_tasks_location" {
  type    = string
  default = null
}

variable "schedules" {
  type    = any
  default = {}
}
