#!/bin/sh
# The container's role: code-server (the code location over gRPC on :4000), webserver (the
# UI on :3000), daemon (sensors, schedules, the run queue, run monitoring); anything else is
# run as given (the ECS run launcher's `dagster api execute_run ...`).
set -eu
# a step's per-partition asset events and a run's planned events stored as batches (one
# INSERT on PostgreSQL), as orchestration/launch.py sets it for `make dev` and the CLI
export DAGSTER_EVENT_BATCH_SIZE="${DAGSTER_EVENT_BATCH_SIZE:-100}"
case "${1:-code-server}" in
  code-server)
    exec dagster code-server start -h 0.0.0.0 -p 4000 \
      -m orchestration.definitions -d "$APP_DIR" --location-name firehose_lake ;;
  webserver)
    exec dagster-webserver -h 0.0.0.0 -p 3000 -w /opt/dagster/workspace.yaml ;;
  daemon)
    exec dagster-daemon run -w /opt/dagster/workspace.yaml ;;
  *)
    exec "$@" ;;
esac
