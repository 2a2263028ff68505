#!/bin/bash
# pgcpu.sh runs a command and prints the CPU time (user + system) that the
# local PostgreSQL server's processes spent while it ran: a figure that the
# machine's other load disturbs far less than pairs/s. Linux only; it reads
# /proc/<pid>/stat of the processes of the user "postgres" every 50 ms.
#
#   bench/ledger/pgcpu.sh taskset -c 1 go test -run '^$' -bench Postgres -cpu 1 -benchtime 20000x ./bench/ledger/
set -u
declare -A first last
sample() {
	local p s f
	for p in $(pgrep -u postgres); do
		s=$(cat "/proc/$p/stat" 2>/dev/null) || continue
		read -r -a f <<<"${s##*) }"
		last[$p]=$((f[11] + f[12]))               # utime + stime, in clock ticks
		[ -n "${first[$p]:-}" ] || first[$p]=${1:-${last[$p]}} # processes born during the run count from 0
	done
}
sample
"$@" &
cmd=$!
while kill -0 "$cmd" 2>/dev/null; do
	sample 0
	sleep 0.05
done
wait "$cmd"
rc=$?
sample 0
ticks=0
for p in "${!last[@]}"; do
	ticks=$((ticks + last[$p] - first[$p]))
done
echo "postgres cpu: $(echo "scale=2; $ticks / $(getconf CLK_TCK)" | bc) s"
exit $rc
