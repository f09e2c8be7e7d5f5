//! `health` (new): whether the node serves requests, from its `/ready` endpoint (HTTP on the
//! same port, with the same TLS settings). For container health checks and scripts.
//!
//! Text: `ready` (exit 0), or `Error: node not ready (HTTP 503): <reason>` on stderr (exit 1).
//! JSON: `{"command":"health","ready":true|false,"status":<HTTP code>,"detail":<body>}`.

use std::io::Write;

use serde::Serialize;

use super::output::{OutputFormat, json_line};
use super::{CliError, Ctx, UsageError};
use crate::error::ClientError;

pub(crate) const USAGE: &str = "distkv-client health";

pub(crate) fn parse(args: &[String]) -> Result<(), UsageError> {
    if args.is_empty() {
        Ok(())
    } else {
        Err(UsageError::WrongArgs(USAGE))
    }
}

pub(crate) async fn execute(ctx: &Ctx, out: &mut dyn Write) -> Result<(), CliError> {
    let (status, body) = ctx.client.ready().await?;
    let ready = status == 200;
    if ctx.format == OutputFormat::Json {
        #[derive(Serialize)]
        struct View<'a> {
            command: &'static str,
            ready: bool,
            status: u16,
            detail: &'a str,
        }
        out.write_all(
            json_line(&View {
                command: "health",
                ready,
                status,
                detail: &body,
            })
            .as_bytes(),
        )?;
    } else if ready {
        out.write_all(b"ready\n")?;
    }
    if ready {
        Ok(())
    } else {
        Err(CliError::Client(ClientError::NotReady {
            status,
            detail: body,
        }))
    }
}
