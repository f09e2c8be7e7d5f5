//! `batch <k1> <v1> [<k2> <v2> ...]`: store several pairs in one request.
//!
//! Text, as the original: `Successfully stored <n> key-value pairs` (n counts distinct keys; a
//! repeated key keeps its last value). On partial failure, still exit status 0 like the
//! original: `Batch put partially failed: <message>` and, when the server names them,
//! `Failed keys: [k1 k2]` (sorted).
//!
//! JSON: `{"command":"batch","pairs":<n>,"success":...,"error_message":"...","failed_keys":[...]}`.

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;

use super::output::{OutputFormat, json_line};
use super::{CliError, Ctx, UsageError};
use crate::types::BatchResult;

pub(crate) const USAGE: &str = "distkv-client batch <key1> <value1> [<key2> <value2> ...]";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Batch {
    /// Distinct keys with their last value, in key order.
    pub items: BTreeMap<String, String>,
}

impl Batch {
    pub(crate) fn parse(args: &[String]) -> Result<Self, UsageError> {
        if args.is_empty() || !args.len().is_multiple_of(2) {
            return Err(UsageError::WrongArgs(USAGE));
        }
        let items = args
            .chunks_exact(2)
            .map(|pair| (pair[0].clone(), pair[1].clone()))
            .collect();
        Ok(Batch { items })
    }

    pub(crate) async fn execute(&self, ctx: &Ctx, out: &mut dyn Write) -> Result<(), CliError> {
        let items = self
            .items
            .iter()
            .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
            .collect();
        let result = ctx.client.batch_put(items, Some(ctx.consistency)).await?;
        out.write_all(render(self.items.len(), &result, ctx.format).as_bytes())?;
        Ok(())
    }
}

/// The output of a batch of `pairs` distinct keys.
pub fn render(pairs: usize, result: &BatchResult, format: OutputFormat) -> String {
    match format {
        OutputFormat::Text => {
            if result.success {
                return format!("Successfully stored {pairs} key-value pairs\n");
            }
            let mut out = format!("Batch put partially failed: {}\n", result.error_message);
            if !result.failed_keys.is_empty() {
                // Go's %v of a []string.
                out.push_str(&format!(
                    "Failed keys: [{}]\n",
                    result.failed_keys.join(" ")
                ));
            }
            out
        }
        OutputFormat::Json => {
            #[derive(Serialize)]
            struct BatchView<'a> {
                command: &'static str,
                pairs: usize,
                success: bool,
                error_message: &'a str,
                failed_keys: &'a [String],
            }
            json_line(&BatchView {
                command: "batch",
                pairs,
                success: result.success,
                error_message: &result.error_message,
                failed_keys: &result.failed_keys,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn parses_pairs_and_keeps_the_last_value_of_a_repeated_key() {
        let batch = Batch::parse(&args(&["b", "1", "a", "2", "b", "3"])).unwrap();
        assert_eq!(
            batch.items,
            BTreeMap::from([("a".into(), "2".into()), ("b".into(), "3".into())])
        );
    }

    #[test]
    fn odd_or_empty_arguments_are_a_usage_error() {
        for bad in [&[][..], &["k"], &["k", "v", "k2"]] {
            assert_eq!(Batch::parse(&args(bad)), Err(UsageError::WrongArgs(USAGE)));
        }
    }

    #[test]
    fn success_text() {
        let ok = BatchResult {
            success: true,
            ..Default::default()
        };
        assert_eq!(
            render(2, &ok, OutputFormat::Text),
            "Successfully stored 2 key-value pairs\n"
        );
    }

    #[test]
    fn partial_failure_text() {
        let partial = BatchResult {
            success: false,
            error_message: "2 of 3 writes failed".into(),
            failed_keys: vec!["k1".into(), "k2".into()],
        };
        assert_eq!(
            render(3, &partial, OutputFormat::Text),
            "Batch put partially failed: 2 of 3 writes failed\nFailed keys: [k1 k2]\n"
        );
        let no_keys = BatchResult {
            success: false,
            error_message: "x".into(),
            failed_keys: vec![],
        };
        assert_eq!(
            render(3, &no_keys, OutputFormat::Text),
            "Batch put partially failed: x\n"
        );
    }

    #[test]
    fn json_shape() {
        let partial = BatchResult {
            success: false,
            error_message: "m".into(),
            failed_keys: vec!["k1".into()],
        };
        assert_eq!(
            render(2, &partial, OutputFormat::Json),
            "{\"command\":\"batch\",\"pairs\":2,\"success\":false,\"error_message\":\"m\",\"failed_keys\":[\"k1\"]}\n"
        );
    }
}
