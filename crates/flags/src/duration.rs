//! Go's `time.ParseDuration` and `time.Duration.String`.
//!
//! A duration is an optional sign followed by one or more decimal numbers, each with an optional
//! fraction and a unit: `300ms`, `-1.5h`, `2h45m`, `1h2m3.5s`. Units are `ns`, `us` (or `µs`,
//! `μs`), `ms`, `s`, `m`, `h`. A plain `0` needs no unit. Like Go, the total must fit in an
//! `i64` of nanoseconds (about 292 years) and fractions beyond a nanosecond are truncated.
//! Unlike Go, a negative duration is an error, since `std::time::Duration` cannot hold one.

use std::time::Duration;

/// The largest duration Go can represent: `i64::MAX` nanoseconds.
const MAX_NANOS: u64 = i64::MAX as u64;

/// Go's bound while parsing (`1 << 63`, the magnitude of the most negative duration).
const GO_LIMIT: u64 = 1 << 63;

/// Why a string is not a Go duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not of the form `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`.
    #[error("invalid duration {input:?}")]
    Invalid { input: String },
    /// A number without a unit, such as `5` (only `0` may omit it).
    #[error("missing unit in duration {input:?}")]
    MissingUnit { input: String },
    /// A unit that is not one of ns, us, µs, ms, s, m, h.
    #[error("unknown unit {unit:?} in duration {input:?}")]
    UnknownUnit { unit: String, input: String },
    /// A negative duration, which Go accepts but `std::time::Duration` cannot hold.
    #[error("negative duration {input:?} is not allowed")]
    Negative { input: String },
    /// More than Go's maximum of `i64::MAX` nanoseconds.
    #[error("duration {input:?} is out of range")]
    Overflow { input: String },
}

/// Nanoseconds per unit, or `None` for an unknown unit.
fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// Parses a duration in Go's `time.ParseDuration` syntax.
///
/// ```
/// use std::time::Duration;
/// use distkv_flags::parse_go_duration;
/// assert_eq!(parse_go_duration("300ms"), Ok(Duration::from_millis(300)));
/// assert_eq!(parse_go_duration("1.5h"), Ok(Duration::from_secs(5400)));
/// assert_eq!(parse_go_duration("2m0s"), Ok(Duration::from_secs(120)));
/// assert!(parse_go_duration("5").is_err());
/// ```
pub fn parse_go_duration(s: &str) -> Result<Duration, DurationError> {
    let invalid = || DurationError::Invalid {
        input: s.to_string(),
    };
    let (negative, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if body == "0" {
        return Ok(Duration::ZERO);
    }
    if body.is_empty() {
        return Err(invalid());
    }

    let overflow = || DurationError::Overflow {
        input: s.to_string(),
    };
    let mut total: u64 = 0;
    let mut rest = body;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_digits, after_int) = rest.split_at(int_len);
        let (frac_digits, after_frac) = match after_int.strip_prefix('.') {
            Some(after_dot) => {
                let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
                after_dot.split_at(frac_len)
            }
            None => ("", after_int),
        };
        if int_digits.is_empty() && frac_digits.is_empty() {
            // No digits at all, e.g. ".s" or "s".
            return Err(invalid());
        }
        // The unit runs to the next digit or dot.
        let unit_len = after_frac
            .char_indices()
            .find(|&(_, c)| c == '.' || c.is_ascii_digit())
            .map_or(after_frac.len(), |(i, _)| i);
        let (unit, after_unit) = after_frac.split_at(unit_len);
        if unit.is_empty() {
            return Err(DurationError::MissingUnit {
                input: s.to_string(),
            });
        }
        let Some(per_unit) = unit_nanos(unit) else {
            return Err(DurationError::UnknownUnit {
                unit: unit.to_string(),
                input: s.to_string(),
            });
        };

        // Integer arithmetic for the whole part, Go's float arithmetic for the fraction, so
        // that results agree with Go to the nanosecond.
        let whole = leading_int(int_digits).ok_or_else(overflow)?;
        if whole > GO_LIMIT / per_unit {
            return Err(overflow());
        }
        let mut nanos = whole * per_unit;
        let (fraction, scale) = leading_fraction(frac_digits);
        if fraction > 0 {
            nanos += (fraction as f64 * (per_unit as f64 / scale)) as u64;
            if nanos > GO_LIMIT {
                return Err(overflow());
            }
        }
        total = total.checked_add(nanos).ok_or_else(overflow)?;
        if total > GO_LIMIT {
            return Err(overflow());
        }
        rest = after_unit;
    }

    if negative && total > 0 {
        return Err(DurationError::Negative {
            input: s.to_string(),
        });
    }
    if total > MAX_NANOS {
        return Err(overflow());
    }
    Ok(Duration::from_nanos(total))
}

