#!/usr/bin/env bash
# Runs the load benchmark of issue 2: the upstream (`baimo sim`, zero latency)
# called directly, a bare httputil.ReverseProxy in front of it, and baimo in
# front of it with usage records on, side by side. Prints a markdown report and
# keeps a copy under bench/out/.
#
# Usage: bench/load/run.sh [flags for `load run`, e.g. -n1 5000 -dur 10s]
#
# Environment:
#   PIN=split  (default) process under test on core 1, load generator and upstream on core 0
#   PIN=same   everything on core 0 (no cross-core wake-ups; shows what pinning costs)
#   PIN=none   no pinning
#   UPSTREAM=sim   (default) `baimo sim --ttft 0 --tpot 0`
#   UPSTREAM=fake  the load tool's own minimal upstream (`load upstream`)
#   BAIMO=0    leave baimo out (the direct and proxy columns only)
#   PORT=18090 first of three loopback ports (upstream, proxy, baimo)
#   BAIMO_BIN=path  use this baimo binary instead of building ./cmd/baimo
#   BAIMO_CONFIG_EXTRA=yaml  appended to baimo's config, e.g. "billing: {ledger: false}"
#   PREFILL=path.db  start baimo on a copy of this database (go run ./bench/prefill/mkdb -db path.db), with its
#              API key made for the prefilled prepaid tenant (TENANT, default bench) instead of the default one
#
# All traffic stays on 127.0.0.1; every phase is bounded in time and count.
set -euo pipefail

cd "$(dirname "$0")/../.."
root=$(pwd)
pin=${PIN:-split}
upstream_kind=${UPSTREAM:-sim}
want_baimo=${BAIMO:-1}
port=${PORT:-18090}
up_addr=127.0.0.1:$port
proxy_addr=127.0.0.1:$((port + 1))
baimo_addr=127.0.0.1:$((port + 2))

case $pin in
split) gen_cpu=0 sut_cpu=1 ;;
same) gen_cpu=0 sut_cpu=0 ;;
none) gen_cpu=0-$(($(nproc) - 1)) sut_cpu=$gen_cpu ;;
*) echo "run.sh: PIN must be split, same or none" >&2; exit 2 ;;
esac

work=$(mktemp -d)
pids=()
cleanup() {
	for pid in "${pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		for _ in $(seq 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT

# wait_for URL: poll until URL answers 2xx, for at most 20 s.
wait_for() {
	for _ in $(seq 200); do
		if curl -sf -o /dev/null "$1"; then
			return 0
		fi
		sleep 0.1
	done
	echo "run.sh: $1 did not answer within 20 s" >&2
	return 1
}

for p in "$port" $((port + 1)) $((port + 2)); do
	if (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
		echo "run.sh: something already listens on 127.0.0.1:$p; pick other ports with PORT=" >&2
		exit 1
	fi
done

echo "run.sh: building" >&2
go build -o "$work/load" ./bench/load
have_baimo=0
if [ -n "${BAIMO_BIN:-}" ]; then
	cp "$BAIMO_BIN" "$work/baimo"
	have_baimo=1
elif go build -o "$work/baimo" ./cmd/baimo 2>"$work/build.log"; then
	have_baimo=1
elif [ "$upstream_kind" = sim ] || [ "$want_baimo" = 1 ]; then
	echo "run.sh: go build ./cmd/baimo failed; rerun with UPSTREAM=fake BAIMO=0 to measure without it:" >&2
	cat "$work/build.log" >&2
	exit 1
fi

case $upstream_kind in
sim) taskset -c "$gen_cpu" "$work/baimo" sim --addr "$up_addr" --ttft 0 --tpot 0 >"$work/sim.log" 2>&1 &
	up_pid=$! ;;
fake) taskset -c "$gen_cpu" "$work/load" upstream -addr "$up_addr" >"$work/sim.log" 2>&1 &
	up_pid=$! ;;
*) echo "run.sh: UPSTREAM must be sim or fake" >&2; exit 2 ;;
esac
pids+=("$up_pid")
wait_for "http://$up_addr/v1/models"

taskset -c "$sut_cpu" "$work/load" proxy -addr "$proxy_addr" -upstream "http://$up_addr" >"$work/proxy.log" 2>&1 &
proxy_pid=$!
pids+=("$proxy_pid")
wait_for "http://$proxy_addr/v1/models"

args=(-direct "http://$up_addr" -direct-pid "$up_pid" -proxy "http://$proxy_addr" -proxy-pid "$proxy_pid")
if [ "$want_baimo" = 1 ] && [ "$have_baimo" = 1 ]; then
	cat >"$work/config.yaml" <<EOF
channels:
  - name: local
    kind: openai
    base_url: http://$up_addr/v1
    models: [sim-chat, sim-embed]
sim: {enabled: false}
${BAIMO_CONFIG_EXTRA:-}
EOF
	if [ -n "${PREFILL:-}" ]; then
		mkdir -p "$work/data"
		echo "run.sh: copying $PREFILL" >&2
		cp --reflink=auto "$PREFILL" "$work/data/baimo.db"
		args+=(-baimo-tenant "${TENANT:-bench}")
	fi
	admin_key=bench-admin-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
	BAIMO_ADMIN_KEY=$admin_key taskset -c "$sut_cpu" "$work/baimo" serve --addr "$baimo_addr" \
		--data "$work/data" --config "$work/config.yaml" >"$work/baimo.log" 2>&1 &
	baimo_pid=$!
	pids+=("$baimo_pid")
	if ! wait_for "http://$baimo_addr/readyz"; then
		cat "$work/baimo.log" >&2
		exit 1
	fi
	args+=(-baimo "http://$baimo_addr" -baimo-pid "$baimo_pid" -baimo-admin-key "$admin_key")
fi

mkdir -p "$root/bench/out"
out="$root/bench/out/load-$(date -u +%Y%m%dT%H%M%SZ).md"
{
	echo "Produced by: \`PIN=$pin UPSTREAM=$upstream_kind${PREFILL:+ PREFILL=$PREFILL} bench/load/run.sh $*\` (process under test on CPU $sut_cpu; load generator and upstream on CPU $gen_cpu)"
	echo
	taskset -c "$gen_cpu" "$work/load" run "${args[@]}" "$@"
} | tee "$out"
echo "run.sh: report saved to ${out#"$root"/}" >&2
if [ -n "${baimo_pid:-}" ] && grep -q -i -E 'panic|DATA RACE' "$work/baimo.log"; then
	echo "run.sh: baimo's log shows a panic or race:" >&2
	cat "$work/baimo.log" >&2
	exit 1
fi
