//! `backup [<name>]` (new): the connected node writes a consistent copy of its data under
//! `<data-dir>/backups/<name>` on its own disk (the name defaults to the node's UTC time).
//! Run it against every node to back up a cluster; copy the directories off the nodes.
//!
//! Text: `Backup '20261201T091500Z' of node1 written to /data/backups/20261201T091500Z (12
//! files, 3.4MB)`. JSON: `{"command":"backup","name","path","node_id","created","files",
//! "bytes"}`.

use std::io::Write;

use serde::Serialize;

use super::output::{OutputFormat, format_bytes, json_line};
use super::{CliError, Ctx, UsageError};
use crate::types::BackupInfo;

pub(crate) const USAGE: &str = "distkv-client backup [<name>]";

/// A backup request: the name, or none for the node's default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Backup {
    pub name: Option<String>,
}

impl Backup {
    pub(crate) fn parse(args: &[String]) -> Result<Backup, UsageError> {
        match args {
            [] => Ok(Backup { name: None }),
            [name] if !name.is_empty() => Ok(Backup {
                name: Some(name.clone()),
            }),
            _ => Err(UsageError::WrongArgs(USAGE)),
        }
    }

    pub(crate) async fn execute(&self, ctx: &Ctx, out: &mut dyn Write) -> Result<(), CliError> {
        let info = ctx
            .client
            .backup(self.name.clone().unwrap_or_default())
            .await?;
        out.write_all(render(&info, ctx.format).as_bytes())?;
        Ok(())
    }
}

/// The output of `backup`.
pub(crate) fn render(info: &BackupInfo, format: OutputFormat) -> String {
    #[derive(Serialize)]
    struct Json<'a> {
        command: &'static str,
        #[serde(flatten)]
        info: &'a BackupInfo,
    }
    match format {
        OutputFormat::Json => json_line(&Json {
            command: "backup",
            info,
        }),
        OutputFormat::Text => format!(
            "Backup '{}' of {} written to {} ({} files, {})\n",
            info.name,
            info.node_id,
            info.path,
            info.files,
            format_bytes(info.bytes)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_an_optional_name() {
        assert_eq!(Backup::parse(&[]).unwrap(), Backup { name: None });
        assert_eq!(
            Backup::parse(&words(&["nightly"])).unwrap(),
            Backup {
                name: Some("nightly".into())
            }
        );
        assert!(Backup::parse(&words(&["a", "b"])).is_err());
        assert!(Backup::parse(&words(&[""])).is_err());
    }

    #[test]
    fn renders_text_and_json() {
        let info = BackupInfo {
            name: "nightly".into(),
            path: "/data/backups/nightly".into(),
            node_id: "node1".into(),
            created: 1_796_116_500,
            files: 12,
            bytes: 3 * 1024 * 1024 + 400 * 1024,
        };
        assert_eq!(
            render(&info, OutputFormat::Text),
            "Backup 'nightly' of node1 written to /data/backups/nightly (12 files, 3.4MB)\n"
        );
        assert_eq!(
            render(&info, OutputFormat::Json),
            "{\"command\":\"backup\",\"name\":\"nightly\",\"path\":\"/data/backups/nightly\",\
             \"node_id\":\"node1\",\"created\":1796116500,\"files\":12,\"bytes\":3555328}\n"
        );
    }
}
