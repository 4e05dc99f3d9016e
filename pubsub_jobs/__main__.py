import sys

from pubsub_jobs.cli import main

sys.exit(main())
