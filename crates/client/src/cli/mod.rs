//! The `distkv-client` command line.
//!
//! It keeps the original Go client's interface, so that scripts written for it keep working:
//! the same flags in Go syntax (`-server=host:port`, `-timeout 500ms`, bare `-tls-enabled`),
//! the same commands and the same lines on stdout. What changed, on purpose:
//!
//! - `-consistency` defaults to `quorum`, as the original's help and README said (the original
//!   used `one`), is sent as the client's choice, and anything but one/quorum/all is an error
//!   (exit status 1) instead of silently meaning `one`.
//! - `help`, usage errors and unknown commands need no server (the original dialed first).
//! - Nothing is logged on a successful run: the original's `Connecting to server ...` line is
//!   printed on stderr only with `-v`, without Go's timestamp.
//! - Errors are one line on stderr, `Error: <what failed>: <why>`, exit status 1; connection
//!   errors name the server (`Error: failed to connect to server 127.0.0.1:1: ...`).
//! - Usage errors print `Usage: distkv-client <command> ...` on stderr (the original printed
//!   `Usage: client ...` on stdout) and exit 1; extra arguments are an error too (the original
//!   ignored them, so `put k two words` silently stored `two`).
//! - `status` sorts nodes by id and adds storage, operations and anti-entropy blocks; `get`
//!   shows siblings; `scan`, `ring`, `decommission`, `removenode`, `repair`, `rebalance`,
//!   `backup` and `health` are new; `-o json` prints one JSON object per command.
//!
//! Flags go before the command, as with Go's `flag` package: everything from the command word on
//! belongs to the command, so values may start with a dash (`put k -1`).
//!
//! Exit status: 0 on success (including `Key 'k' not found` and a partially failed batch, as in
//! the original), 1 on any error or usage error, 2 on a malformed flag (unknown flag, bad
//! duration), as Go's `flag` package does.
//!
//! JSON output (`-o json`): every command but `help` prints exactly one object on one line with
//! a `"command"` field naming it; the other fields are documented in each command's module
//! ([`put`], [`get`], [`delete`], [`batch`], [`scan`], [`status`], [`ring`]). When a command
//! fails after its arguments were accepted (no connection, server error), stdout gets
//! `{"command":"<name>","error":"<message>"}` and stderr the usual error line; usage and flag
//! errors print only on stderr. Values are bytes: both formats show them as UTF-8, with invalid
//! sequences replaced by U+FFFD (the original wrote the raw bytes).
//!
//! Each command lives in its own module with a `render` function from domain results to the
//! exact output, so formats are tested without a server.

pub mod admin;
pub mod backup;
pub mod batch;
pub mod delete;
pub mod get;
pub mod health;
pub mod help;
pub mod output;
pub mod put;
pub mod ring;
pub mod scan;
pub mod status;

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use distkv_flags::{normalize_go_flags, parse_go_bool, parse_go_duration};

use crate::client::{Client, ClientConfig, DEFAULT_SERVER, DEFAULT_TLS_SERVER_NAME, TlsConfig};
use crate::error::ClientError;
use crate::routing::ClusterClient;
use crate::types::Consistency;
use output::OutputFormat;

/// The global flags, named as the original's.
#[derive(Debug, Parser)]
#[command(
    name = "distkv-client",
    // As with Go's flag package, a repeated flag takes its last value.
    args_override_self = true,
    disable_help_flag = true,
    disable_version_flag = true
)]
struct Flags {
    #[arg(long, default_value = DEFAULT_SERVER)]
    server: String,
    #[arg(long, default_value = "5s", value_parser = parse_go_duration)]
    timeout: Duration,
    /// Checked after parsing so that a bad level exits with status 1 and a clear message.
    #[arg(long, default_value = "quorum")]
    consistency: String,
    #[arg(short = 'o', long = "output", default_value = "text")]
    output: String,
    #[arg(short = 'v', long = "verbose", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_parser = parse_go_bool)]
    verbose: bool,
    #[arg(short = 'h', long = "help", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_parser = parse_go_bool)]
    help: bool,
    #[command(flatten)]
    tls: TlsFlags,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true)]
    command: Vec<String>,
}

