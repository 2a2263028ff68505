#!/usr/bin/env bash
# Runs the load benchmark: a zero-latency upstream (the shared stub in
# ../shared/bench/stub by default) called directly, the reference floor
# gateway (../shared/bench/floor: key check, JSON parse, relay, usage parse,
# nothing persisted) and a bare httputil.ReverseProxy in front of it, and
# baimo in front of it, side by side in one run. baimo bills: a price is added
# as an operator version (POST /admin/prices) and, with PREFILL, requests come
# from a prepaid tenant of a database that already holds millions of records.
# Prints a markdown report and keeps a copy under bench/out/.
#
# Usage: bench/load/run.sh [flags for `load run`, e.g. -n1 5000 -dur 10s]
#
# Environment:
#   PIN=split  (default) process under test on core 1, load generator and upstream on core 0
#   PIN=same   everything on core 0 (no cross-core wake-ups; shows what pinning costs)
#   PIN=none   no pinning
#   UPSTREAM=stub  (default) ../shared/bench/stub
#   UPSTREAM=sim   `baimo sim --ttft 0 --tpot 0`
#   UPSTREAM=fake  the load tool's own minimal upstream (`load upstream`)
#   FLOOR=0    leave the floor gateway out
#   SHARED=dir where the stub and floor sources are (default ../shared/bench)
#   CURRENCY=CNY (default) or USD: baimo's billing currency (a prefilled
#              database's tenant must be in it: mkdb -currency)
#   PRICE="0.15 0.60"  input and output price per 1M tokens of the operator version
#   BAIMO=0    leave baimo out (the direct and proxy columns only)
#   PORT=18090 first of four loopback ports (upstream, proxy, baimo, floor)
#   BAIMO_BIN=path  use this baimo binary instead of building ./cmd/baimo
#   LEDGER=0   metering only: usage records written, no ledger (billing: {ledger: false})
#   BAIMO_CONFIG_EXTRA=yaml  appended to baimo's config, e.g. "billing: {ledger: false}"
#   OPERATOR_PRICE=0  bill sim-chat at its catalog price instead of adding an operator version (for a baimo
#              binary that predates POST /admin/prices, e.g. a before/after comparison with BAIMO_BIN)
#   PREFILL=path.db  start baimo on a copy of this database (go run ./bench/prefill/mkdb -db path.db), with its
#              API key made for the prefilled prepaid tenant (TENANT, default bench) instead of the default one
#   POSTGRES=DSN  start baimo with --postgres DSN instead of SQLite: a node of a multi-node deployment (holds are
#              rows in PostgreSQL, not in memory) on that database, prefilled with
#              `go run ./bench/prefill/mkdb -postgres DSN`, its API key made for TENANT as with PREFILL. The run
#              adds to that database (it is not copied). Not with PREFILL.
#
# The report says which store baimo used and, with PREFILL or POSTGRES, TENANT's balance before and after the
# load (what it paid for the requests).
#
# All traffic stays on 127.0.0.1; every phase is bounded in time and count.
set -euo pipefail

cd "$(dirname "$0")/../.."
root=$(pwd)
pin=${PIN:-split}
upstream_kind=${UPSTREAM:-stub}
want_floor=${FLOOR:-1}
currency=${CURRENCY:-CNY}
read -r price_in price_out <<<"${PRICE:-0.15 0.60}"
shared=${SHARED:-"$(cd "$(dirname "$0")/../.." && pwd)/../shared/bench"}
want_baimo=${BAIMO:-1}
port=${PORT:-18090}
up_addr=127.0.0.1:$port
proxy_addr=127.0.0.1:$((port + 1))
baimo_addr=127.0.0.1:$((port + 2))
floor_addr=127.0.0.1:$((port + 3))

if [ -n "${PREFILL:-}" ] && [ -n "${POSTGRES:-}" ]; then
	echo "run.sh: PREFILL and POSTGRES: pass one" >&2
	exit 2
