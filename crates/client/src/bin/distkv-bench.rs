//! `distkv-bench`: a load generator for DistKV. See `distkv_client::bench`.

/// The load generator allocates per request as the servers do; mimalloc keeps its own CPU,
/// which shares the machine with the servers it measures, low.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    distkv_client::bench::run(std::env::args())
}
