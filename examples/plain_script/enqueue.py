"""Enqueue one ``greet`` job per name on the command line: ``python enqueue.py Ada Grace``."""

import sys

from jobs import greet

for name in sys.argv[1:] or ["world"]:
    enqueued = greet.enqueue(name)  # returns once Pub/Sub confirmed the message
    print(f"enqueued greet({name!r}) as job {enqueued.job_id}")
