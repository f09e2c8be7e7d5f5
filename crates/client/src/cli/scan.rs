//! `scan [--prefix P | --start A --end B] [--limit N]`: list keys in order (new).
//!
//! Options take one or two dashes and `=value` or a separate value, like the global flags.
//! `--start` is inclusive, `--end` exclusive; `--limit` caps the number of pairs printed. Pages
//! of up to [`PAGE_SIZE`] pairs are fetched until the range is exhausted or the limit reached.
//!
//! Text: one `<key> = <value>` line per pair, in key order, printed as pages arrive; nothing for
//! an empty range. JSON: `{"command":"scan","count":<n>,"items":[{"key":...,"value":...}]}`.

use std::borrow::Cow;
use std::io::Write;

use serde::Serialize;

use super::output::{OutputFormat, json_line, text};
use super::{CliError, Ctx, UsageError};
use crate::client::check_progress;
use crate::types::ScanOptions;

pub(crate) const USAGE: &str = "distkv-client scan [--prefix P | --start A --end B] [--limit N]";

/// Pairs asked for per request.
pub const PAGE_SIZE: u32 = 1000;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Scan {
    pub prefix: Option<String>,
    pub start: Option<String>,
    pub end: Option<String>,
    pub limit: Option<u64>,
}

impl Scan {
    pub(crate) fn parse(args: &[String]) -> Result<Self, UsageError> {
        let invalid = |reason: String| UsageError::Invalid {
            reason,
            usage: USAGE,
        };
        let mut scan = Scan::default();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let Some(flag) = arg
                .strip_prefix("--")
                .or_else(|| arg.strip_prefix('-'))
                .filter(|f| !f.is_empty())
            else {
                return Err(invalid(format!("unexpected argument {arg:?}")));
            };
            let (name, value) = match flag.split_once('=') {
                Some((name, value)) => (name, value.to_string()),
                None => {
                    let value = args
                        .next()
                        .ok_or_else(|| invalid(format!("option {arg} needs a value")))?;
                    (flag, value.clone())
                }
            };
            match name {
                "prefix" => scan.prefix = Some(value),
                "start" => scan.start = Some(value),
                "end" => scan.end = Some(value),
                "limit" => match value.parse::<u64>() {
                    Ok(n) if n > 0 => scan.limit = Some(n),
                    _ => {
                        return Err(invalid(format!(
                            "invalid limit {value:?}: expected a positive number"
                        )));
                    }
                },
                _ => return Err(invalid(format!("unknown scan option {arg:?}"))),
            }
        }
        if scan.prefix.is_some() && (scan.start.is_some() || scan.end.is_some()) {
            return Err(invalid(
                "--prefix cannot be combined with --start or --end".to_string(),
            ));
        }
        Ok(scan)
    }

    pub(crate) async fn execute(&self, ctx: &Ctx, out: &mut dyn Write) -> Result<(), CliError> {
        let mut options = ScanOptions {
            prefix: self.prefix.clone(),
            start: self.start.clone(),
            end: self.end.clone(),
            consistency: Some(ctx.consistency),
            ..Default::default()
        };
        let mut remaining = self.limit.unwrap_or(u64::MAX);
        let mut collected = Vec::new();
        while remaining > 0 {
            options.limit = Some(PAGE_SIZE.min(u32::try_from(remaining).unwrap_or(u32::MAX)));
            let page = ctx.client.scan(options.clone()).await?;
            let take = usize::try_from(remaining).unwrap_or(usize::MAX);
            for (key, value) in page.items.into_iter().take(take) {
                remaining -= 1;
                match ctx.format {
                    OutputFormat::Text => out.write_all(render_line(&key, &value).as_bytes())?,
                    OutputFormat::Json => collected.push((key, value)),
                }
            }
            match page.next_page_token {
                None => break,
                Some(token) => {
                    check_progress(options.page_token.as_deref(), &token)?;
                    options.page_token = Some(token);
                }
            }
        }
        if ctx.format == OutputFormat::Json {
            out.write_all(render_json(&collected).as_bytes())?;
        }
        Ok(())
    }
}

