#!/bin/sh
# Reruns every simulator figure of BENCHMARKS.md §6 (issue 14). Simulator runs
# are CPU-bound but in virtual time: a busy machine makes them slower, never
# different. Usage:
#
#   bench/simulate/run.sh [experiment...]     # all when none is named
#
# Experiments: mooncake-conversation azure-conversation azure-code
# mooncake-synthetic nodes batch. Results (CSV, SVG) go to
# bench/simulate/results/<experiment>/. TRACES names the directory of the
# public traces (see internal/simulate/testdata/README.md for their sources).
set -eu
cd "$(dirname "$0")/../.."
TRACES=${TRACES:-/work/shared/data/traces}
OUT=${OUT:-bench/simulate/results}
WORKERS=${WORKERS:-2}
go build -o /tmp/baimo-sim ./cmd/baimo
sim() { /tmp/baimo-sim simulate --workers "$WORKERS" --quiet "$@"; }

run() {
	case $1 in
	mooncake-conversation) # prefix-heavy: 8 replicas, three 30-minute slices
		sim --trace "$TRACES/mooncake_conversation.jsonl" --replicas 8 --length 30m --seeds 3 --seed-stride 15m \
			--rates 2,3,4,5,6,7,8 --refine 3 --out "$OUT/$1" --title "Mooncake conversation, 8 replicas" ;;
	mooncake-synthetic) # prefix-heavier (65% reuse): 4 replicas, the whole trace, three seeds
		sim --trace "$TRACES/mooncake_synthetic.jsonl" --replicas 4 --seeds 3 \
			--rates 0.5,1,1.5,2,3,4 --refine 3 --out "$OUT/$1" --title "Mooncake synthetic, 4 replicas" ;;
	azure-conversation) # little sharing: 4 replicas, three 30-minute slices
		sim --trace "$TRACES/azure_llm_2023_conv.csv" --replicas 4 --length 30m --seeds 3 --seed-stride 15m \
			--rates 10,14,18,22,26,30 --refine 3 --out "$OUT/$1" --title "Azure 2023 conversation, 4 replicas" ;;
	azure-code) # little sharing: 4 replicas, three 30-minute slices
		sim --trace "$TRACES/azure_llm_2023_code.csv" --replicas 4 --length 30m --seeds 3 --seed-stride 15m \
			--rates 20,30,40,50,60,70 --refine 3 --out "$OUT/$1" --title "Azure 2023 code, 4 replicas" ;;
	nodes) # one gateway node, three apart, three sharing their prefix records (5 ms behind)
		for n in 1 3; do
			sim --trace "$TRACES/mooncake_conversation.jsonl" --replicas 8 --seeds 3 --rates 3 --policies prefix \
				--nodes $n --out "$OUT/$1/nodes-$n-apart"
		done
		sim --trace "$TRACES/mooncake_conversation.jsonl" --replicas 8 --seeds 3 --rates 3 --policies prefix \
			--nodes 3 --share-index --share-delay 5ms --out "$OUT/$1/nodes-3-shared" ;;
	batch) # Azure conversation online + Azure code as a 24 h batch backlog on 2 replicas
		sim --trace "$TRACES/azure_llm_2023_conv.csv" --replicas 2 --length 20m --seeds 3 --seed-stride 20m \
			--rates 4,6,8,10,12 --refine 4 --policies prefix --priority-scheduling \
			--batch "$TRACES/azure_llm_2023_code.csv" --batch-count 30000 --batch-deadline 24h \
			--batch-max-tpot 30ms --batch-max-in-flight 16 \
			--batch-study --batch-at 0.7 --batch-operating-length 1h --batch-operating-repeat 2 --out "$OUT/$1" ;;
	*) echo "unknown experiment $1" >&2; exit 2 ;;
	esac
}

if [ $# -eq 0 ]; then
	set -- mooncake-conversation mooncake-synthetic azure-conversation azure-code nodes batch
fi
for e in "$@"; do
	echo "== $e $(date -u +%H:%M:%S)"
	run "$e"
done
