"""``python -m bench._enqueue SYSTEM N PAYLOAD_BYTES``: create the system's queue, then time
its bulk enqueue of N jobs (until Pub/Sub confirmed them) and print ``{"seconds": ...}``.

It runs in the system's own interpreter (the project's, or a peer's virtualenv) and imports
``bench._sys_SYSTEM`` only, so a peer never loads pubsub-jobs.
"""

from __future__ import annotations

import importlib
import json
import sys
import time


def main(argv: list[str]) -> int:
    system, n, payload_bytes = argv[0], int(argv[1]), int(argv[2])
    module = importlib.import_module(f"bench._sys_{system}")
    module.setup()
    payload = "x" * payload_bytes
    started = time.perf_counter()
    module.enqueue(n, payload)
    print(json.dumps({"seconds": time.perf_counter() - started}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
