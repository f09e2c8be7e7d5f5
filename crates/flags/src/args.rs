//! Rewriting Go-style flags (`-name`, `-name=value`) to clap's long form (`--name`).
//!
//! An argument counts as a flag when it starts with one dash followed by a name: an ASCII letter,
//! then letters, digits, `-`, `_` or `.`, optionally followed by `=value`. Only flags whose name
//! has two or more characters are rewritten, so clap's short flags (`-h`, `-o json`, `-v=true`)
//! still work. Anything else is left alone: `--name`, a lone `-`, negative numbers (`-5`,
//! `-1.5`), words with spaces, and everything after a bare `--`.

/// What a single argument looks like to Go's flag syntax.
#[derive(Debug, PartialEq, Eq)]
enum Shape<'a> {
    /// `--`: the end of the flags.
    Terminator,
    /// A flag: `-name`, `-name=value`, `--name` or `--name=value`.
    Flag {
        /// Number of leading dashes (1 or 2).
        dashes: usize,
        /// The flag's name, without dashes and value.
        name: &'a str,
        /// Whether a value is attached with `=`.
        has_value: bool,
    },
    /// Anything else: a positional argument, a value, a negative number.
    Other,
}

fn shape(arg: &str) -> Shape<'_> {
    if arg == "--" {
        return Shape::Terminator;
    }
    let (dashes, rest) = if let Some(rest) = arg.strip_prefix("--") {
        (2, rest)
    } else if let Some(rest) = arg.strip_prefix('-') {
        (1, rest)
    } else {
        return Shape::Other;
    };
    let (name, has_value) = match rest.split_once('=') {
        Some((name, _)) => (name, true),
        None => (rest, false),
    };
    let mut chars = name.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_is_name = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if starts_with_letter && rest_is_name {
        Shape::Flag {
            dashes,
            name,
            has_value,
        }
    } else {
        Shape::Other
    }
}

/// Rewrites one flag to clap's form; `None` when it needs no change.
fn rewrite(arg: &str) -> Option<String> {
    match shape(arg) {
        Shape::Flag {
            dashes: 1, name, ..
        } if name.len() >= 2 => Some(format!("-{arg}")),
        _ => None,
    }
}

/// Rewrites Go-style single-dash flags to clap's double-dash form.
///
/// `-name` becomes `--name` and `-name=value` becomes `--name=value` when the name has two or
/// more characters. `--name`, short flags (`-h`), positional arguments, negative numbers and
/// every argument after a bare `--` are returned unchanged. The program name, if present as the
/// first argument, is left alone like any other word.
///
/// This rewrites *every* flag-shaped argument until `--`, including one meant as a value
/// (`-prefix -x` turns `-x` into `--x`). Binaries whose arguments are all flags are fine with
/// that; a binary with free-form positional arguments wants [`normalize_go_flags`].
///
/// ```
/// let args = ["distkv-server", "-node-id=n1", "-replicas", "3", "-h", "--x", "-5", "--", "-y"];
/// let args = distkv_flags::normalize_go_args(args.map(String::from));
/// assert_eq!(
///     args,
///     ["distkv-server", "--node-id=n1", "--replicas", "3", "-h", "--x", "-5", "--", "-y"],
/// );
/// ```
pub fn normalize_go_args(args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut args = args.into_iter();
    for arg in args.by_ref() {
        if shape(&arg) == Shape::Terminator {
            out.push(arg);
            break;
        }
        out.push(rewrite(&arg).unwrap_or(arg));
    }
    out.extend(args);
    out
}

