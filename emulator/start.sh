#!/usr/bin/env sh
# Start Google's Pub/Sub emulator on 127.0.0.1 (default port 8085), with pubsub-jobs' fix for
# emulator 0.8.20 (which loses messages whenever a streaming pull is cancelled), wait until it
# answers, and print `export PUBSUB_EMULATOR_HOST=...`.
#
#   eval "$(emulator/start.sh)"                  # detached; stop with: emulator/start.sh stop
#   emulator/start.sh start --port 8086 --foreground
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
exec "$PYTHON" -m pubsub_jobs._emulator "$@"
