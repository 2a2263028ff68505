#!/usr/bin/env bash
# Measures resident memory (VmRSS) of the reference floor gateway
# (../shared/bench/floor) and of baimo, each in front of the shared stub
# (../shared/bench/stub): at rest, after the first request, and while many
# long streams are held open at once (`load memory`). Pinned as run.sh pins:
# the process under test on core 1, the load generator and the stub on core 0.
# Prints markdown table rows; no throughput is measured.
#
# Usage: bench/load/memory.sh
#
# Environment:
#   STREAMS=1000,9000  counts of concurrent streams, in order (each needs two
#              open files in the gateway: ulimit -n must exceed twice the largest)
#   TPOT=1000 TOKENS=60  pacing of the held streams (ms per token, tokens): at 9,000 streams an event
#              every 100 ms would be 90,000 events a second through the two pinned cores, and the
#              last streams would not open before the first end
#   OPEN_RATE=500  streams opened per second; baimo does more per request than the floor and
#              needs OPEN_RATE=200 (TOKENS=90) at 9,000 on one core, or the load tool's dials time out
#   FLOOR=0    measure baimo only
#   SETTLE=5s  wait before each reading at rest
#   SHARED=dir where the stub and floor sources are (default ../shared/bench, or beside
#              the main checkout when run from a git worktree)
#   PORT=18190 first of three loopback ports (stub, floor, baimo)
#   BAIMO_BIN=path  use this baimo binary instead of building ./cmd/baimo
#   MODELS="sim-chat"  the channel's models; tokenizers of those that have one are loaded at start
#              (MODELS="sim-chat, gpt-4o-mini" loads o200k); requests ask for sim-chat
#   BAIMO_CONFIG_EXTRA=yaml  appended to baimo's config
set -euo pipefail

cd "$(dirname "$0")/../.."
streams=${STREAMS:-1000,9000}
settle=${SETTLE:-5s}
tpot=${TPOT:-1000}
tokens=${TOKENS:-60}
open_rate=${OPEN_RATE:-500}
shared=${SHARED:-"$(pwd)/../shared/bench"}
if [ ! -d "$shared" ]; then # a worktree: look beside the main checkout
	shared=$(cd "$(git rev-parse --git-common-dir)/../.." && pwd)/shared/bench
fi
port=${PORT:-18190}
up_addr=127.0.0.1:$port
floor_addr=127.0.0.1:$((port + 1))
baimo_addr=127.0.0.1:$((port + 2))

# shellcheck source=procs.sh
. bench/load/procs.sh # the working directory is the repository root


echo "memory.sh: building" >&2
go build -o "$work/load" ./bench/load
(cd "$shared/stub" && GOFLAGS= go build -o "$work/stub" .)
(cd "$shared/floor" && GOFLAGS= go build -o "$work/floor" .)
if [ -n "${BAIMO_BIN:-}" ]; then
	cp "$BAIMO_BIN" "$work/baimo"
else
	go build -o "$work/baimo" ./cmd/baimo
fi

taskset -c 0 "$work/stub" -addr "$up_addr" >"$work/stub.log" 2>&1 &
pids+=($!)
wait_port "$up_addr"
taskset -c 1 "$work/floor" -addr "$floor_addr" -upstream "http://$up_addr" >"$work/floor.log" 2>&1 &
floor_pid=$!
pids+=("$floor_pid")
wait_port "$floor_addr"
cat >"$work/config.yaml" <<YAML
channels:
  - name: local
    kind: openai
    base_url: http://$up_addr/v1
    models: [${MODELS:-sim-chat}]
sim: {enabled: false}
${BAIMO_CONFIG_EXTRA:-}
YAML
admin_key=bench-admin-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
BAIMO_ADMIN_KEY=$admin_key taskset -c 1 "$work/baimo" serve --addr "$baimo_addr" \
	--data "$work/data" --config "$work/config.yaml" >"$work/baimo.log" 2>&1 &
baimo_pid=$!
pids+=("$baimo_pid")
wait_port "$baimo_addr"

echo "Measured $(date -u +%Y-%m-%dT%H:%MZ), $(git rev-parse --short HEAD), models [${MODELS:-sim-chat}], streams of $tokens tokens at $tpot ms per token, opened $open_rate a second"
echo
echo "| gateway | reading | VmRSS | per stream over the first request |"
echo "|---|---|---:|---:|"
if [ "${FLOOR:-1}" != 0 ]; then
	taskset -c 0 "$work/load" memory -url "http://$floor_addr" -pid "$floor_pid" -key sk-floor-bench \
		-settle "$settle" -streams "$streams" -stream-tpot-ms "$tpot" -stream-tokens "$tokens" -open-rate "$open_rate"
fi
taskset -c 0 "$work/load" memory -url "http://$baimo_addr" -pid "$baimo_pid" -admin-key "$admin_key" \
	-settle "$settle" -streams "$streams" -stream-tpot-ms "$tpot" -stream-tokens "$tokens" -open-rate "$open_rate"
if grep -q -i -E 'panic|DATA RACE' "$work/baimo.log"; then
	echo "memory.sh: baimo's log shows a panic or race:" >&2
	cat "$work/baimo.log" >&2
	exit 1
fi
