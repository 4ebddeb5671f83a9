#!/usr/bin/env bash
# `make dev`: seed a few hours of history once, keep the simulator writing, run the Dagster UI.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
SEED_HOURS=${SEED_HOURS:-3}
SIM_INTERVAL=${SIM_INTERVAL:-15}
PORT=${DAGSTER_PORT:-3000}

# Once per lake (marker: $LAKE_URI/_state/demo_seed.json), the same path as `make seed`.
"$VENV/bin/python" -m lake.simulator.demo seed --hours "$SEED_HOURS"

echo "simulator: one object per stream every ${SIM_INTERVAL}s (log: data/simulator.log)"
"$VENV/bin/python" -m lake.simulator.demo live --interval "$SIM_INTERVAL" >data/simulator.log 2>&1 &
SIM_PID=$!

echo "Dagster UI: http://127.0.0.1:${PORT} (sensors are on; runs start within a minute)"
echo "Ctrl-C stops: no new runs, in-flight runs finish (or are canceled after DAGSTER_STOP_GRACE_SECONDS)"
# The launcher sets DAGSTER_HOME (default data/dagster_home) and stops Dagster gracefully.
# It runs in the background so that this shell can hand it a TERM/HUP; Ctrl-C reaches it
# directly (same process group), so the INT trap only stops the simulator.
"$VENV/bin/python" -m orchestration.launch dev -h 127.0.0.1 -p "$PORT" &
DAGSTER_PID=$!
trap 'kill $SIM_PID 2>/dev/null || true' EXIT INT
trap 'kill $SIM_PID 2>/dev/null || true; kill -TERM $DAGSTER_PID 2>/dev/null || true' TERM HUP
status=0
# `wait` returns early when a trapped signal arrives: wait again until the launcher is gone.
while kill -0 "$DAGSTER_PID" 2>/dev/null; do
  wait "$DAGSTER_PID" && status=0 || status=$?
done
exit "$status"
