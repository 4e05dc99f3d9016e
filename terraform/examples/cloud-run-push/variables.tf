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
  description = "Container image of the application, with pubsub-jobs and its push extra installed (the push server runs the same image)."
  type        = string
}

variable "jobs_modules" {
  description = "Modules the push server imports to register jobs."
  type        = list(string)
  default     = ["myapp.jobs"]
}

variable "push_concurrency" {
  description = "Requests, so jobs, one push server instance runs at once."
  type        = number
  default     = 10
}

variable "push_max_instances" {
  description = "Most push server instances Cloud Run starts; Pub/Sub slows its pushes down when they answer with errors or too slowly."
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
