//! `delete <key>`: delete a key.
//!
//! Text: `Successfully deleted key '<key>'`. JSON: `{"command":"delete","key":...,"success":true}`.

use std::io::Write;

use super::output::{OutputFormat, json_line};
use super::put::Stored;
use super::{CliError, Ctx, UsageError};

pub(crate) const USAGE: &str = "distkv-client delete <key>";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Delete {
    pub key: String,
}

impl Delete {
    pub(crate) fn parse(args: &[String]) -> Result<Self, UsageError> {
        match args {
            [key] => Ok(Delete { key: key.clone() }),
            _ => Err(UsageError::WrongArgs(USAGE)),
        }
    }

    pub(crate) async fn execute(&self, ctx: &Ctx, out: &mut dyn Write) -> Result<(), CliError> {
        ctx.routed
            .delete(self.key.as_str(), Some(ctx.consistency), None)
            .await?;
        out.write_all(render(&self.key, ctx.format).as_bytes())?;
        Ok(())
    }
}

/// The output of a successful delete.
pub fn render(key: &str, format: OutputFormat) -> String {
    match format {
        OutputFormat::Text => format!("Successfully deleted key '{key}'\n"),
        OutputFormat::Json => json_line(&Stored {
            command: "delete",
            key,
            success: true,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exactly_one_argument() {
        assert_eq!(
            Delete::parse(&["k".to_string()]),
            Ok(Delete { key: "k".into() })
        );
        assert_eq!(Delete::parse(&[]), Err(UsageError::WrongArgs(USAGE)));
        assert_eq!(
            Delete::parse(&["a".to_string(), "b".to_string()]),
            Err(UsageError::WrongArgs(USAGE))
        );
    }

    #[test]
    fn renders_like_the_original() {
        assert_eq!(
            render("k1", OutputFormat::Text),
            "Successfully deleted key 'k1'\n"
        );
        assert_eq!(
            render("k1", OutputFormat::Json),
            "{\"command\":\"delete\",\"key\":\"k1\",\"success\":true}\n"
        );
    }
}
