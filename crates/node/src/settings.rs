//! Where a node's settings come from: a TOML file (`-config`), `DISTKV_*` environment
//! variables and command-line flags, in that order of increasing precedence (a flag beats a
//! variable, which beats the file, which beats the default).
//!
//! Every setting has one name, the flag's: `-seed-nodes` on the command line,
//! `DISTKV_SEED_NODES` in the environment, `seed-nodes` (or `seed_nodes`) in the file. The file
//! may group settings in tables whose name is a prefix: `[tls]` with `cert-file = ...` is
//! `tls-cert-file`. Values are TOML strings, numbers or booleans; a list of strings is joined
//! with commas (`seed-nodes = ["a:7000", "b:7000"]`); durations are Go strings (`"30s"`).
//!
//! The layers are merged into one Go-style command line (file, then variables, then the real
//! flags; a repeated flag takes its last value), which clap parses once, so every value is
//! validated the same way wherever it came from. An unknown key in the file is an error naming
//! it, and a `DISTKV_` variable that names no setting is reported (the binary warns): a typo
//! never silently does nothing.
//!
//! `-print-config` prints the effective settings as a TOML file, each with where it came from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::{CommandFactory, FromArgMatches, parser::ValueSource};

use crate::config::Flags;

/// Environment variables for the settings start with this.
pub const ENV_PREFIX: &str = "DISTKV_";

/// Settings that are not configuration (they never come from a file or the environment).
const COMMAND_ONLY: [&str; 3] = ["config", "print-config", "help"];

/// Why the settings could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("config file {path}: unknown setting {key:?}")]
    UnknownKey { path: PathBuf, key: String },
    /// A value from the file or the environment does not parse; `origin` names where it is.
    #[error("{origin}: {reason}")]
    BadValue { origin: String, reason: String },
    /// clap refused the merged command line (a bad value, an unknown flag).
    #[error("{0}")]
    Flags(#[from] clap::Error),
}

/// Where one setting's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Default,
    File,
    Environment,
    Flag,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Default => "default",
            Source::File => "config file",
            Source::Environment => "environment",
            Source::Flag => "flag",
        }
    }
}

/// The parsed settings and where each came from.
pub struct Settings {
    pub flags: Flags,
    /// Every setting's final raw value and its source, by name.
    pub values: BTreeMap<String, (String, Source)>,
    /// `-print-config` was given.
    pub print_config: bool,
    /// `DISTKV_*` variables that name no setting (the binary warns about them: a typo, or a
    /// variable meant for a tool).
    pub unknown_variables: Vec<String>,
}

/// The names of every setting (the long flag names), in declaration order.
pub fn names() -> Vec<String> {
    Flags::command()
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_string))
        .collect()
}

fn env_name(setting: &str) -> String {
    format!("{ENV_PREFIX}{}", setting.replace('-', "_").to_uppercase())
}

/// Reads a config file into `--name=value` arguments.
fn file_args(path: &Path, known: &[String]) -> Result<Vec<String>, SettingsError> {
    let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| SettingsError::Parse {
            path: path.to_path_buf(),
            reason: match e.span() {
                Some(span) => format!(
                    "line {}: {}",
                    text[..span.start.min(text.len())].matches('\n').count() + 1,
                    e.message()
                ),
                None => e.message().to_string(),
            },
        })?;
    let mut out = Vec::new();
    flatten(path, "", &table, known, &mut out)?;
    Ok(out)
}

fn flatten(
    path: &Path,
    prefix: &str,
    table: &toml::Table,
    known: &[String],
    out: &mut Vec<String>,
) -> Result<(), SettingsError> {
    for (key, value) in table {
        let name = format!("{prefix}{}", key.replace('_', "-"));
        if let toml::Value::Table(t) = value {
            // A table groups settings by a common prefix; one that prefixes none is a typo.
            let group = format!("{name}-");
            if !known.iter().any(|k| k.starts_with(&group)) {
                return Err(SettingsError::UnknownKey {
                    path: path.to_path_buf(),
                    key: format!("[{name}]"),
                });
            }
            flatten(path, &group, t, known, out)?;
            continue;
        }
        let assignment = format!("--{name}=");
        if out.iter().any(|a| a.starts_with(&assignment)) {
            return Err(SettingsError::Parse {
                path: path.to_path_buf(),
                reason: format!("{name} is set twice (as {key:?} and another spelling)"),
            });
        }
        if !known.contains(&name) || COMMAND_ONLY.contains(&name.as_str()) {
            return Err(SettingsError::UnknownKey {
                path: path.to_path_buf(),
                key: name,
            });
        }
        let text = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => {
                let mut parts = Vec::new();
                for item in items {
                    match item {
                        toml::Value::String(s) => parts.push(s.clone()),
                        other => parts.push(other.to_string()),
                    }
                }
                parts.join(",")
            }
            other => {
                return Err(SettingsError::Parse {
                    path: path.to_path_buf(),
                    reason: format!("{name}: unsupported value {other}"),
                });
            }
        };
        out.push(format!("--{name}={text}"));
    }
    Ok(())
}

