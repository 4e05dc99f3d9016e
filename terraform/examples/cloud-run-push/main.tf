# Push delivery on Cloud Run: Pub/Sub pushes each job to the push server, a Cloud Run
# service that scales to zero between jobs, instead of a worker pulling them; an application
# enqueues them. The same queues, policies and dead letters as examples/cloud-run.
#
#   pubsub-jobs terraform-vars --queue default --queue mailers   # in the application
#   terraform init && terraform apply -var project=my-project -var image=IMAGE

locals {
  push_service = "${var.prefix}push"

  # The push server's deterministic URL (https://SERVICE-PROJECT_NUMBER.REGION.run.app), known
  # before the service exists. Its `uri` attribute would do as well at run time, but the
  # queues would then wait for the service, whose environment waits for the queues.
  push_url = "https://${local.push_service}-${module.pubsub_jobs.project_number}.${var.region}.run.app"
}

module "pubsub_jobs" {
  source = "../.."

  project              = var.project
  region               = var.region
  prefix               = var.prefix
  cloud_tasks_queue    = var.cloud_tasks_queue
  cloud_tasks_location = var.cloud_tasks_location
  schedules            = var.schedules

  # Every queue of the file is a push queue: Pub/Sub POSTs its jobs to <push_url>/push/QUEUE.
  queues = { for queue, options in var.queues : queue => merge(options, { push_endpoint = local.push_url }) }

  # The push account may invoke this service (roles/run.invoker); the name comes from the
  # resource so that the grant waits for the service.
  push_cloud_run_service  = google_cloud_run_v2_service.push.name
  push_cloud_run_location = var.region
}

# The push server: answers Pub/Sub's requests with the decision table's HTTP statuses, runs
# as the worker account (it publishes dead letters and retries as the worker does), checks
# each request's OIDC token (issuer, audience, push account), and behind it Cloud Run's own
# IAM check lets only the push account in. Instances start with the requests and stop after
# them (request-based billing); the request timeout matches the push subscriptions' 600 s ack
# deadline, so a job may run that long.
resource "google_cloud_run_v2_service" "push" {
  name                = local.push_service
  location            = var.region
  ingress             = "INGRESS_TRAFFIC_ALL"
  deletion_protection = false

  template {
    service_account                  = module.pubsub_jobs.worker_service_account
    timeout                          = "600s"
    max_instance_request_concurrency = var.push_concurrency

    scaling {
      min_instance_count = 0
      max_instance_count = var.push_max_instances
    }

    containers {
      image   = var.image
      command = ["pubsub-jobs"]
      args = concat(
        ["push-server"],
        var.jobs_modules,
        flatten([for queue in keys(var.queues) : ["--queue", queue]]),
        ["--host", "0.0.0.0", "--port", "8080"],
      )

      ports {
        container_port = 8080
      }

      resources {
        cpu_idle = true
        limits = {
          cpu    = "1"
          memory = "512Mi"
        }
      }

      dynamic "env" {
        for_each = merge(module.pubsub_jobs.environment, {
          PUBSUB_JOBS_PUSH_AUDIENCE        = module.pubsub_jobs.push_audience
          PUBSUB_JOBS_PUSH_SERVICE_ACCOUNT = module.pubsub_jobs.push_service_account
        })
        content {
          name  = env.key
          value = env.value
        }
      }
    }
  }
}

# The application (a web service) enqueues jobs as the app account.
resource "google_cloud_run_v2_service" "app" {
  name                = "${var.prefix}app"
  location            = var.region
  deletion_protection = false

  template {
    service_account = module.pubsub_jobs.app_service_account

    containers {
      image = var.image

      dynamic "env" {
        for_each = module.pubsub_jobs.environment
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
