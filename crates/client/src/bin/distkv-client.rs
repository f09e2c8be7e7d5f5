//! `distkv-client`: the command-line client. See `distkv_client::cli` for commands and output.

fn main() -> std::process::ExitCode {
    distkv_client::cli::run(std::env::args())
}
