//! `put <key> <value>`: store a value.
//!
//! Text: `Successfully stored key '<key>'`. JSON: `{"command":"put","key":...,"success":true}`.

use std::io::Write;

use serde::Serialize;

use super::output::{OutputFormat, json_line};
use super::{CliError, Ctx, UsageError};

pub(crate) const USAGE: &str = "distkv-client put <key> <value>";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Put {
    pub key: String,
    pub value: String,
}

impl Put {
    pub(crate) fn parse(args: &[String]) -> Result<Self, UsageError> {
        match args {
            [key, value] => Ok(Put {
                key: key.clone(),
                value: value.clone(),
            }),
            _ => Err(UsageError::WrongArgs(USAGE)),
        }
    }

    pub(crate) async fn execute(&self, ctx: &Ctx, out: &mut dyn Write) -> Result<(), CliError> {
        ctx.routed
            .put(
                self.key.as_str(),
                self.value.as_bytes(),
                Some(ctx.consistency),
                None,
            )
            .await?;
        out.write_all(render(&self.key, ctx.format).as_bytes())?;
        Ok(())
    }
}

/// The output of a successful put.
pub fn render(key: &str, format: OutputFormat) -> String {
    match format {
        OutputFormat::Text => format!("Successfully stored key '{key}'\n"),
        OutputFormat::Json => json_line(&Stored {
            command: "put",
            key,
            success: true,
        }),
    }
}

/// The JSON of a successful put or delete.
#[derive(Serialize)]
pub(crate) struct Stored<'a> {
    pub command: &'static str,
    pub key: &'a str,
    pub success: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn parses_exactly_two_arguments() {
        assert_eq!(
            Put::parse(&args(&["k", "-v alue"])),
            Ok(Put {
                key: "k".into(),
                value: "-v alue".into()
            })
        );
        for bad in [&[][..], &["k"], &["k", "v", "extra"]] {
            assert_eq!(Put::parse(&args(bad)), Err(UsageError::WrongArgs(USAGE)));
        }
    }

    #[test]
    fn renders_like_the_original() {
        assert_eq!(
            render("user:123", OutputFormat::Text),
            "Successfully stored key 'user:123'\n"
        );
        assert_eq!(
            render("user:123", OutputFormat::Json),
            "{\"command\":\"put\",\"key\":\"user:123\",\"success\":true}\n"
        );
    }
}
