# procs.sh: sourced by run.sh and memory.sh. A scratch directory ($work), the
# processes a script starts ($pids: stopped, then killed, at exit) and
# wait_port ADDR: poll until ADDR accepts a connection, for at most 20 s.
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

wait_port() {
	for _ in $(seq 200); do
		if (echo >"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	echo "$(basename "$0"): $1 did not listen within 20 s" >&2
	return 1
}
