//! `get <key>`: read a key.
//!
//! Text, as the original: `Key: <key>` and `Value: <value>`, or `Key '<key>' not found` (exit
//! status 0). New: when the key has several concurrent versions (siblings, Dynamo §4.4), the
//! lines are `Key: <key>`, `Siblings: <n>` and one `Value[<i>]: <value>` per sibling, numbered
//! from 1 in the server's order.
//!
//! JSON: `{"command":"get","key":...,"found":true,"value":"<winner>","siblings":[{"value":...,
//! "clock":{"<node>":<counter>},"timestamp_ms":...}]}`; not found: `"found":false,
//! "value":null,"siblings":[]`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;

use serde::Serialize;

use super::output::{OutputFormat, json_line, text};
use super::{CliError, Ctx, UsageError};
use crate::types::GetResult;

pub(crate) const USAGE: &str = "distkv-client get <key>";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Get {
    pub key: String,
}

impl Get {
    pub(crate) fn parse(args: &[String]) -> Result<Self, UsageError> {
        match args {
            [key] => Ok(Get { key: key.clone() }),
            _ => Err(UsageError::WrongArgs(USAGE)),
        }
    }

    pub(crate) async fn execute(&self, ctx: &Ctx, out: &mut dyn Write) -> Result<(), CliError> {
        let result = ctx
            .routed
            .get(self.key.as_str(), Some(ctx.consistency))
            .await?;
        out.write_all(render(&self.key, &result, ctx.format).as_bytes())?;
        Ok(())
    }
}

/// The output of a get.
pub fn render(key: &str, result: &GetResult, format: OutputFormat) -> String {
    match format {
        OutputFormat::Text => render_text(key, result),
        OutputFormat::Json => render_json(key, result),
    }
}

fn render_text(key: &str, result: &GetResult) -> String {
    if !result.found {
        return format!("Key '{key}' not found\n");
    }
    if result.siblings.len() <= 1 {
        return format!("Key: {key}\nValue: {}\n", text(&result.value));
    }
    let mut out = format!("Key: {key}\nSiblings: {}\n", result.siblings.len());
    for (i, sibling) in result.siblings.iter().enumerate() {
        let _ = writeln!(out, "Value[{}]: {}", i + 1, text(&sibling.value));
    }
    out
}

fn render_json(key: &str, result: &GetResult) -> String {
    #[derive(Serialize)]
    struct SiblingView<'a> {
        value: std::borrow::Cow<'a, str>,
        clock: &'a BTreeMap<String, u64>,
        timestamp_ms: i64,
    }
    #[derive(Serialize)]
    struct GetView<'a> {
        command: &'static str,
        key: &'a str,
        found: bool,
        value: Option<std::borrow::Cow<'a, str>>,
        siblings: Vec<SiblingView<'a>>,
    }
    json_line(&GetView {
        command: "get",
        key,
        found: result.found,
        value: result.found.then(|| text(&result.value)),
        siblings: result
            .siblings
            .iter()
            .map(|s| SiblingView {
                value: text(&s.value),
                clock: &s.clock,
                timestamp_ms: s.timestamp_ms,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Sibling;

    fn found(values: &[&str]) -> GetResult {
        GetResult {
            found: true,
            value: values[0].as_bytes().to_vec(),
            siblings: values
                .iter()
                .enumerate()
                .map(|(i, v)| Sibling {
                    value: v.as_bytes().to_vec(),
                    clock: BTreeMap::from([(format!("n{}", i + 1), 1)]),
                    timestamp_ms: 1000 + i as i64,
                })
                .collect(),
            context: vec![9],
        }
    }

    #[test]
    fn parses_exactly_one_argument() {
        assert_eq!(Get::parse(&["k".to_string()]), Ok(Get { key: "k".into() }));
        assert_eq!(Get::parse(&[]), Err(UsageError::WrongArgs(USAGE)));
    }

    #[test]
    fn found_prints_key_and_value() {
        assert_eq!(
            render("user:123", &found(&["John Doe"]), OutputFormat::Text),
            "Key: user:123\nValue: John Doe\n"
        );
    }

    #[test]
    fn found_without_siblings_from_an_old_server() {
        let result = GetResult {
            found: true,
            value: b"v".to_vec(),
            ..Default::default()
        };
        assert_eq!(
            render("k", &result, OutputFormat::Text),
            "Key: k\nValue: v\n"
        );
    }

    #[test]
    fn not_found_is_a_line_not_an_error() {
        assert_eq!(
            render("nope", &GetResult::default(), OutputFormat::Text),
            "Key 'nope' not found\n"
        );
    }

    #[test]
    fn siblings_are_numbered_from_one() {
        assert_eq!(
            render("k", &found(&["a", "b", "c"]), OutputFormat::Text),
            "Key: k\nSiblings: 3\nValue[1]: a\nValue[2]: b\nValue[3]: c\n"
        );
    }

    #[test]
    fn json_found() {
        assert_eq!(
            render("k", &found(&["a", "b"]), OutputFormat::Json),
            concat!(
                r#"{"command":"get","key":"k","found":true,"value":"a","siblings":["#,
                r#"{"value":"a","clock":{"n1":1},"timestamp_ms":1000},"#,
                r#"{"value":"b","clock":{"n2":1},"timestamp_ms":1001}]}"#,
                "\n"
            )
        );
    }

    #[test]
    fn json_not_found() {
        assert_eq!(
            render("k", &GetResult::default(), OutputFormat::Json),
            "{\"command\":\"get\",\"key\":\"k\",\"found\":false,\"value\":null,\"siblings\":[]}\n"
        );
    }
}
