terraform {
  required_version = ">= 1.3"

  required_providers {
    google = {
      source = "hashicorp/google"
      # Planned against 6.1, 6.50, 7.46 and 8.7 (5.0 lacks deletion_protection on Cloud Run).
      version = ">= 6.0, < 9.0"
    }
  }
}

provider "google" {
  project = var.project
  region  = var.region
}
