#!/usr/bin/env bash
# redb vs sled on swarmsync's piece-index workload.
# Builds tools/bench/metastore in release, runs both engines in one go and
# prints a markdown report on stdout (progress and raw JSON go to stderr).
# Background: docs/decisions/0001-metadata-store.md.
#
#   tools/bench/metastore.sh > report.md
#
# Knobs (environment): RECORDS (1000000), KILLS (50), OUT (tools/bench/out/metastore).
# Takes 3-4 minutes on a quiet 2-core VM (about 6 with other builds running);
# needs ~1.5 GiB free disk under OUT. Times swing with machine load; memory,
# disk and crash results do not.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
records=${RECORDS:-1000000}
kills=${KILLS:-50}
out=${OUT:-$here/out/metastore}
data=$out/data

echo "building metastore (release)..." >&2
(cd "$here/metastore" && nice cargo build --release --locked --quiet)
bin=$here/metastore/target/release/metastore

rm -rf "$out"
mkdir -p "$data"
results=$out/results.jsonl
: > "$results"

run() {
    echo "+ metastore $* --dir $data" >&2
    "$bin" "$@" --dir "$data" | tee -a "$results" >&2
    # keep the logs of crash runs, drop the databases
    rm -rf "$data"/index.redb "$data"/index.sled
}

started=$(date -u +%s)
started_at=$(date -u '+%Y-%m-%d %H:%M UTC')
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

for engine in redb sled; do
    run fill --engine "$engine" --records "$records"
    run fill --engine "$engine" --records "$records" --cache-mib 16
    run fill --engine "$engine" --records "$records" --cache-mib 4
done
run fill --engine redb --records "$records" --cache-mib 4 --quick-repair
run fill --engine redb --records "$records" --cache-mib 4 --batch 1024

run crash --engine redb --prefill "$records" --kills "$kills" --cache-mib 4
run crash --engine redb --prefill "$records" --kills "$kills" --cache-mib 4 --quick-repair
run crash --engine sled --prefill "$records" --kills "$kills"
# Negative controls: commits reported but never made durable must show up as lost.
run crash --engine redb --prefill 100000 --kills 10 --cache-mib 4 --no-sync
run crash --engine sled --prefill 100000 --kills 10 --no-sync

load_after=$(cut -d' ' -f1-3 /proc/loadavg)

version() { grep -A1 "^name = \"$1\"" "$here/metastore/Cargo.lock" | sed -n 's/^version = "\(.*\)"/\1/p'; }

echo "## redb vs sled: piece-index workload"
echo
echo "- command: \`RECORDS=$records KILLS=$kills tools/bench/metastore.sh\`"
echo "- date: $started_at, took $(( $(date -u +%s) - started )) s"
echo "- machine: $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM, Linux $(uname -r), $(df -T "$out" | awk 'NR==2 {print $2}') on $(df "$out" | awk 'NR==2 {print $1}'); load average before / after: $load_before / $load_after"
echo "- engines: redb $(version redb), sled $(version sled); $(rustc --version)"
echo
"$bin" table "$results"