fi
# The store baimo runs on, as the report names it (a DSN without its password).
if [ -n "${POSTGRES:-}" ]; then
	store="PostgreSQL $(sed -E 's#(://[^:/@]*):[^@]*@#\1:xxxxx@#' <<<"$POSTGRES") (baimo --postgres: a node of a multi-node deployment, holds as rows)"
elif [ -n "${PREFILL:-}" ]; then
	store="SQLite, a copy of $PREFILL (holds in memory)"
else
	store="SQLite, a fresh database (holds in memory)"
fi

case $pin in
split) gen_cpu=0 sut_cpu=1 ;;
same) gen_cpu=0 sut_cpu=0 ;;
none) gen_cpu=0-$(($(nproc) - 1)) sut_cpu=$gen_cpu ;;
*) echo "run.sh: PIN must be split, same or none" >&2; exit 2 ;;
esac

# shellcheck source=procs.sh
. bench/load/procs.sh # the working directory is the repository root

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

for p in "$port" $((port + 1)) $((port + 2)) $((port + 3)); do
	if (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
		echo "run.sh: something already listens on 127.0.0.1:$p; pick other ports with PORT=" >&2
		exit 1
	fi
done

echo "run.sh: building" >&2
go build -o "$work/load" ./bench/load
if [ "$upstream_kind" = stub ] || [ "$want_floor" = 1 ]; then
	if [ ! -d "$shared/stub" ] || [ ! -d "$shared/floor" ]; then
		echo "run.sh: $shared/{stub,floor} not found; use UPSTREAM=sim FLOOR=0" >&2
		exit 1
	fi
	(cd "$shared/stub" && GOFLAGS= go build -o "$work/stub" .)
	(cd "$shared/floor" && GOFLAGS= go build -o "$work/floor" .)
fi
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
stub) taskset -c "$gen_cpu" "$work/stub" -addr "$up_addr" >"$work/sim.log" 2>&1 &
	up_pid=$! ;;
sim) taskset -c "$gen_cpu" "$work/baimo" sim --addr "$up_addr" --ttft 0 --tpot 0 >"$work/sim.log" 2>&1 &
	up_pid=$! ;;
fake) taskset -c "$gen_cpu" "$work/load" upstream -addr "$up_addr" >"$work/sim.log" 2>&1 &
	up_pid=$! ;;
*) echo "run.sh: UPSTREAM must be stub, sim or fake" >&2; exit 2 ;;
esac
pids+=("$up_pid")
wait_for "http://$up_addr/v1/models"

taskset -c "$sut_cpu" "$work/load" proxy -addr "$proxy_addr" -upstream "http://$up_addr" >"$work/proxy.log" 2>&1 &
proxy_pid=$!
pids+=("$proxy_pid")
wait_for "http://$proxy_addr/v1/models"

args=(-direct "http://$up_addr" -direct-pid "$up_pid" -proxy "http://$proxy_addr" -proxy-pid "$proxy_pid")
if [ "$want_floor" = 1 ]; then
	taskset -c "$sut_cpu" "$work/floor" -addr "$floor_addr" -upstream "http://$up_addr" >"$work/floor.log" 2>&1 &
	floor_pid=$!
	pids+=("$floor_pid")
	wait_port "$floor_addr"
	args+=(-floor "http://$floor_addr" -floor-pid "$floor_pid")
fi
if [ "$want_baimo" = 1 ] && [ "$have_baimo" = 1 ]; then
	cat >"$work/config.yaml" <<EOF
channels:
  - name: local
    kind: openai
    base_url: http://$up_addr/v1
    models: [sim-chat, sim-embed, bench-model]
