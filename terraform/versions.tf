terraform {
  # optional() object attributes need 1.3.
  required_version = ">= 1.3"

  required_providers {
    google = {
      source = "hashicorp/google"
      # Planned against the schemas of 5.0, 6.1, 6.50, 7.46 and 8.7.
      version = ">= 5.0, < 9.0"
    }
  }
}
