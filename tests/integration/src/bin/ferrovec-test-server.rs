//! The `ferrovec` command line, built inside this package so that the recovery tests
//! can start (and kill -9) it as a real child process (`CARGO_BIN_EXE_*` only names
//! binaries of the package under test).

fn main() -> std::process::ExitCode {
    ferrovec::cli::main()
}
