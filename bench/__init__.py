"""Benchmarks of pubsub-jobs beside the raw google-cloud-pubsub client (``python -m bench.run``)."""