/// `DISTKV_*` variables as `--name=value` arguments.
/// `DISTKV_*` variables as `--name=value` arguments, and the `DISTKV_` variables that name
/// no setting.
fn env_args(
    vars: impl IntoIterator<Item = (String, String)>,
    known: &[String],
) -> (Vec<(String, String)>, Vec<String>) {
    let by_env: BTreeMap<String, &String> = known
        .iter()
        .filter(|n| !COMMAND_ONLY.contains(&n.as_str()))
        .map(|n| (env_name(n), n))
        .collect();
    let mut out = Vec::new();
    let mut unknown = Vec::new();
    for (var, value) in vars {
        if !var.starts_with(ENV_PREFIX) {
            continue;
        }
        match by_env.get(&var) {
            Some(name) => out.push((name.to_string(), format!("--{name}={value}"))),
            None => unknown.push(var),
        }
    }
    out.sort();
    unknown.sort();
    (out, unknown)
}

/// Parses one `--name=value` argument alone; a refusal names `origin()` and the setting.
fn check_value(
    program: &str,
    arg: &str,
    origin: impl FnOnce() -> String,
) -> Result<(), SettingsError> {
    let Err(e) = Flags::command().try_get_matches_from([program, arg]) else {
        return Ok(());
    };
    let name = arg
        .trim_start_matches('-')
        .split('=')
        .next()
        .unwrap_or_default();
    // Named as the setting, not as the flag it did not come from.
    let reason = distkv_flags::describe_flag_error(&e)
        .replace(&format!(" for flag -{name}"), &format!(" for {name}"));
    Err(SettingsError::BadValue {
        origin: origin(),
        reason,
    })
}

