//! Go's `strconv.ParseBool`.

/// A string that is not one of Go's boolean spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid boolean value {input:?} (expected one of 1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False)"
)]
pub struct BoolError {
    /// The rejected input.
    pub input: String,
}

/// Parses a boolean the way Go's `strconv.ParseBool` does.
///
/// True: `1 t T TRUE true True`; false: `0 f F FALSE false False`. Nothing else, not even
/// `yes` or `tRUE`, is accepted. Usable as a clap `value_parser` (see the crate docs).
///
/// ```
/// assert_eq!(distkv_flags::parse_go_bool("T"), Ok(true));
/// assert_eq!(distkv_flags::parse_go_bool("False"), Ok(false));
/// assert!(distkv_flags::parse_go_bool("yes").is_err());
/// ```
pub fn parse_go_bool(s: &str) -> Result<bool, BoolError> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(BoolError {
            input: s.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_go_spellings() {
        for s in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_go_bool(s), Ok(true), "{s}");
        }
        for s in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_go_bool(s), Ok(false), "{s}");
        }
    }

    #[test]
    fn rejects_everything_else() {
        for s in [
            "", "yes", "no", "on", "off", "tRUE", "fALSE", "TRue", "2", "-1", " true", "true ", "y",
        ] {
            assert_eq!(
                parse_go_bool(s),
                Err(BoolError {
                    input: s.to_string()
                }),
                "{s:?}"
            );
        }
    }

    #[test]
    fn error_names_the_input() {
        let err = parse_go_bool("maybe").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid boolean value \"maybe\"")
        );
    }
}
