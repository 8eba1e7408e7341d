//! `scripts/setup.sh`, which the README's two commands and CI run first on a fresh machine:
//! its libclang detection against fake roots laid out as Debian lays them out.
//!
//! A fresh Debian image has `libclang-cpp.so.14` and nothing else named like libclang; an
//! earlier check matched that by a substring of `ldconfig -p`, skipped the install, and the
//! RocksDB build then failed with bindgen's "Unable to find libclang".

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use crate::support::{TempDir, output_within, repo_root};

const TIMEOUT: Duration = Duration::from_secs(30);

/// A 64-bit ELF header, as much of a shared library as clang-sys reads before loading it.
const ELF64: &[u8] = b"\x7fELF\x02\x01\x01\x00";
const ELF32: &[u8] = b"\x7fELF\x01\x01\x01\x00";

fn file(root: &Path, path: &str, bytes: &[u8]) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn symlink(root: &Path, link: &str, target: &str) {
    let link = root.join(link);
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(target, link).unwrap();
}

/// What a fresh image has: the C++ interface library, which is not libclang.
fn fresh_debian(root: &Path) {
    file(root, "usr/lib/x86_64-linux-gnu/libclang-cpp.so.14", ELF64);
    symlink(root, "usr/lib/llvm-14/lib/libclang-cpp.so.14", "../../x86_64-linux-gnu/libclang-cpp.so.14");
}

/// What `apt-get install libclang-dev` adds on Debian 12: libclang1-14's library, the links of
/// libclang-14-dev and the builtin headers of libclang-common-14-dev.
fn with_libclang_dev(root: &Path) {
    file(root, "usr/lib/x86_64-linux-gnu/libclang-14.so.1", ELF64);
    symlink(root, "usr/lib/llvm-14/lib/libclang.so", "../../x86_64-linux-gnu/libclang-14.so.1");
    symlink(root, "usr/lib/llvm-14/lib/libclang-14.so.1", "../../x86_64-linux-gnu/libclang-14.so.1");
    file(root, "usr/lib/llvm-14/lib/clang/14.0.6/include/stddef.h", b"");
}

fn setup(root: &Path, arg: &str, libclang_path: Option<&Path>) -> Output {
    let mut command = Command::new("bash");
    command
        .arg(repo_root().join("scripts/setup.sh"))
        .arg(arg)
        .env("WEIR_SETUP_ROOT", root)
        .env_remove("LIBCLANG_PATH")
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("LIBRARY_PATH");
    if let Some(path) = libclang_path {
        command.env("LIBCLANG_PATH", path);
    }
    output_within(command, &format!("scripts/setup.sh {arg}"), TIMEOUT)
}

/// The libclang the script would hand bindgen, or its reason for none.
fn found(root: &Path, libclang_path: Option<&Path>) -> Result<String, String> {
    let out = setup(root, "--find-libclang", libclang_path);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    match out.status.code() {
        Some(0) => Ok(String::from_utf8(out.stdout).unwrap().trim().to_owned()),
        Some(1) => Err(stderr),
        other => panic!("setup.sh --find-libclang exited {other:?}: {stderr}"),
    }
}

#[test]
fn a_fresh_image_with_only_libclang_cpp_needs_libclang_dev() {
    let root = TempDir::new("setup-fresh");
    fresh_debian(&root.0);
    let reason = found(&root.0, None).unwrap_err();
    assert!(reason.contains("no libclang found"), "{reason}");

    // --check decides to install it.
    let out = setup(&root.0, "--check", None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("would install:") && stderr.contains("libclang-dev"), "{stderr}");
}

#[test]
fn libclang_dev_as_debian_installs_it_is_found() {
    let root = TempDir::new("setup-dev");
    fresh_debian(&root.0);
    with_libclang_dev(&root.0);
    let path = found(&root.0, None).unwrap();
    assert!(path.starts_with(root.0.to_str().unwrap()), "{path}");
    let name = Path::new(&path).file_name().unwrap().to_str().unwrap();
    assert!(!name.contains("-cpp"), "{path}");
    assert!(name.starts_with("libclang.so") || name.starts_with("libclang-14.so"), "{path}");
}

#[test]
fn a_libclang_without_its_builtin_headers_is_not_enough() {
    // libclang1-14 alone (no libclang-common-14-dev): bindgen would fail on <stddef.h>.
    let root = TempDir::new("setup-noheaders");
    fresh_debian(&root.0);
    file(&root.0, "usr/lib/x86_64-linux-gnu/libclang-14.so.1", ELF64);
    symlink(&root.0, "usr/lib/llvm-14/lib/libclang.so.1", "../../x86_64-linux-gnu/libclang-14.so.1");
    let reason = found(&root.0, None).unwrap_err();
    assert!(reason.contains("builtin headers"), "{reason}");
}

#[test]
fn a_32_bit_libclang_is_skipped_as_clang_sys_skips_it() {
    let root = TempDir::new("setup-elf32");
    file(&root.0, "usr/lib/libclang.so", ELF32);
    file(&root.0, "usr/lib/clang/14/include/stddef.h", b"");
    let reason = found(&root.0, None).unwrap_err();
    assert!(reason.contains("no libclang found"), "{reason}");
    file(&root.0, "usr/lib64/libclang.so", ELF64);
    file(&root.0, "usr/lib64/clang/14/include/stddef.h", b"");
    assert_eq!(found(&root.0, None).unwrap(), root.join("usr/lib64/libclang.so").to_str().unwrap());
}

#[test]
fn libclang_path_is_the_only_place_searched_when_set() {
    let root = TempDir::new("setup-libclang-path");
    with_libclang_dev(&root.0);
    let custom = TempDir::new("setup-libclang-path-custom");

    // Set but empty of libclang: not found, though the system has one (as clang-sys does).
    let reason = found(&root.0, Some(&custom.0)).unwrap_err();
    assert!(reason.contains("LIBCLANG_PATH="), "{reason}");

    // A directory holding one, or the file itself.
    file(&custom.0, "libclang-17.so", ELF64);
    file(&custom.0, "clang/17/include/stddef.h", b"");
    let expected = custom.join("libclang-17.so");
    assert_eq!(found(&root.0, Some(&custom.0)).unwrap(), expected.to_str().unwrap());
    assert_eq!(found(&root.0, Some(&expected)).unwrap(), expected.to_str().unwrap());

    // With no system libclang at all, LIBCLANG_PATH alone makes the machine ready.
    let bare = TempDir::new("setup-libclang-path-bare");
    fresh_debian(&bare.0);
    assert_eq!(found(&bare.0, Some(&custom.0)).unwrap(), expected.to_str().unwrap());
}

#[test]
fn a_bad_argument_is_named() {
    let root = TempDir::new("setup-arg");
    let out = setup(&root.0, "--instal", None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unknown argument '--instal'"), "{stderr}");
}
