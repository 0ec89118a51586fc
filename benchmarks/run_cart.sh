#!/usr/bin/env bash
# Cart endpoint vs the FastAPI + one-Redis-round-trip floor, measured in one run.
# Usage: benchmarks/run_cart.sh [purchases file] [seconds]   (needs wrk: apt-get install wrk)
set -euo pipefail
cd "$(dirname "$0")/.."
PURCHASES=${1:-../shared/data/online_retail.parquet}
SECONDS_EACH=${2:-10}
PY=.venv/bin/python
OUT=benchmarks/out; mkdir -p "$OUT"
RPORT=6399; APORT=8101; BPORT=8102
REDIS=$($PY -c 'from recsvc.store.embedded import redis_server_binary as b; print(b())')
$REDIS --port $RPORT --save '' --appendonly no --daemonize yes --logfile "$PWD/$OUT/redis.log"
export REDIS_URL=redis://127.0.0.1:$RPORT/0 RECSVC_KEY_PREFIX=bench
trap 'kill $(jobs -p) 2>/dev/null; $PY -c "import redis; redis.Redis(port=$RPORT).shutdown(nosave=True)" 2>/dev/null || true' EXIT
$PY -m training train --purchases "$PURCHASES" --preset online-retail 2>/dev/null | tail -1
$PY -c "import redis; r=redis.Redis(port=$RPORT); print('redis used_memory bytes:', r.info('memory')['used_memory'])"
# One uvicorn worker each, pinned to core 0; wrk on core 1.
# recsvc logs one JSON line per request (its default); they go to a file, as in production.
taskset -c 0 $PY -m uvicorn --factory recsvc.api.app:app_from_environment --port $APORT --log-level warning --no-access-log 2>"$OUT/recsvc.log" &
taskset -c 0 $PY -m uvicorn --factory benchmarks.baseline_app:create --port $BPORT --log-level warning --no-access-log &
sleep 4
# Alternating runs so both see the same machine noise. -c1: one request at a time, the
# latency a browser sees; -c16: saturation throughput.
for conns in 1 16; do
  for name_port in "baseline:$BPORT" "recsvc:$APORT" "baseline:$BPORT" "recsvc:$APORT"; do
    name=${name_port%%:*}; port=${name_port##*:}
    printf '== %s, %s connection(s): ' "$name" "$conns"
    taskset -c 1 wrk -t1 -c"$conns" -d"${SECONDS_EACH}s" --latency -s benchmarks/cart.lua \
      "http://127.0.0.1:$port/v1/recommendations/cart" \
      | awk '/^ +50%/{p50=$2} /^ +99%/{p99=$2} /Requests\/sec/{rps=$2} END{print "req/s", rps, "p50", p50, "p99", p99}'
  done
done