/// Go's `leadingInt`: the value of a run of digits, `None` past `1 << 63`.
fn leading_int(digits: &str) -> Option<u64> {
    digits.bytes().try_fold(0u64, |acc, d| {
        let next = acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        (next <= GO_LIMIT).then_some(next)
    })
}

/// Go's `leadingFraction`: the digits as an integer and the power of ten that scales it, with
/// digits that would overflow the integer ignored.
fn leading_fraction(digits: &str) -> (u64, f64) {
    let mut value = 0u64;
    let mut scale = 1.0;
    for d in digits.bytes() {
        if value > (GO_LIMIT - 1) / 10 {
            break;
        }
        let next = value * 10 + u64::from(d - b'0');
        if next > GO_LIMIT {
            break;
        }
        value = next;
        scale *= 10.0;
    }
    (value, scale)
}

/// Formats a duration the way Go's `time.Duration.String` does.
///
/// `0s`, `1ns`, `1.5µs`, `300ms`, `5s`, `2m0s`, `1h0m0s`, `1h2m3.5s`. Durations beyond Go's range
/// (over `i64::MAX` nanoseconds) are formatted the same way, without clamping.
///
/// ```
/// use std::time::Duration;
/// use distkv_flags::format_go_duration;
/// assert_eq!(format_go_duration(Duration::from_secs(5)), "5s");
/// assert_eq!(format_go_duration(Duration::from_secs(120)), "2m0s");
/// assert_eq!(format_go_duration(Duration::from_millis(1500)), "1.5s");
/// assert_eq!(format_go_duration(Duration::from_micros(300)), "300µs");
/// ```
pub fn format_go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000_000_000 {
        // Below a second Go picks the largest unit that keeps an integer part.
        let (unit, per_unit) = if nanos < 1_000 {
            ("ns", 1)
        } else if nanos < 1_000_000 {
            ("\u{b5}s", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{unit}", decimal(nanos, per_unit));
    }
    let hours = nanos / 3_600_000_000_000;
    let minutes = nanos / 60_000_000_000 % 60;
    let seconds = decimal(nanos % 60_000_000_000, 1_000_000_000);
    if hours > 0 {
        format!("{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

/// `value / per_unit` as a decimal with trailing zeros of the fraction removed.
fn decimal(value: u128, per_unit: u128) -> String {
    let int = value / per_unit;
    let frac = value % per_unit;
    if frac == 0 {
        return int.to_string();
    }
    let width = per_unit.ilog10() as usize;
    let frac = format!("{frac:0width$}");
    format!("{int}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Duration {
        parse_go_duration(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn parses_go_examples() {
        let cases: &[(&str, u64)] = &[
            ("0", 0),
            ("+0", 0),
            ("-0", 0),
            ("0s", 0),
            ("-0s", 0),
            ("5s", 5_000_000_000),
            ("30s", 30_000_000_000),
            ("1478s", 1_478_000_000_000),
            ("+5s", 5_000_000_000),
            ("5.0s", 5_000_000_000),
            ("5.6s", 5_600_000_000),
            ("5.s", 5_000_000_000),
            (".5s", 500_000_000),
            ("1.0s", 1_000_000_000),
            ("1.00s", 1_000_000_000),
            ("1.004s", 1_004_000_000),
            ("1.0040s", 1_004_000_000),
            ("100.00100s", 100_001_000_000),
            ("10ns", 10),
            ("11us", 11_000),
            ("12\u{b5}s", 12_000),
            ("12\u{3bc}s", 12_000),
            ("13ms", 13_000_000),
            ("14s", 14_000_000_000),
            ("15m", 900_000_000_000),
            ("16h", 57_600_000_000_000),
            ("3h30m", 12_600_000_000_000),
            ("10.5s4m", 250_500_000_000),
            ("1h2m3s4ms5us6ns", 3_723_004_005_006),
            ("39h9m14.425s", 140_954_425_000_000),
            ("52763797000ns", 52_763_797_000),
            ("0.3333333333333333333h", 1_200_000_000_000),
            ("9007199254740993ns", 9_007_199_254_740_993),
            ("9223372036854775807ns", 9_223_372_036_854_775_807),
            ("9223372036854775.807us", 9_223_372_036_854_775_807),
            ("9223372036s854ms775us807ns", 9_223_372_036_854_775_807),
            ("0.100000000000000000000h", 360_000_000_000),
            ("0.830103483285477580700h", 2_988_372_539_827),
            ("2m0s", 120_000_000_000),
            ("1.5h", 5_400_000_000_000),
            ("300ms", 300_000_000),
            ("1h2m3.5s", 3_723_500_000_000),
        ];
        for &(input, nanos) in cases {
            assert_eq!(ok(input), Duration::from_nanos(nanos), "{input:?}");
        }
    }

    #[test]
    fn rejects_malformed_input() {
        for input in [
            "", "3", "-", "s", ".", "-.", ".s", "+.s", "1d", "1.5", "x1s", "1s ", " 1s",
        ] {
            assert!(parse_go_duration(input).is_err(), "{input:?}");
        }
    }

    #[test]
    fn error_kinds() {
        assert_eq!(
            parse_go_duration(""),
            Err(DurationError::Invalid { input: "".into() })
        );
        assert_eq!(
            parse_go_duration(".s"),
            Err(DurationError::Invalid { input: ".s".into() })
        );
        assert_eq!(
            parse_go_duration("5"),
            Err(DurationError::MissingUnit { input: "5".into() })
        );
        assert_eq!(
            parse_go_duration("1s5"),
            Err(DurationError::MissingUnit {
                input: "1s5".into()
            })
        );
        assert_eq!(
            parse_go_duration("3d"),
            Err(DurationError::UnknownUnit {
                unit: "d".into(),
                input: "3d".into()
            })
        );
        assert_eq!(
            parse_go_duration("1 s"),
            Err(DurationError::UnknownUnit {
                unit: " s".into(),
                input: "1 s".into()
            })
        );
        assert_eq!(
            parse_go_duration("-1s"),
            Err(DurationError::Negative {
                input: "-1s".into()
            })
        );
        assert_eq!(
            parse_go_duration("9223372036854775808ns"),
            Err(DurationError::Overflow {
                input: "9223372036854775808ns".into()
            })
        );
        assert_eq!(
            parse_go_duration("9223372036854775.808us"),
            Err(DurationError::Overflow {
                input: "9223372036854775.808us".into()
            })
        );
        assert_eq!(
            parse_go_duration("3000000h"),
            Err(DurationError::Overflow {
                input: "3000000h".into()
            })
        );
        assert_eq!(
            parse_go_duration("99999999999999999999999999999999999999999s"),
            Err(DurationError::Overflow {
                input: "99999999999999999999999999999999999999999s".into()
            })
        );
    }

    #[test]
    fn error_messages_name_the_input() {
        assert_eq!(
            parse_go_duration("3d").unwrap_err().to_string(),
            r#"unknown unit "d" in duration "3d""#
        );
        assert_eq!(
            parse_go_duration("5").unwrap_err().to_string(),
            r#"missing unit in duration "5""#
        );
    }

    #[test]
    fn formats_like_go() {
        let cases: &[(u64, &str)] = &[
            (0, "0s"),
            (1, "1ns"),
            (1_100, "1.1\u{b5}s"),
            (2_200_000, "2.2ms"),
            (3_300_000_000, "3.3s"),
            (4 * 60_000_000_000 + 5_000_000_000, "4m5s"),
            (4 * 60_000_000_000 + 5_001_000_000, "4m5.001s"),
            (
                5 * 3_600_000_000_000 + 6 * 60_000_000_000 + 7_001_000_000,
                "5h6m7.001s",
            ),
            (8 * 60_000_000_000 + 1, "8m0.000000001s"),
            (3_600_000_000_000, "1h0m0s"),
            (120_000_000_000, "2m0s"),
            (5_000_000_000, "5s"),
            (300_000_000, "300ms"),
            (999_999_999, "999.999999ms"),
            (i64::MAX as u64, "2562047h47m16.854775807s"),
        ];
        for &(nanos, text) in cases {
            assert_eq!(format_go_duration(Duration::from_nanos(nanos)), text);
        }
    }

    #[test]
    fn format_then_parse_round_trips() {
        for nanos in [
            1u64,
            999,
            1_000,
            1_234_567,
            59_999_999_999,
            86_400_000_000_123,
        ] {
            let d = Duration::from_nanos(nanos);
            assert_eq!(ok(&format_go_duration(d)), d, "{nanos}");
        }
    }
}
