"""Operating queues: the topology (``bootstrap``), the dead set, queue status and the
variables of the Terraform module. Used by the command line, the dashboard and scripts."""