sim: {enabled: false}
billing: {currency: $currency$([ "${LEDGER:-1}" = 0 ] && echo ', ledger: false')}
${BAIMO_CONFIG_EXTRA:-}
EOF
	if [ -n "${PREFILL:-}" ]; then
		mkdir -p "$work/data"
		echo "run.sh: copying $PREFILL" >&2
		cp --reflink=auto "$PREFILL" "$work/data/baimo.db"
		args+=(-baimo-tenant "${TENANT:-bench}")
	fi
	serve=(--addr "$baimo_addr" --data "$work/data" --config "$work/config.yaml")
	if [ -n "${POSTGRES:-}" ]; then
		serve+=(--postgres "$POSTGRES")
		args+=(-baimo-tenant "${TENANT:-bench}")
	fi
	admin_key=bench-admin-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
	BAIMO_ADMIN_KEY=$admin_key taskset -c "$sut_cpu" "$work/baimo" serve "${serve[@]}" >"$work/baimo.log" 2>&1 &
	baimo_pid=$!
	pids+=("$baimo_pid")
	if ! wait_for "http://$baimo_addr/readyz"; then
		cat "$work/baimo.log" >&2
		exit 1
	fi
	# The price the run bills at is an operator's version, added as an
	# operator adds one (in force from now).
	if [ "${OPERATOR_PRICE:-1}" = 0 ]; then
		args+=(-baimo "http://$baimo_addr" -baimo-pid "$baimo_pid" -baimo-admin-key "$admin_key" -model sim-chat)
	elif ! curl -sf -o /dev/null -X POST "http://$baimo_addr/admin/prices" -H "Authorization: Bearer $admin_key" \
		-H 'Content-Type: application/json' -d "{\"model\":\"bench-model\",\"vendor\":\"bench\",\"effective_from\":\"now\",\"currency\":\"$currency\",\"unit\":\"per_1m\",\"source\":\"load run\",\"prices\":{\"input\":\"$price_in\",\"output\":\"$price_out\"},\"context_window\":128000,\"max_output\":16384}"; then
		echo "run.sh: adding the operator price failed" >&2
		cat "$work/baimo.log" >&2
		exit 1
	else
		args+=(-baimo "http://$baimo_addr" -baimo-pid "$baimo_pid" -baimo-admin-key "$admin_key" -model bench-model)
		if [ -n "${POSTGRES:-}" ]; then
			# On a shared store "now" is now plus the time a version takes
			# to reach every node (price.PropagationBound, 5 s).
			sleep 6
		fi
	fi
fi

# balance prints TENANT's balance as baimo's admin API gives it, when the run
# bills a prefilled tenant.
balance() {
	if [ -n "${admin_key:-}" ] && [ -n "${PREFILL:-}${POSTGRES:-}" ]; then
		curl -s --max-time 5 "http://$baimo_addr/admin/tenants/${TENANT:-bench}/balance" \
			-H "Authorization: Bearer $admin_key" || echo "(not read)"
	fi
}

mkdir -p "$root/bench/out"
out="$root/bench/out/load-$(date -u +%Y%m%dT%H%M%SZ).md"
before=$(balance)
{
	echo "Produced by: \`PIN=$pin UPSTREAM=$upstream_kind${PREFILL:+ PREFILL=$PREFILL}${POSTGRES:+ POSTGRES=...} bench/load/run.sh $*\` (process under test on CPU $sut_cpu; load generator and upstream on CPU $gen_cpu)"
	echo
	echo "baimo's store: $store"
	echo
	taskset -c "$gen_cpu" "$work/load" run "${args[@]}" "$@"
	if [ -n "$before" ]; then
		sleep 1 # the recorder's last batch
		echo
		echo "Tenant ${TENANT:-bench}'s balance before the load: \`$before\`"
		echo "and after it: \`$(balance)\`"
	fi
} | tee "$out"
echo "run.sh: report saved to ${out#"$root"/}" >&2
if [ -n "${baimo_pid:-}" ] && grep -q -i -E 'panic|DATA RACE' "$work/baimo.log"; then
	echo "run.sh: baimo's log shows a panic or race:" >&2
	cat "$work/baimo.log" >&2
	exit 1
fi
