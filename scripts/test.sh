#!/usr/bin/env bash
# The README's second command, and what CI runs (.ci/run): makes this machine ready for the
# build and the tests (scripts/setup.sh --tests), then builds and runs every test of the
# workspace and checks its docs.
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh -p weir-state`; the default is the
# whole workspace).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup.sh --tests

cargo --version
rustc --version

if [ $# -eq 0 ]; then
    set -- --workspace
fi
cargo test --locked "$@"

# The whole workspace's run also builds the API docs, refusing broken or private links: the
# crate docs describe the layers and the README points into them.
if [ "$*" = "--workspace" ]; then
    RUSTDOCFLAGS="-D warnings" cargo doc --locked --workspace --no-deps
fi
