#!/usr/bin/env bash
# `make dev`: seed a few hours of history, keep the simulator writing, run the Dagster UI.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
SEED_HOURS=${SEED_HOURS:-3}
SIM_INTERVAL=${SIM_INTERVAL:-15}
PORT=${DAGSTER_PORT:-3000}

# Seed once: a second `make dev` keeps what the first one landed and processed.
if [ ! -f data/.seeded ]; then
  echo "seeding ${SEED_HOURS}h of history into ${LANDING_URI:-data/landing}"
  "$VENV/bin/python" -m lake.simulator --hours "$SEED_HOURS" --seed 42 \
    --duplicate-rate 0.01 --late-rate 0.01 --malformed-rate 0.002
  touch data/.seeded
fi

echo "simulator: one object per stream every ${SIM_INTERVAL}s (log: data/simulator.log)"
"$VENV/bin/python" -m lake.simulator --continuous --interval "$SIM_INTERVAL" --seed "$RANDOM" \
  --duplicate-rate 0.01 --late-rate 0.01 --malformed-rate 0.002 >data/simulator.log 2>&1 &
SIM_PID=$!
trap 'kill $SIM_PID 2>/dev/null || true' EXIT INT TERM

echo "Dagster UI: http://127.0.0.1:${PORT} (sensors are on; runs start within a minute)"
# the launcher sets DAGSTER_HOME (default data/dagster_home) with the project's dagster.yaml
"$VENV/bin/python" -m orchestration.launch dev -h 127.0.0.1 -p "$PORT"