/// The original client's TLS flags, shared with `distkv-bench`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct TlsFlags {
    /// Enable TLS.
    #[arg(long, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_parser = parse_go_bool)]
    tls_enabled: bool,
    /// CA certificate that signed the server's certificate (default: the system's roots).
    #[arg(long)]
    tls_ca_file: Option<PathBuf>,
    /// Client certificate, for mutual TLS.
    #[arg(long)]
    tls_cert_file: Option<PathBuf>,
    /// Client private key, for mutual TLS.
    #[arg(long)]
    tls_key_file: Option<PathBuf>,
    /// The name the server's certificate must carry.
    #[arg(long, default_value = DEFAULT_TLS_SERVER_NAME)]
    tls_server_name: String,
    /// Skip certificate verification (tests only: anyone can impersonate the server).
    #[arg(long, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_parser = parse_go_bool)]
    tls_insecure_skip_verify: bool,
}

impl TlsFlags {
    /// The TLS settings, or `None` without `-tls-enabled` (the other TLS flags are then
    /// ignored, as in the original).
    pub(crate) fn config(&self) -> Option<TlsConfig> {
        self.tls_enabled.then(|| TlsConfig {
            ca_file: self.tls_ca_file.clone(),
            cert_file: self.tls_cert_file.clone(),
            key_file: self.tls_key_file.clone(),
            server_name: self.tls_server_name.clone(),
            insecure_skip_verify: self.tls_insecure_skip_verify,
        })
    }
}

/// The TLS flags that take a value.
pub(crate) const TLS_VALUE_FLAGS: [&str; 4] = [
    "tls-ca-file",
    "tls-cert-file",
    "tls-key-file",
    "tls-server-name",
];

/// The flags that take a value, for [`normalize_go_flags`].
fn takes_value(name: &str) -> bool {
    matches!(name, "server" | "timeout" | "consistency" | "o" | "output")
        || TLS_VALUE_FLAGS.contains(&name)
}

/// Everything the flags decide, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settings {
    pub client: ClientConfig,
    pub consistency: Consistency,
    pub format: OutputFormat,
    pub verbose: bool,
}