/// Parses the settings from the command line `args` (Go style, program name first) and the
/// environment `vars`.
pub fn parse(
    args: impl IntoIterator<Item = String>,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Settings, SettingsError> {
    let known = names();
    let argv = distkv_flags::normalize_go_args(args);
    let (program, cli) = argv.split_first().map_or_else(
        || ("distkv-server".to_string(), Vec::new()),
        |(p, rest)| (p.clone(), rest.to_vec()),
    );
    // A first pass over the real flags alone finds -config (and rejects unknown flags with
    // the usual message).
    let first = Flags::command()
        .try_get_matches_from(std::iter::once(program.clone()).chain(cli.iter().cloned()))?;
    let config_file = first
        .get_one::<String>("config")
        .filter(|s| !s.is_empty())
        .cloned();
    let from_file = match &config_file {
        Some(path) => file_args(Path::new(path), &known)?,
        None => Vec::new(),
    };
    let (from_env, unknown_variables) = env_args(vars, &known);
    // Each value of the file and the environment alone first, so that a bad one is reported
    // with where it is (the merged parse below could only name the flag).
    for arg in &from_file {
        check_value(&program, arg, || {
            format!("config file {}", config_file.as_deref().unwrap_or_default())
        })?;
    }
    for (name, arg) in &from_env {
        check_value(&program, arg, || {
            format!("environment variable {}", env_name(name))
        })?;
    }
    let mut merged = vec![program];
    merged.extend(from_file.iter().cloned());
    merged.extend(from_env.iter().map(|(_, a)| a.clone()));
    merged.extend(cli.iter().cloned());
    let matches = Flags::command().try_get_matches_from(&merged)?;
    let flags = Flags::from_arg_matches(&matches)?;
    // Where each value came from: the last layer that set it.
    let env_set: Vec<&String> = from_env.iter().map(|(n, _)| n).collect();
    let file_set: Vec<String> = from_file
        .iter()
        .filter_map(|a| a.strip_prefix("--"))
        .filter_map(|a| a.split('=').next())
        .map(str::to_string)
        .collect();
    let mut values = BTreeMap::new();
    for name in &known {
        if COMMAND_ONLY.contains(&name.as_str()) {
            continue;
        }
        let id = Flags::command()
            .get_arguments()
            .find(|a| a.get_long() == Some(name))
            .map(|a| a.get_id().to_string())
            .unwrap_or_default();
        let value = matches
            .get_raw(&id)
            .and_then(|mut v| v.next_back())
            .map(|v| v.to_string_lossy().into_owned())
            .unwrap_or_default();
        let source = if first.value_source(&id) == Some(ValueSource::CommandLine) {
            Source::Flag
        } else if env_set.contains(&name) {
            Source::Environment
        } else if file_set.contains(name) {
            Source::File
        } else {
            Source::Default
        };
        values.insert(name.clone(), (value, source));
    }
    Ok(Settings {
        print_config: flags.print_config,
        flags,
        values,
        unknown_variables,
    })
}

impl Settings {
    /// The effective settings as a TOML file, in the flags' order, each with its source.
    pub fn to_toml(&self) -> String {
        let mut out = String::from(
            "# The effective configuration of distkv-server (-print-config).\n\
             # Precedence: flags > DISTKV_* environment variables > -config file > defaults.\n\n",
        );
        for name in names() {
            let Some((value, source)) = self.values.get(&name) else {
                continue;
            };
            let rendered = match value.as_str() {
                "true" | "false" => value.clone(),
                v if !v.is_empty() && v.parse::<i64>().is_ok() => v.to_string(),
                v => format!("{v:?}"),
            };
            out.push_str(&format!("{name} = {rendered}  # {}\n", source.name()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        std::iter::once("distkv-server")
            .chain(v.iter().copied())
            .map(String::from)
            .collect()
    }

    fn env(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn flags_beat_environment_which_beats_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("distkv.toml");
        std::fs::write(
            &file,
            "node-id = \"from-file\"\nreplicas = 5\nread_quorum = 3\nseed-nodes = [\"a:1\", \"b:2\"]\n\
             gossip-interval = \"2s\"\n[tls]\nclient-auth = \"RequestClientCert\"\n",
        )
        .unwrap();
        let s = parse(
            args(&[&format!("-config={}", file.display()), "-node-id=from-flag"]),
            env(&[
                ("DISTKV_NODE_ID", "from-env"),
                ("DISTKV_REPLICAS", "4"),
                ("HOME", "/root"),
            ]),
        )
        .unwrap();
        assert_eq!(s.flags.node_id, "from-flag");
        assert_eq!(s.flags.replicas, 4);
        assert_eq!(s.flags.read_quorum, 3);
        assert_eq!(s.flags.seed_nodes, "a:1,b:2");
        assert_eq!(s.flags.gossip_interval, std::time::Duration::from_secs(2));
        assert_eq!(s.flags.tls_client_auth, "RequestClientCert");
        assert_eq!(s.values["node-id"].1, Source::Flag);
        assert_eq!(s.values["replicas"], ("4".to_string(), Source::Environment));
        assert_eq!(s.values["read-quorum"].1, Source::File);
        assert_eq!(s.values["write-quorum"], ("2".to_string(), Source::Default));
        let toml = s.to_toml();
        assert!(toml.contains("node-id = \"from-flag\"  # flag\n"), "{toml}");
        assert!(toml.contains("replicas = 4  # environment\n"), "{toml}");
        assert!(
            toml.contains("seed-nodes = \"a:1,b:2\"  # config file\n"),
            "{toml}"
        );
        // The printed file reads back as the same configuration.
        let again = dir.path().join("printed.toml");
        std::fs::write(&again, &toml).unwrap();
        let s2 = parse(args(&[&format!("-config={}", again.display())]), env(&[])).unwrap();
        assert_eq!(s2.flags.node_id, "from-flag");
        assert_eq!(s2.flags.replicas, 4);
    }

    #[test]
    fn mistakes_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        // The error of a start with a config file holding `contents`.
        let with_file = |contents: &str| {
            std::fs::write(&file, contents).unwrap();
            parse(args(&[&format!("-config={}", file.display())]), env(&[]))
                .err()
                .unwrap()
        };
        let e = with_file("replicas = 3\nreplica = 2\n");
        assert_eq!(
            e.to_string(),
            format!(
                "config file {}: unknown setting \"replica\"",
                file.display()
            )
        );
        let e = with_file("replicas = \n");
        assert!(
            e.to_string()
                .starts_with(&format!("config file {}: ", file.display()))
        );
        let e = parse(args(&["-config=/nonexistent.toml"]), env(&[]))
            .err()
            .unwrap();
        assert!(
            e.to_string()
                .starts_with("cannot read config file /nonexistent.toml")
        );
        let s = parse(args(&[]), env(&[("DISTKV_REPLICA", "3")])).unwrap();
        assert_eq!(s.unknown_variables, ["DISTKV_REPLICA"]);
        // A bad value says where it is.
        let e = parse(args(&[]), env(&[("DISTKV_REPLICAS", "three")]))
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            "environment variable DISTKV_REPLICAS: invalid value 'three' for replicas: \
             invalid digit found in string"
        );
        let e = with_file("log-format = \"xml\"\n");
        assert_eq!(
            e.to_string(),
            format!(
                "config file {}: invalid value 'xml' for log-format [possible values: text, json]",
                file.display()
            )
        );
        // Syntax errors name the line; typos in tables and double spellings are refused.
        for (text, want) in [
            ("replicas = 3\nnode-id = \n", "line 2: "),
            ("[tsl]\ncert-file = \"x\"\n", "unknown setting \"[tsl]\""),
            (
                "seed_nodes = \"a:1\"\nseed-nodes = \"b:1\"\n",
                "seed-nodes is set twice",
            ),
        ] {
            std::fs::write(&file, text).unwrap();
            let e = parse(args(&[&format!("-config={}", file.display())]), env(&[]))
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