/// Rewrites Go-style flags up to the first positional argument, like Go's `flag.Parse`.
///
/// `args` are the arguments *after* the program name. Flags are rewritten as by
/// [`normalize_go_args`]; a flag written without `=value` whose name `takes_value` accepts
/// consumes the next argument as its value, which is passed through untouched (so
/// `-prefix -x` keeps `-x`). The first argument that is not a flag — a command word, a negative
/// number, a lone `-` — and everything after it are returned unchanged, as is everything after
/// `--` (the `--` itself is kept, so clap also stops there).
///
/// ```
/// let takes_value = |name: &str| matches!(name, "server" | "o");
/// let args = ["-server", "-odd-host", "-o", "json", "-tls-enabled", "put", "k", "-value"];
/// let args = distkv_flags::normalize_go_flags(args.map(String::from), takes_value);
/// assert_eq!(
///     args,
///     ["--server", "-odd-host", "-o", "json", "--tls-enabled", "put", "k", "-value"],
/// );
/// ```
pub fn normalize_go_flags(
    args: impl IntoIterator<Item = String>,
    takes_value: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match shape(&arg) {
            Shape::Terminator | Shape::Other => {
                out.push(arg);
                break;
            }
            Shape::Flag {
                name, has_value, ..
            } => {
                let wants_next = !has_value && takes_value(name);
                out.push(rewrite(&arg).unwrap_or(arg));
                if wants_next {
                    match args.next() {
                        Some(value) => out.push(value),
                        None => break,
                    }
                }
            }
        }
    }
    out.extend(args);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(args: &[&str]) -> Vec<String> {
        normalize_go_args(args.iter().map(|a| a.to_string()))
    }

    fn norm_flags(args: &[&str], value_flags: &[&str]) -> Vec<String> {
        normalize_go_flags(args.iter().map(|a| a.to_string()), |name| {
            value_flags.contains(&name)
        })
    }

    #[test]
    fn single_dash_long_flags_get_two_dashes() {
        assert_eq!(norm(&["-server"]), ["--server"]);
        assert_eq!(norm(&["-server=host:1"]), ["--server=host:1"]);
        assert_eq!(norm(&["-tls-enabled"]), ["--tls-enabled"]);
        assert_eq!(norm(&["-ab"]), ["--ab"]);
        assert_eq!(norm(&["-read_ratio=0.5"]), ["--read_ratio=0.5"]);
        assert_eq!(norm(&["-a.b"]), ["--a.b"]);
        assert_eq!(norm(&["-x2"]), ["--x2"]);
    }

    #[test]
    fn values_after_equals_are_kept_verbatim() {
        assert_eq!(norm(&["-prefix=-a b=c"]), ["--prefix=-a b=c"]);
        assert_eq!(norm(&["-name="]), ["--name="]);
    }

    #[test]
    fn other_arguments_are_left_alone() {
        for arg in [
            "--server",
            "--server=x",
            "-h",
            "-o",
            "-o=json",
            "-v=true",
            "-",
            "-5",
            "-1.5",
            "-.5",
            "-1e3",
            "-1h",
            "put",
            "",
            "-=x",
            "-a b",
            "-ab!",
            "-é",
            "-_x",
            "---x",
        ] {
            assert_eq!(norm(&[arg]), [arg], "{arg:?}");
        }
    }

    #[test]
    fn double_dash_ends_rewriting() {
        assert_eq!(
            norm(&["-a1", "--", "-b1", "--", "-c1"]),
            ["--a1", "--", "-b1", "--", "-c1"]
        );
    }

    #[test]
    fn every_flag_shaped_argument_is_rewritten_even_after_positionals() {
        assert_eq!(
            norm(&["prog", "-server", "x", "put", "-k1"]),
            ["prog", "--server", "x", "put", "--k1"]
        );
    }

    #[test]
    fn empty_input_gives_empty_output() {
        assert!(norm(&[]).is_empty());
        assert!(norm_flags(&[], &[]).is_empty());
    }

    #[test]
    fn go_flags_stop_at_the_first_positional() {
        assert_eq!(
            norm_flags(&["-tls-enabled", "put", "-k", "-value"], &[]),
            ["--tls-enabled", "put", "-k", "-value"]
        );
        assert_eq!(norm_flags(&["-5", "-ab"], &[]), ["-5", "-ab"]);
        assert_eq!(norm_flags(&["-", "-ab"], &[]), ["-", "-ab"]);
    }

    #[test]
    fn go_flags_pass_values_through() {
        assert_eq!(
            norm_flags(
                &["-server", "-weird", "-timeout", "5s", "get"],
                &["server", "timeout"]
            ),
            ["--server", "-weird", "--timeout", "5s", "get"]
        );
        // A value attached with `=` does not consume the next argument.
        assert_eq!(
            norm_flags(&["-server=x", "-verbose", "get"], &["server"]),
            ["--server=x", "--verbose", "get"]
        );
        // Short flags consume their value too.
        assert_eq!(
            norm_flags(&["-o", "json", "status"], &["o"]),
            ["-o", "json", "status"]
        );
        // Double-dash flags as well.
        assert_eq!(
            norm_flags(&["--server", "-x", "-ab"], &["server"]),
            ["--server", "-x", "--ab"]
        );
    }

    #[test]
    fn go_flags_missing_value_at_the_end() {
        assert_eq!(norm_flags(&["-server"], &["server"]), ["--server"]);
    }

    #[test]
    fn go_flags_stop_at_double_dash() {
        assert_eq!(
            norm_flags(&["-ab", "--", "-cd"], &[]),
            ["--ab", "--", "-cd"]
        );
    }
}

