//! # distkv-flags
//!
//! Go-style command lines for DistKV's binaries, so that the scripts written for the original Go
//! DistKV keep working against ours while the flags themselves are parsed with clap.
//!
//! Go's `flag` package accepts `-name value`, `-name=value`, `--name value` and `--name=value`
//! alike; clap wants long flags with two dashes. Rather than teach clap a second syntax, the
//! arguments are rewritten before clap sees them:
//!
//! - [`normalize_go_args`] rewrites every single-dash flag with a name of two or more characters
//!   (`-server`, `-timeout=5s`) to its double-dash form. It fits binaries that take only flags,
//!   such as the server and the load generator.
//! - [`normalize_go_flags`] does the same but stops at the first positional argument, as Go's
//!   `flag.Parse` does, and never touches the value of a flag. It fits a binary that takes a
//!   command with free-form arguments after its flags (`distkv-client -server x put k -v`).
//!
//! Values use Go's syntax too: [`parse_go_duration`] reads `time.ParseDuration` strings (`300ms`,
//! `1.5h`, `2m0s`) and [`format_go_duration`] writes them back the way Go prints them (for help
//! texts and reports); [`parse_go_bool`] reads `strconv.ParseBool` strings.
//!
//! ## Boolean flags
//!
//! Go's boolean flags take no separate value: `-tls-enabled` means true, `-tls-enabled=false`
//! means false, and in `-tls-enabled put` the word `put` is the next argument, not the flag's
//! value. The clap spelling of that is an optional value that must be attached with `=`:
//!
//! ```
//! use clap::Parser;
//! use distkv_flags::{normalize_go_args, parse_go_bool};
//!
//! #[derive(Parser)]
//! struct Flags {
//!     /// Enable TLS.
//!     #[arg(
//!         long,
//!         num_args = 0..=1,
//!         require_equals = true,
//!         default_value = "false",
//!         default_missing_value = "true",
//!         value_parser = parse_go_bool,
//!     )]
//!     tls_enabled: bool,
//!     rest: Vec<String>,
//! }
//!
//! let parse = |args: &[&str]| {
//!     let args = normalize_go_args(args.iter().map(|a| a.to_string()));
//!     Flags::try_parse_from(args).unwrap()
//! };
//! assert!(!parse(&["prog"]).tls_enabled);
//! assert!(parse(&["prog", "-tls-enabled"]).tls_enabled);
//! assert!(parse(&["prog", "-tls-enabled=T"]).tls_enabled);
//! assert!(!parse(&["prog", "--tls-enabled=false"]).tls_enabled);
//! // The word after a bare boolean flag is not its value.
//! let flags = parse(&["prog", "-tls-enabled", "status"]);
//! assert!(flags.tls_enabled);
//! assert_eq!(flags.rest, ["status"]);
//! ```
//!
//! Without `require_equals`, clap would take `status` as the flag's value and fail; without
//! `default_missing_value`, a bare `-tls-enabled` would be an error.
//!
//! Left out: Go's `-flag` abbreviations do not exist (neither does clap's prefix matching here),
//! and Go's exact wording of parse errors is not reproduced; clap reports them in its own words.

mod args;
mod boolean;
mod duration;

pub use args::{describe_flag_error, normalize_go_args, normalize_go_flags};
pub use boolean::{BoolError, parse_go_bool};
pub use duration::{DurationError, format_go_duration, parse_go_duration};
