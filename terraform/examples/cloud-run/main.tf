# A small production deployment: the queues, an application that enqueues jobs and a
# worker that runs them, both on Cloud Run.
#
#   pubsub-jobs terraform-vars --queue default --queue mailers   # in the application
#   terraform init && terraform apply -var project=my-project -var image=IMAGE

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

locals {
  # PUBSUB_JOBS_* variables that point both containers at the module's resources.
  environment = module.pubsub_jobs.environment

  worker_args = concat(
    ["worker"],
    var.jobs_modules,
    flatten([for queue in keys(var.queues) : ["--queue", queue]]),
    # Cloud Run gives a stopping instance 10 s after SIGTERM: let running jobs finish
    # within 8, the rest is nacked and redelivered.
    ["--shutdown-timeout", "8", "--http-port", "8080", "--http-host", "0.0.0.0"],
  )
}

# The worker: a Cloud Run service that nobody calls. Its port serves the worker's
# /healthz and /status, which Cloud Run probes. CPU stays allocated between requests
# (instance-based billing), since the worker pulls rather than answers requests;
# Cloud Run adds instances when their CPU is busy, up to worker_max_instances.
resource "google_cloud_run_v2_service" "worker" {
  name                = "${var.prefix}worker"
  location            = var.region
  ingress             = "INGRESS_TRAFFIC_INTERNAL_ONLY"
  deletion_protection = false

  template {
    service_account = module.pubsub_jobs.worker_service_account

    scaling {
      min_instance_count = var.worker_min_instances
      max_instance_count = var.worker_max_instances
    }

    containers {
      image   = var.image
      command = ["pubsub-jobs"]
      args    = local.worker_args

      ports {
        container_port = 8080
      }

      resources {
        cpu_idle = false
        limits = {
          cpu    = "1"
          memory = "512Mi"
        }
      }

      dynamic "env" {
        for_each = local.environment
        content {
          name  = env.key
          value = env.value
        }
      }

      startup_probe {
        http_get {
          path = "/healthz"
        }
      }

      liveness_probe {
        period_seconds = 30
        http_get {
          path = "/healthz"
        }
      }
    }
  }

  # Start once the module's grants exist, so that the first worker may pull at once (a
  # worker refused its subscriptions reports failed streams until the grants arrive).
  depends_on = [module.pubsub_jobs]
}

# The application (a web service) enqueues jobs as the app account: it may publish to
# the topics and schedule delayed jobs, nothing more.
resource "google_cloud_run_v2_service" "app" {
  name                = "${var.prefix}app"
  location            = var.region
  deletion_protection = false

  template {
    service_account = module.pubsub_jobs.app_service_account

    containers {
      image = var.image

      dynamic "env" {
        for_each = local.environment
        content {
          name  = env.key
          value = env.value
        }
      }
    }
  }

  # Start once the module's grants exist, so that the first enqueue may publish.
  depends_on = [module.pubsub_jobs]
}
