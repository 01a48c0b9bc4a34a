//! The `ferrovec` binary (see [`ferrovec::cli`]).

fn main() -> std::process::ExitCode {
    ferrovec::cli::main()
}