/// A flag value that parses but makes no sense; exit status 1.
#[derive(Debug, thiserror::Error)]
enum SettingsError {
    #[error(transparent)]
    Consistency(#[from] crate::types::InvalidConsistency),
    #[error(transparent)]
    Output(#[from] output::InvalidOutputFormat),
}

impl Flags {
    fn settings(&self) -> Result<Settings, SettingsError> {
        Ok(Settings {
            client: ClientConfig {
                server: self.server.clone(),
                timeout: self.timeout,
                tls: self.tls.config(),
            },
            consistency: self.consistency.parse()?,
            format: self.output.parse()?,
            verbose: self.verbose,
        })
    }
}

/// A command line that names no valid command; exit status 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UsageError {
    /// No command at all: the usage text.
    NoCommand,
    /// `Unknown command: <x>` and the usage text.
    Unknown(String),
    /// `Usage: <usage>`.
    WrongArgs(&'static str),
    /// `Error: <reason>` and `Usage: <usage>`.
    Invalid { reason: String, usage: &'static str },
}

impl UsageError {
    /// The text for stderr.
    fn render(&self) -> String {
        match self {
            UsageError::NoCommand => help::USAGE.to_string(),
            UsageError::Unknown(command) => format!("Unknown command: {command}\n{}", help::USAGE),
            UsageError::WrongArgs(usage) => format!("Usage: {usage}\n"),
            UsageError::Invalid { reason, usage } => format!("Error: {reason}\nUsage: {usage}\n"),
        }
    }
}

/// A parsed command with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    Put(put::Put),
    Get(get::Get),
    Delete(delete::Delete),
    Batch(batch::Batch),
    Scan(scan::Scan),
    Status,
    Ring,
    Admin(admin::Admin),
    Backup(backup::Backup),
    Health,
    Help,
}

impl Command {
    pub(crate) fn parse(words: &[String]) -> Result<Command, UsageError> {
        let Some((name, args)) = words.split_first() else {
            return Err(UsageError::NoCommand);
        };
        Ok(match name.as_str() {
            "put" => Command::Put(put::Put::parse(args)?),
            "get" => Command::Get(get::Get::parse(args)?),
            "delete" => Command::Delete(delete::Delete::parse(args)?),
            "batch" => Command::Batch(batch::Batch::parse(args)?),
            "scan" => Command::Scan(scan::Scan::parse(args)?),
            "status" => {
                status::parse(args)?;
                Command::Status
            }
            "ring" => {
                ring::parse(args)?;
                Command::Ring
            }
            "health" => {
                health::parse(args)?;
                Command::Health
            }
            "decommission" | "removenode" | "repair" | "rebalance" => {
                Command::Admin(admin::Admin::parse(name, args)?)
            }
            "backup" => Command::Backup(backup::Backup::parse(args)?),
            "help" => {
                help::parse(args)?;
                Command::Help
            }
            other => return Err(UsageError::Unknown(other.to_string())),
        })
    }

    fn name(&self) -> &'static str {
        match self {
            Command::Put(_) => "put",
            Command::Get(_) => "get",
            Command::Delete(_) => "delete",
            Command::Batch(_) => "batch",
            Command::Scan(_) => "scan",
            Command::Status => "status",
            Command::Ring => "ring",
            Command::Admin(a) => a.name(),
            Command::Backup(_) => "backup",
            Command::Health => "health",
            Command::Help => "help",
        }
    }

    async fn execute(&self, ctx: &Ctx, out: &mut dyn Write) -> Result<(), CliError> {
        match self {
            Command::Put(put) => put.execute(ctx, out).await,
            Command::Get(get) => get.execute(ctx, out).await,
            Command::Delete(delete) => delete.execute(ctx, out).await,
            Command::Batch(batch) => batch.execute(ctx, out).await,
            Command::Scan(scan) => scan.execute(ctx, out).await,
            Command::Status => status::execute(ctx, out).await,
            Command::Ring => ring::execute(ctx, out).await,
            Command::Admin(a) => a.execute(ctx, out).await,
            Command::Backup(b) => b.execute(ctx, out).await,
            Command::Health => health::execute(ctx, out).await,
            Command::Help => {
                out.write_all(help::USAGE.as_bytes())?;
                Ok(())
            }
        }
    }
}

/// What a command runs with.
pub(crate) struct Ctx {
    /// The node given with -server, for every command not about one key.
    pub client: Client,
    /// Gets, puts and deletes: sent to a replica of their key (see [`crate::routing`]).
    pub routed: ClusterClient,
    pub consistency: Consistency,
    pub format: OutputFormat,
}

/// Why a command failed after it was accepted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("cannot write output: {0}")]
    Output(#[from] io::Error),
}

/// Runs the client on `args` (the program name first, as from `std::env::args`), printing to
/// stdout and stderr, and returns the exit status.
pub fn run(args: impl IntoIterator<Item = String>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut err = io::stderr();
    let code = runtime.block_on(run_with(args, &mut out, &mut err));
    match out.flush() {
        Ok(()) => ExitCode::from(code),
        // A closed pipe (`| head`) ends the output quietly.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::from(1),
        Err(e) => {
            eprintln!("Error: cannot write output: {e}");
            ExitCode::from(1)
        }
    }
}

/// Runs the client on `args`, writing what it prints to `out` and `err`; returns the exit
/// status. Writes to `err` are best-effort.
pub async fn run_with(
    args: impl IntoIterator<Item = String>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let mut args = args.into_iter();
    let program = args.next().unwrap_or_else(|| "distkv-client".to_string());
    let normalized = std::iter::once(program).chain(normalize_go_flags(args, takes_value));
    let flags = match Flags::try_parse_from(normalized) {
        Ok(flags) => flags,
        Err(e) => {
            // One line naming the problem (as Go words it); clap's usage line would not be ours.
            let _ = writeln!(err, "Error: {}", distkv_flags::describe_flag_error(&e));
            let _ = writeln!(err, "Run 'distkv-client help' for usage.");
            return 2;
        }
    };
    if flags.help {
        return write_out(out, err, help::USAGE);
    }
    let command = match Command::parse(&flags.command) {
        Ok(command) => command,
        Err(usage) => {
            let _ = err.write_all(usage.render().as_bytes());
            return 1;
        }
    };
    if command == Command::Help {
        return write_out(out, err, help::USAGE);
    }
    let settings = match flags.settings() {
        Ok(settings) => settings,
        Err(e) => {
            let _ = writeln!(err, "Error: {e}");
            return 1;
        }
    };
    if settings.verbose {
        let mode = match settings.client.tls {
            Some(_) => "with TLS enabled",
            None => "WITHOUT TLS (insecure)",
        };
        let _ = writeln!(
            err,
            "Connecting to server {} {mode}",
            settings.client.server
        );
    }
    let format = settings.format;
    let result = match ClusterClient::connect(settings.client).await {
        Ok(routed) => {
            let ctx = Ctx {
                client: routed.seed().clone(),
                routed,
                consistency: settings.consistency,
                format,
            };
            command.execute(&ctx, out).await
        }
        Err(e) => Err(CliError::Client(e)),
    };
    match result {
        Ok(()) => 0,
        Err(CliError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => 1,
        Err(e) => {
            let message = e.to_string();
            if format == OutputFormat::Json && matches!(e, CliError::Client(_)) {
                let _ =
                    out.write_all(output::render_error_json(command.name(), &message).as_bytes());
            }
            let _ = writeln!(err, "Error: {message}");
            1
        }
    }
}

fn write_out(out: &mut dyn Write, err: &mut dyn Write, text: &str) -> u8 {
    match out.write_all(text.as_bytes()) {
        Ok(()) => 0,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => 1,
        Err(e) => {
            let _ = writeln!(err, "Error: cannot write output: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(args: &[&str]) -> Result<Flags, clap::Error> {
        let args = args.iter().map(|a| a.to_string());
        Flags::try_parse_from(
            std::iter::once("distkv-client".to_string())
                .chain(normalize_go_flags(args, takes_value)),
        )
    }

    fn settings(args: &[&str]) -> Settings {
        flags(args).unwrap().settings().unwrap()
    }

    /// Runs the CLI with `args`; returns (exit status, stdout, stderr).
    fn run_cli(args: &[&str]) -> (u8, String, String) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut out = Vec::new();
        let mut err = Vec::new();
        let args =
            std::iter::once("distkv-client".to_string()).chain(args.iter().map(|a| a.to_string()));
        let code = runtime.block_on(run_with(args, &mut out, &mut err));
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn defaults() {
        let s = settings(&[]);
        assert_eq!(s.client.server, "localhost:8080");
        assert_eq!(s.client.timeout, Duration::from_secs(5));
        assert_eq!(s.client.tls, None);
        assert_eq!(s.consistency, Consistency::Quorum);
        assert_eq!(s.format, OutputFormat::Text);
        assert!(!s.verbose);
    }

    #[test]
    fn go_style_flags() {
        let s = settings(&[
            "-server=10.0.0.1:9000",
            "-timeout",
            "1m30s",
            "-consistency=ALL",
            "-o",
            "json",
            "-v",
            "get",
            "k",
        ]);
        assert_eq!(s.client.server, "10.0.0.1:9000");
        assert_eq!(s.client.timeout, Duration::from_secs(90));
        assert_eq!(s.consistency, Consistency::All);
        assert_eq!(s.format, OutputFormat::Json);
        assert!(s.verbose);
        assert_eq!(flags(&["-o=json"]).unwrap().output, "json");
        assert_eq!(flags(&["--output", "json"]).unwrap().output, "json");
        assert_eq!(flags(&["--server", "h:1"]).unwrap().server, "h:1");
        assert_eq!(flags(&["-consistency", "one"]).unwrap().consistency, "one");
    }

    #[test]
    fn tls_flags() {
        let s = settings(&[
            "-tls-enabled",
            "-tls-ca-file=/ca.pem",
            "-tls-cert-file",
            "/c.pem",
            "-tls-key-file",
            "/k.pem",
            "-tls-server-name=db.example",
            "status",
        ]);
        assert_eq!(
            s.client.tls,
            Some(TlsConfig {
                ca_file: Some("/ca.pem".into()),
                cert_file: Some("/c.pem".into()),
                key_file: Some("/k.pem".into()),
                server_name: "db.example".into(),
                insecure_skip_verify: false,
            })
        );
        // TLS files without -tls-enabled are ignored, as in the original.
        assert_eq!(settings(&["-tls-ca-file=/ca.pem"]).client.tls, None);
        assert_eq!(settings(&["-tls-enabled=false"]).client.tls, None);
        let s = settings(&["-tls-enabled=true", "-tls-insecure-skip-verify"]);
        assert!(s.client.tls.unwrap().insecure_skip_verify);
    }

    #[test]
    fn bare_boolean_flag_does_not_eat_the_command() {
        let f = flags(&["-tls-enabled", "get", "k"]).unwrap();
        assert!(f.tls.tls_enabled);
        assert_eq!(f.command, ["get", "k"]);
        let f = flags(&["-v", "status"]).unwrap();
        assert!(f.verbose);
        assert_eq!(f.command, ["status"]);
        assert!(!flags(&["-v=false", "status"]).unwrap().verbose);
    }

    #[test]
    fn command_arguments_are_not_touched() {
        let f = flags(&["-server", "h:1", "put", "-key", "-value=x", "--", "-5"]).unwrap();
        assert_eq!(f.command, ["put", "-key", "-value=x", "--", "-5"]);
        let f = flags(&["put", "k", "-o", "json"]).unwrap();
        assert_eq!(f.output, "text");
        assert_eq!(f.command, ["put", "k", "-o", "json"]);
        let f = flags(&["--", "-put"]).unwrap();
        assert_eq!(f.command, ["-put"]);
    }

    #[test]
    fn help_flag_prints_usage() {
        for flag in ["-h", "-help", "--help", "-h=true"] {
            let (code, out, err) = run_cli(&[flag]);
            assert_eq!(
                (code, out.as_str(), err.as_str()),
                (0, help::USAGE, ""),
                "{flag}"
            );
        }
    }

    #[test]
    fn help_command_needs_no_server() {
        let (code, out, err) = run_cli(&["-server", "127.0.0.1:1", "help"]);
        assert_eq!((code, out.as_str(), err.as_str()), (0, help::USAGE, ""));
    }

    #[test]
    fn no_command_prints_usage_and_fails() {
        let (code, out, err) = run_cli(&[]);
        assert_eq!((code, out.as_str(), err.as_str()), (1, "", help::USAGE));
    }

    #[test]
    fn unknown_command() {
        let (code, out, err) = run_cli(&["frobnicate", "x"]);
        assert_eq!(code, 1);
        assert_eq!(out, "");
        assert_eq!(err, format!("Unknown command: frobnicate\n{}", help::USAGE));
    }

    #[test]
    fn wrong_argument_counts() {
        let cases: &[(&[&str], &str)] = &[
            (&["put", "k"], "Usage: distkv-client put <key> <value>\n"),
            (
                &["put", "k", "v", "w"],
                "Usage: distkv-client put <key> <value>\n",
            ),
            (&["get"], "Usage: distkv-client get <key>\n"),
            (&["delete"], "Usage: distkv-client delete <key>\n"),
            (
                &["batch", "k1", "v1", "k2"],
                "Usage: distkv-client batch <key1> <value1> [<key2> <value2> ...]\n",
            ),
            (&["status", "x"], "Usage: distkv-client status\n"),
            (&["ring", "x"], "Usage: distkv-client ring\n"),
        ];
        for (args, expected) in cases {
            let (code, out, err) = run_cli(args);
            assert_eq!(
                (code, out.as_str(), err.as_str()),
                (1, "", *expected),
                "{args:?}"
            );
        }
    }

    #[test]
    fn invalid_scan_options() {
        let (code, out, err) = run_cli(&["scan", "--limit", "x"]);
        assert_eq!(code, 1);
        assert_eq!(out, "");
        assert_eq!(
            err,
            format!(
                "Error: invalid limit \"x\": expected a positive number\nUsage: {}\n",
                scan::USAGE
            )
        );
    }

    #[test]
    fn bad_consistency_is_an_error() {
        let (code, out, err) = run_cli(&["-consistency=two", "get", "k"]);
        assert_eq!(code, 1);
        assert_eq!(out, "");
        assert_eq!(
            err,
            "Error: invalid consistency level \"two\": expected one, quorum or all\n"
        );
    }

    #[test]
    fn bad_output_format_is_an_error() {
        let (code, _, err) = run_cli(&["-o", "yaml", "get", "k"]);
        assert_eq!(code, 1);
        assert_eq!(
            err,
            "Error: invalid output format \"yaml\": expected text or json\n"
        );
    }

    #[test]
    fn malformed_flags_exit_2() {
        let (code, out, err) = run_cli(&["-bogus", "get", "k"]);
        assert_eq!(code, 2);
        assert_eq!(out, "");
        assert_eq!(
            err,
            "Error: flag provided but not defined: -bogus\nRun 'distkv-client help' for usage.\n"
        );
        let (code, _, err) = run_cli(&["-timeout", "5", "get", "k"]);
        assert_eq!(code, 2);
        assert_eq!(
            err,
            "Error: invalid value '5' for flag -timeout: missing unit in duration \"5\"\n\
             Run 'distkv-client help' for usage.\n"
        );
        let (code, _, err) = run_cli(&["-tls-enabled=maybe", "get", "k"]);
        assert_eq!(code, 2);
        assert!(err.contains("invalid boolean value"), "{err}");
    }

    #[test]
    fn unreachable_server_names_the_address() {
        let (code, out, err) =
            run_cli(&["-server", "127.0.0.1:1", "-timeout", "500ms", "get", "k"]);
        assert_eq!(code, 1);
        assert_eq!(out, "");
        assert!(
            err.starts_with("Error: failed to connect to server 127.0.0.1:1: "),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }

    #[test]
    fn unreachable_server_in_json_mode() {
        let (code, out, err) =
            run_cli(&["-server=127.0.0.1:1", "-timeout=500ms", "-o=json", "status"]);
        assert_eq!(code, 1);
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(json["command"], "status");
        assert!(
            json["error"]
                .as_str()
                .unwrap()
                .starts_with("failed to connect to server 127.0.0.1:1: ")
        );
        assert!(err.starts_with("Error: failed to connect"), "{err}");
    }

    #[test]
    fn verbose_reports_the_connection_on_stderr() {
        let (code, out, err) =
            run_cli(&["-v", "-server", "127.0.0.1:1", "-timeout=500ms", "get", "k"]);
        assert_eq!(code, 1);
        assert_eq!(out, "");
        let mut lines = err.lines();
        assert_eq!(
            lines.next(),
            Some("Connecting to server 127.0.0.1:1 WITHOUT TLS (insecure)")
        );
        assert!(
            lines
                .next()
                .unwrap()
                .starts_with("Error: failed to connect")
        );
    }
}
