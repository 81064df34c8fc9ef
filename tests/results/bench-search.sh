#!/usr/bin/env bash
# tests/results/bench-search.sh EARMARK DB VOCAB.txt [ROUNDS]: wall time of `earmark search`
# (process start, opening the database, the query, printing; default --limit 20) for
# queries of known frequency: single words of Zipf rank 1, 3, 10, 30, 100, 300, 1000, 3000,
# 10000 (VOCAB.txt from make-records.py --vocab), two-word queries, an event tag, and each
# with --event speech (needs the sqlite3 CLI, Debian sqlite3, for the match counts).
# Prints "wall-us in-process-ms cpu-ms matching-rows query" per run (in-process:
# search --timing, open + query + close without the process start; cpu: its user + system
# CPU time, which a busy machine does not inflate), then the three summaries.
set -euo pipefail
bin=$1 db=$2 vocab=$3 rounds=${4:-3}
w() { awk -v r="$1" '$1 == r { print $2 }' "$vocab"; }
queries=()
for r in 1 3 10 30 100 300 1000 3000 10000; do queries+=("$(w "$r")"); done
queries+=("$(w 10) $(w 100)" "$(w 100) $(w 1000)" "$(w 2) $(w 5)" "dog barking" "rain")
tmp=$(mktemp)
for ((k = 0; k < rounds; k++)); do
  for q in "${queries[@]}"; do
    for ev in "" "--event speech"; do
      fq=$(printf '"%s" ' $q)
      rows=$(sqlite3 "$db" "SELECT count(*) FROM fts WHERE fts MATCH '${fq% }'")
      s=$(date +%s%N)
      t=$("$bin" search --db "$db" --timing $ev $q 2>&1 >/dev/null)
      e=$(date +%s%N)
      inproc=$(awk '{ print $(NF - 1) }' <<<"$t")
      cpu=$(awk '{ for (i = 1; i < NF; i++) if ($i == "cpu") print $(i + 1) }' <<<"$t")
      echo "$(((e - s) / 1000)) $inproc ${cpu:-?} $rows $q $ev" | tee -a "$tmp"
    done
  done
done
sort -n "$tmp" | awk '{ a[NR] = $1 } END { printf "wall:       runs %d  min %.1f ms  median %.1f ms  p90 %.1f ms  max %.1f ms\n", NR, a[1] / 1000, a[int((NR + 1) / 2)] / 1000, a[int(NR * 0.9)] / 1000, a[NR] / 1000 }'
for c in 2:in-process 3:cpu; do
  sort -k${c%%:*} -g "$tmp" | awk -v k=${c%%:*} -v name=${c#*:} '{ a[NR] = $k } END { printf "%-11s runs %d  min %.1f ms  median %.1f ms  p90 %.1f ms  max %.1f ms\n", name ":", NR, a[1], a[int((NR + 1) / 2)], a[int(NR * 0.9)], a[NR] }'
done
rm -f "$tmp"