/// One pair as text: `<key> = <value>`.
pub fn render_line(key: &str, value: &[u8]) -> String {
    format!("{key} = {}\n", text(value))
}

/// All pairs as text.
pub fn render_text(items: &[(String, Vec<u8>)]) -> String {
    items.iter().map(|(k, v)| render_line(k, v)).collect()
}

/// All pairs as the JSON object.
pub fn render_json(items: &[(String, Vec<u8>)]) -> String {
    #[derive(Serialize)]
    struct Item<'a> {
        key: &'a str,
        value: Cow<'a, str>,
    }
    #[derive(Serialize)]
    struct ScanView<'a> {
        command: &'static str,
        count: usize,
        items: Vec<Item<'a>>,
    }
    json_line(&ScanView {
        command: "scan",
        count: items.len(),
        items: items
            .iter()
            .map(|(key, value)| Item {
                key,
                value: text(value),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(words: &[&str]) -> Result<Scan, UsageError> {
        Scan::parse(&words.iter().map(|w| w.to_string()).collect::<Vec<_>>())
    }

    fn reason(result: Result<Scan, UsageError>) -> String {
        match result {
            Err(UsageError::Invalid { reason, usage }) => {
                assert_eq!(usage, USAGE);
                reason
            }
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn no_options_scans_everything() {
        assert_eq!(parse(&[]), Ok(Scan::default()));
    }

    #[test]
    fn options_in_every_spelling() {
        let expected = Scan {
            prefix: Some("user:".into()),
            limit: Some(10),
            ..Default::default()
        };
        assert_eq!(
            parse(&["--prefix", "user:", "--limit", "10"]),
            Ok(expected.clone())
        );
        assert_eq!(parse(&["-prefix=user:", "-limit=10"]), Ok(expected.clone()));
        assert_eq!(parse(&["-prefix", "user:", "--limit=10"]), Ok(expected));
        assert_eq!(
            parse(&["--start", "a", "--end", "m"]),
            Ok(Scan {
                start: Some("a".into()),
                end: Some("m".into()),
                ..Default::default()
            })
        );
    }

    #[test]
    fn values_may_start_with_a_dash() {
        assert_eq!(
            parse(&["--prefix", "-x"]),
            Ok(Scan {
                prefix: Some("-x".into()),
                ..Default::default()
            })
        );
    }

    #[test]
    fn bad_input_is_explained() {
        assert_eq!(
            reason(parse(&["--prefix", "a", "--start", "b"])),
            "--prefix cannot be combined with --start or --end"
        );
        assert_eq!(
            reason(parse(&["--limit", "0"])),
            "invalid limit \"0\": expected a positive number"
        );
        assert_eq!(
            reason(parse(&["--limit", "ten"])),
            "invalid limit \"ten\": expected a positive number"
        );
        assert_eq!(reason(parse(&["--limit"])), "option --limit needs a value");
        assert_eq!(reason(parse(&["user:"])), "unexpected argument \"user:\"");
        assert_eq!(
            reason(parse(&["--from", "a"])),
            "unknown scan option \"--from\""
        );
        assert_eq!(reason(parse(&["-"])), "unexpected argument \"-\"");
    }

    #[test]
    fn text_lines() {
        let items = vec![
            ("a".to_string(), b"1".to_vec()),
            ("b".to_string(), b"two words".to_vec()),
        ];
        assert_eq!(render_text(&items), "a = 1\nb = two words\n");
        assert_eq!(render_text(&[]), "");
    }

    #[test]
    fn json_shape() {
        let items = vec![("a".to_string(), b"1".to_vec())];
        assert_eq!(
            render_json(&items),
            "{\"command\":\"scan\",\"count\":1,\"items\":[{\"key\":\"a\",\"value\":\"1\"}]}\n"
        );
        assert_eq!(
            render_json(&[]),
            "{\"command\":\"scan\",\"count\":0,\"items\":[]}\n"
        );
    }
}
