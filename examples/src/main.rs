//! The `weir` binary: the example jobs and the full CLI.

/// mimalloc: records and state are many small allocations made and freed on several threads,
/// where glibc's arenas contend (see the README's Performance section).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    weir_cli::main(weir_examples::registry())
}
