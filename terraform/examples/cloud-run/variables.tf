variable "project" {
  description = "Google Cloud project id."
  type        = string
}

variable "region" {
  description = "Region of Cloud Run and Cloud Tasks."
  type        = string
  default     = "us-central1"
}

variable "image" {
  description = "Container image of the application, with pubsub-jobs installed (the worker runs the same image)."
  type        = string
}

variable "jobs_modules" {
  description = "Modules the worker imports to register jobs."
  type        = list(string)
  default     = ["myapp.jobs"]
}

variable "worker_min_instances" {
  description = "Workers that always run: at least one, so jobs start without waiting for a scale-up."
  type        = number
  default     = 1
}

variable "worker_max_instances" {
  description = "Most workers Cloud Run starts when they are busy."
  type        = number
  default     = 10
}

# Written by `pubsub-jobs terraform-vars` into pubsub-jobs.auto.tfvars.json: the same
# definitions that `pubsub-jobs bootstrap` uses. The module checks their types.

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
