#!/usr/bin/env bash
# The fuzz step: the fuzz-style property tests of src/fuzz.rs (arbitrary bytes into every parser that
# reads box output), each with up to CASES cases (default 20,000) and an equal share of SECONDS of wall
# time (default 90) after the build; a target stopped by its share has held for every case it ran.
# A failure prints the smallest input proptest found: keep it as a regression test.
# Usage: scripts/fuzz.sh [SECONDS] [CASES]
set -euo pipefail
cd "$(dirname "$0")/.."

budget="${1:-90}"
cases="${2:-20000}"
bin="$(cargo test --lib --no-run 2>&1 | sed -n 's/.*Executable unittests src\/lib.rs (\(.*\))/\1/p' | tail -n 1)"
[ -x "$bin" ] || { echo "fuzz.sh: could not build the unit tests" >&2; exit 1; }
mapfile -t targets < <("$bin" --list fuzz:: 2>/dev/null | sed -n 's/: test$//p')
[ "${#targets[@]}" -gt 0 ] || { echo "fuzz.sh: no fuzz:: tests found" >&2; exit 1; }
share=$((budget / ${#targets[@]}))
[ "$share" -ge 1 ] || share=1
failed=0
for t in "${targets[@]}"; do
  start=$SECONDS
  rc=0
  PROPTEST_CASES="$cases" timeout "$share" "$bin" --exact "$t" --quiet >"target/fuzz-$$.log" 2>&1 || rc=$?
  case $rc in
    0) how="all $cases cases held" ;;
    124) how="held for ${share} s (stopped before $cases cases)" ;;
    *) how="FAILED"; failed=1; cat "target/fuzz-$$.log" ;;
  esac
  echo "fuzz.sh: $t: $how, $((SECONDS - start)) s"
done
rm -f "target/fuzz-$$.log"
exit "$failed"
