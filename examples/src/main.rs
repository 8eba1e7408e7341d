//! The `weir` binary: the example jobs and the full CLI.

fn main() -> std::process::ExitCode {
    weir_cli::main(weir_examples::registry())
}
