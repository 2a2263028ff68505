#!/usr/bin/env bash
# bench/mutation/planted.sh: the money bugs of issue 19, planted one at a time.
#
# Each entry below is a one-line bug a tired developer could write in the
# money path, and the test that must fail when it is there. The script plants
# each through `go test -overlay` (the working tree is never touched), runs
# that test alone, and fails when the test passes or does not run. About a
# minute on the 2-core development machine, most of it the ledger's suite.
#
#   bench/mutation/planted.sh          # every entry
#   bench/mutation/planted.sh refund   # the entries whose name contains "refund"
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/go/bin:$PATH"
root=$PWD
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

failed=0
# plant NAME FILE OLD NEW PACKAGE TEST: OLD must occur exactly once in FILE.
plant() {
  local name=$1 file=$2 old=$3 new=$4 pkg=$5 test=$6
  if [ -n "${only:-}" ] && [[ $name != *"$only"* ]]; then return; fi
  local src rest
  src=$(<"$file")
  rest=${src#*"$old"}
  if [ "$rest" = "$src" ] || [[ $rest == *"$old"* ]]; then
    echo "FAIL $name: the text to replace is not in $file exactly once (the code moved: update this entry)"
    failed=1
    return
  fi
  printf '%s\n' "${src/"$old"/"$new"}" > "$tmp/planted.go"
  printf '{"Replace":{"%s":"%s"}}\n' "$root/$file" "$tmp/planted.go" > "$tmp/overlay.json"
  local out
  if out=$(go test -count=1 -overlay "$tmp/overlay.json" -run "$test" "./$pkg" 2>&1); then
    echo "FAIL $name: $test passes with the bug planted in $file"
    failed=1
  elif ! grep -q -- "--- FAIL: ${test%%/*}" <<<"$out"; then
    echo "FAIL $name: $test did not fail as a test (build error?):"
    tail -5 <<<"$out"
    failed=1
  else
    echo "ok   $name: $test fails"
  fi
}
only=${1:-}

plant "schedule window's last second inside it" internal/price/price.go \
  'sod >= w.To' 'sod > w.To' \
  internal/price TestScheduleBoundaries
plant "holiday range's last day dropped" internal/price/load.go \
  'for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {' 'for d := from; d.Before(to); d = d.AddDate(0, 0, 1) {' \
  internal/price TestHolidayCalendar
plant "exchange rate not in force at its start instant" internal/price/fx.go \
  '!r.EffectiveFrom.After(t)' 'r.EffectiveFrom.Before(t)' \
  internal/price TestExchangeRateInForce
plant "DeepSeek hit+miss input read as the misses only" internal/provider/openai/usage.go \
  'u.Input = *w.PromptCacheHitTokens + *w.PromptCacheMissTokens' 'u.Input = *w.PromptCacheMissTokens' \
  internal/provider/openai TestParseUsage
plant "DeepSeek hit/miss-only usage not read as a report (billed at 0)" internal/provider/openai/usage.go \
  '(w.PromptCacheHitTokens == nil || w.PromptCacheMissTokens == nil) && w.InputTokens == nil' 'w.InputTokens == nil' \
  internal/provider/openai TestParseUsage
plant "Gemini toolUsePromptTokenCount left out of input" internal/provider/gemini/gemini.go \
  'nn(m.PromptTokenCount) + nn(m.ToolUsePromptTokenCount)' 'nn(m.PromptTokenCount)' \
  internal/provider/gemini TestUsageShapes
plant "hold priced at the last candidate, not the dearest" internal/billing/hold.go \
  'if !w.priced || c > w.amount {' 'if true {' \
  internal/billing TestHoldIsTheWorstCase
plant "refund limit ignores overage" internal/ledger/admin.go \
  ' || t.Kind == KindOverage || ' ' || ' \
  internal/ledger 'TestConformance/.*/LedgerRefunds'
plant "allocation gives every leftover nano to one part" internal/money/arith.go \
  $'parts[best] += step\n\t\trems[best] = 0' 'parts[best] += step' \
  internal/money TestAllocate
plant "rounding gives every leftover minor unit to one line" internal/money/arith.go \
  $'dst[best] += u\n\t\trems[best] = 0' 'dst[best] += u' \
  internal/money TestRoundAll
exit $failed
