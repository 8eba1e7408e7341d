#!/usr/bin/env bash
# The README's first command: makes this machine ready (scripts/setup.sh installs what is
# missing), builds the `weir` binary and runs the `word-count` example job on an embedded
# cluster, then says where its output is.
#
# It builds in Cargo's dev profile (the workspace at opt-level 1, dependencies at 2), the same
# profile as `scripts/test.sh`, so the README's second command reuses this build of RocksDB's
# C++ instead of compiling it a second time. Benchmarks use `--release` (see the README).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup.sh

input="data/words.txt"
output="out/word-count"
echo "quickstart: building weir and running word-count on $input (the first build compiles RocksDB's C++)" >&2
# --overwrite: a second run replaces the first one's output (without it, the sink refuses the directory).
cargo run --locked -p weir-examples --bin weir -- run word-count --local -- --input "$input" --output "$output" --overwrite

echo
echo "word-count wrote its output to $output/:"
ls -l "$output"
echo
echo "The ten most frequent words (sort -k2,2nr $output/part-* | head):"
sort -t $'\t' -k2,2nr -k1,1 "$output"/part-* | head -n 10
