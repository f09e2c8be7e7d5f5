//! Formatting shared by the commands: output format, values as text, sizes, times.

use std::fmt::Write as _;

use chrono::{DateTime, Offset, TimeZone};
use serde::Serialize;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// The original client's lines.
    #[default]
    Text,
    /// One JSON object per command.
    Json,
}

/// An output format name that is not `text` or `json`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid output format {input:?}: expected text or json")]
pub struct InvalidOutputFormat {
    pub input: String,
}

impl std::str::FromStr for OutputFormat {
    type Err = InvalidOutputFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "text" => Ok(OutputFormat::Text),
            "json" => Ok(OutputFormat::Json),
            _ => Err(InvalidOutputFormat {
                input: s.to_string(),
            }),
        }
    }
}

/// A value as text. Values are bytes; the original printed them raw. Ours are decoded as UTF-8,
/// with invalid sequences shown as U+FFFD, so that text and JSON output stay valid UTF-8.
pub fn text(value: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(value)
}

/// A JSON object on one line, newline-terminated.
pub fn json_line(value: &impl Serialize) -> String {
    // Serializing plain structs of strings and numbers cannot fail.
    let mut line = serde_json::to_string(value).unwrap_or_else(|e| {
        serde_json::json!({ "error": format!("cannot encode output: {e}") }).to_string()
    });
    line.push('\n');
    line
}

/// The JSON printed when a command fails: `{"command": ..., "error": ...}`.
pub fn render_error_json(command: &str, error: &str) -> String {
    #[derive(Serialize)]
    struct ErrorView<'a> {
        command: &'a str,
        error: &'a str,
    }
    json_line(&ErrorView { command, error })
}

/// Bytes in binary units: `512B`, `1.2GB`, `856MB` (one decimal below 100 of a unit).
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KB", "MB", "GB", "TB", "PB", "EB"];
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if value < 99.95 {
        format!("{value:.1}{}", UNITS[unit])
    } else {
        format!("{value:.0}{}", UNITS[unit])
    }
}

/// Unix seconds as Go's `time.RFC3339` in `tz`: `2026-11-25T16:37:34Z`,
/// `2025-09-05T22:45:29-07:00`. Out-of-range seconds are printed as the bare number.
pub fn format_rfc3339<Tz: TimeZone>(unix_seconds: i64, tz: &Tz) -> String {
    let Some(utc) = DateTime::from_timestamp(unix_seconds, 0) else {
        return unix_seconds.to_string();
    };
    let local = utc.with_timezone(tz);
    let mut out = local.naive_local().format("%Y-%m-%dT%H:%M:%S").to_string();
    let offset = local.offset().fix().local_minus_utc();
    if offset == 0 {
        out.push('Z');
    } else {
        let sign = if offset < 0 { '-' } else { '+' };
        let offset = offset.unsigned_abs();
        let _ = write!(out, "{sign}{:02}:{:02}", offset / 3600, offset / 60 % 60);
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::{FixedOffset, Utc};

    use super::*;

    #[test]
    fn output_format_parses_case_insensitively() {
        assert_eq!("text".parse(), Ok(OutputFormat::Text));
        assert_eq!("JSON".parse(), Ok(OutputFormat::Json));
        assert_eq!(
            "yaml".parse::<OutputFormat>().unwrap_err().to_string(),
            "invalid output format \"yaml\": expected text or json"
        );
    }

    #[test]
    fn bytes_in_binary_units() {
        assert_eq!(format_bytes(0), "0B");
        assert_eq!(format_bytes(1023), "1023B");
        assert_eq!(format_bytes(1024), "1.0KB");
        assert_eq!(format_bytes(1536), "1.5KB");
        assert_eq!(format_bytes(856 * 1024 * 1024), "856MB");
        assert_eq!(format_bytes(1_288_490_189), "1.2GB");
        assert_eq!(format_bytes(2 * 1024 * 1024 * 1024), "2.0GB");
        assert_eq!(format_bytes(100 * 1024), "100KB");
        assert_eq!(format_bytes(u64::MAX), "16.0EB");
    }

    #[test]
    fn rfc3339_like_go() {
        assert_eq!(format_rfc3339(1_795_624_654, &Utc), "2026-11-25T16:37:34Z");
        let pdt = FixedOffset::west_opt(7 * 3600).unwrap();
        assert_eq!(
            format_rfc3339(1_757_137_529, &pdt),
            "2025-09-05T22:45:29-07:00"
        );
        let ist = FixedOffset::east_opt(5 * 3600 + 1800).unwrap();
        assert_eq!(format_rfc3339(0, &ist), "1970-01-01T05:30:00+05:30");
        assert_eq!(format_rfc3339(i64::MAX, &Utc), i64::MAX.to_string());
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        assert_eq!(text(b"ok"), "ok");
        assert_eq!(text(&[0x66, 0xff]), "f\u{fffd}");
    }

    #[test]
    fn error_json_shape() {
        assert_eq!(
            render_error_json("get", "get failed: boom"),
            "{\"command\":\"get\",\"error\":\"get failed: boom\"}\n"
        );
    }
}
