#!/usr/bin/env sh
# `pubsub-jobs emulator` from this checkout, even when pubsub-jobs is not installed: start
# Google's Pub/Sub emulator (with pubsub-jobs' fixes for emulator 0.8.20) and the Cloud Tasks
# emulator on 127.0.0.1, wait until they answer, and print the `export ...` lines.
#
#   eval "$(emulator/start.sh)"                  # detached; stop with: emulator/start.sh stop
#   emulator/start.sh start --port 8086 --foreground
#   emulator/start.sh start --no-cloud-tasks     # the Pub/Sub emulator only
#   emulator/start.sh stop [--port N]
#
# PYTHON selects the interpreter: default this checkout's .venv/bin/python if there is one,
# else python3. It must be able to import pubsub_jobs and its dependencies.
set -eu
case "${1:-}" in
  start|stop|-h|--help) ;;
  *) set -- start "$@" ;;
esac
# Let `pubsub_jobs` import from this checkout even when it is not installed.
root="$(cd "$(dirname "$0")/.." && pwd)"
PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONPATH
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$root/.venv/bin/python" ]; then PYTHON="$root/.venv/bin/python"; else PYTHON=python3; fi
fi
exec "$PYTHON" -m pubsub_jobs emulator "$@"
