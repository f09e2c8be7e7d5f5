//! `distkv-server`: parse flags (Go syntax, as the original's), set up logging, open the node,
//! serve until SIGINT, SIGTERM or SIGHUP.

use std::process::ExitCode;

use distkv_node::{Node, server};
use tracing_subscriber::EnvFilter;

/// mimalloc rather than glibc's malloc: a request allocates and frees dozens of small buffers
/// across threads (HTTP/2 frames, protobuf messages, versions), and glibc's arenas spent about
/// a sixth of a loaded node's CPU on them (`perf`, 3 nodes, mixed load).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let settings = match distkv_node::settings::parse(std::env::args(), std::env::vars()) {
        Ok(s) => s,
        Err(distkv_node::settings::SettingsError::Flags(e))
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) =>
        {
            e.exit()
        }
        Err(distkv_node::settings::SettingsError::Flags(e)) => {
            // As Go's flag package: the problem, then how to get the usage; exit 2.
            eprintln!("{}", distkv_flags::describe_flag_error(&e));
            eprintln!("Run 'distkv-server -help' for the flags.");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("distkv-server: invalid configuration: {e}");
            return ExitCode::from(1);
        }
    };
    for var in &settings.unknown_variables {
        eprintln!("distkv-server: warning: environment variable {var} is not a setting; ignored");
    }
    if settings.print_config {
        print!("{}", settings.to_toml());
        // Check everything a start would check (certificate files included), without starting.
        let checked = settings
            .flags
            .clone()
            .into_config()
            .map_err(|e| e.to_string())
            .and_then(|_| {
                EnvFilter::try_new(&settings.flags.log_level)
                    .map(drop)
                    .map_err(|e| {
                        format!(
                            "invalid configuration: -log-level {:?}: {e}",
                            settings.flags.log_level
                        )
                    })
            });
        return match checked {
            Ok(()) => {
                println!("# valid: a node starts with these settings");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("distkv-server: {e}");
                ExitCode::from(1)
            }
        };
    }
    let flags = settings.flags;
    let (log_level, log_format) = (flags.log_level.clone(), flags.log_format.clone());
    let mut config = match flags.into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("distkv-server: {e}");
            return ExitCode::from(1);
        }
    };
    let filter = match EnvFilter::try_new(&log_level) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("distkv-server: invalid configuration: -log-level {log_level:?}: {e}");
            return ExitCode::from(1);
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
    #[cfg(unix)]
    match distkv_node::conn::raise_open_files_limit(config.max_connections) {
        Ok(None) => {}
        Ok(Some(warning)) => tracing::warn!("{warning}"),
        Err(e) => tracing::warn!(error = %e, "cannot read the open-files limit"),
    }
    if let Err(e) = config.resolve_node_id() {
        eprintln!(
            "distkv-server: cannot use data directory {}: {e}",
            config.data_dir.display()
        );
        return ExitCode::from(1);
    }
    // Requests run on the worker threads (one per core, or -worker-threads); only engine reads
    // that need the disk, writes the engine stalls, and bulk work (streaming, repair, hints,
    // backups) take a blocking thread, and a bounded number of them, so that the threads of a
    // node do not grow with its clients.
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder
        .enable_all()
        .max_blocking_threads(distkv_node::server::BLOCKING_THREADS);
    if let Some(n) = config.worker_threads {
        builder.worker_threads(n);
    }
    let runtime = match builder.build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("distkv-server: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("distkv-server: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(config: distkv_node::NodeConfig) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&config.listen_address)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen_address))?;
    let dir = config.data_dir.clone();
    let node = Node::open(config)
        .map_err(|e| anyhow::anyhow!("cannot open data directory {}: {e}", dir.display()))?;
    server::serve(node, listener, shutdown_signal()).await
}

/// Completes on SIGINT, SIGTERM or SIGHUP (the original's three).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut streams = Vec::new();
        for (kind, name) in [
            (SignalKind::interrupt(), "SIGINT"),
            (SignalKind::terminate(), "SIGTERM"),
            (SignalKind::hangup(), "SIGHUP"),
        ] {
            match signal(kind) {
                Ok(s) => streams.push((s, name)),
                Err(e) => tracing::warn!(signal = name, error = %e, "cannot watch signal"),
            }
        }
        if streams.is_empty() {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("signal received: shutting down");
            return;
        }
        let waits = streams.iter_mut().map(|(s, name)| {
            Box::pin(async move {
                s.recv().await;
                *name
            })
        });
        let (name, _, _) = futures::future::select_all(waits).await;
        tracing::info!(signal = name, "signal received: shutting down");
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("Ctrl-C received: shutting down");
    }
}
