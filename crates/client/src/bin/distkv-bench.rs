//! `distkv-bench`: a load generator for DistKV. See `distkv_client::bench`.

fn main() -> std::process::ExitCode {
    distkv_client::bench::run(std::env::args())
}