/// One line for a command line clap refused, worded as Go's `flag` package words it where
/// the original's users would see a difference: an unknown flag is
/// `flag provided but not defined: -name`. Other errors keep clap's first line.
pub fn describe_flag_error(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() == ErrorKind::UnknownArgument
        && let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg)
    {
        let name = arg.trim_start_matches('-');
        let name = name.split('=').next().unwrap_or(name);
        return format!("flag provided but not defined: -{name}");
    }
    let message = e.to_string();
    let first = message.lines().next().unwrap_or_default();
    let mut out = first.strip_prefix("error: ").unwrap_or(first).to_string();
    // clap names a flag `'--name <NAME>'`; Go says `flag -name`.
    if let Some(start) = out.find(" for '--") {
        let quoted = start + " for '".len();
        if let Some(len) = out[quoted..].find('\'') {
            let name = out[quoted + 2..quoted + len]
                .split([' ', '='])
                .next()
                .unwrap_or_default()
                .to_string();
            out.replace_range(start..quoted + len + 1, &format!(" for flag -{name}"));
        }
    }
    // A value outside a fixed list: say which values there are.
    if let Some(values) = message
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("[possible values:"))
    {
        out.push(' ');
        out.push_str(values);
    }
    out
}

#[cfg(test)]
mod flag_error_tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Flags {
        #[arg(long)]
        server: Option<String>,
    }

    #[test]
    fn unknown_flags_read_as_in_go() {
        for arg in ["-bogus", "--bogus", "-bogus=1"] {
            let e = Flags::try_parse_from(normalize_go_args(["x".to_string(), arg.to_string()]))
                .unwrap_err();
            assert_eq!(
                describe_flag_error(&e),
                "flag provided but not defined: -bogus"
            );
        }
        let e = Flags::try_parse_from(["x", "--server"]).unwrap_err();
        assert_eq!(
            describe_flag_error(&e),
            "a value is required for flag -server but none was supplied"
        );
    }

    #[derive(Parser, Debug)]
    struct Typed {
        #[arg(long)]
        count: Option<u32>,
        #[arg(long, value_parser = ["text", "json"])]
        format: Option<String>,
    }

    #[test]
    fn bad_values_name_the_flag_and_the_choices() {
        let e = Typed::try_parse_from(["x", "--count=many"]).unwrap_err();
        assert_eq!(
            describe_flag_error(&e),
            "invalid value 'many' for flag -count: invalid digit found in string"
        );
        let e = Typed::try_parse_from(["x", "--format=xml"]).unwrap_err();
        assert_eq!(
            describe_flag_error(&e),
            "invalid value 'xml' for flag -format [possible values: text, json]"
        );
    }
}
