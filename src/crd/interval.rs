//! `spec.keyAccessCheckInterval`: a Go-style duration kept as the text the user wrote, with a
//! conversion that is total.
//!
//! NB: the field used to be `kube::core::Duration`, whose parser panics on numbers that
//! overflow (`99999999999999999999h` passed the old schema). A panic while deserializing one
//! stored object would take down the watcher's list for every object, so the text is kept
//! verbatim here and converted with checked arithmetic; an unusable value becomes a validation
//! error on that object alone. No I/O.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A duration such as `30s`, `5m` or `1h30m`, as written in the spec.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CheckInterval(String);

/// Default key-access check interval, as users write it.
pub const DEFAULT: &str = "30s";

/// Shortest interval the API accepts.
pub const MIN: Duration = Duration::from_secs(10);
/// Longest interval the API accepts.
pub const MAX: Duration = Duration::from_secs(24 * 3600);

impl Default for CheckInterval {
    fn default() -> Self {
        Self(DEFAULT.to_owned())
    }
}

impl fmt::Display for CheckInterval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for CheckInterval {
    fn from(text: &str) -> Self {
        Self(text.to_owned())
    }
}

/// Why a text is not a usable interval.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IntervalError {
    /// Not of the form `<number><unit>...` with units `ms`, `s`, `m`, `h`.
    #[error("{0:?} is not a duration such as 30s, 5m or 1h30m")]
    Syntax(String),
    /// Parsed, but outside [`MIN`]..=[`MAX`].
    #[error("{0:?} is not between 10s and 24h")]
    OutOfRange(String),
}

impl CheckInterval {
    /// The text as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The interval, if it is a duration between [`MIN`] and [`MAX`]. Never panics.
    ///
    /// # Errors
    /// [`IntervalError`] for text that is not a duration or is out of range.
    pub fn duration(&self) -> Result<Duration, IntervalError> {
        match parse(&self.0) {
            Parsed::Syntax => Err(IntervalError::Syntax(self.0.clone())),
            Parsed::Duration(d) if (MIN..=MAX).contains(&d) => Ok(d),
            Parsed::Duration(_) | Parsed::TooLarge => {
                Err(IntervalError::OutOfRange(self.0.clone()))
            }
        }
    }
}

/// What [`parse`] found.
enum Parsed {
    /// Not of the form.
    Syntax,
    /// Of the form, but larger than any interval worth representing (so "out of range", not
    /// "bad syntax").
    TooLarge,
    /// The duration.
    Duration(Duration),
}

/// Parses `([0-9]+(\.[0-9]+)?(ms|s|m|h))+`.
fn parse(text: &str) -> Parsed {
    // Nanoseconds in u128: no sum of a bounded number of u64-sized terms can overflow it, and
    // anything above a year is out of range anyway.
    const CAP_NANOS: u128 = 366 * 24 * 3600 * 1_000_000_000;
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return Parsed::Syntax;
    }
    let mut total: u128 = 0;
    let mut overflow = false;
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Parsed::Syntax;
        }
        let whole = &text[start..i];
        let mut fraction = "";
        if i < bytes.len() && bytes[i] == b'.' {
            i += 1;
            let fstart = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i == fstart {
                return Parsed::Syntax;
            }
            fraction = &text[fstart..i];
        }
        let unit_nanos: u128 = if text[i..].starts_with("ms") {
            i += 2;
            1_000_000
        } else {
            let unit = match bytes.get(i) {
                Some(b's') => 1_000_000_000,
                Some(b'm') => 60 * 1_000_000_000,
                Some(b'h') => 3600 * 1_000_000_000,
                _ => return Parsed::Syntax,
            };
            i += 1;
            unit
        };
        if overflow {
            continue;
        }
        // More than 30 digits cannot be below the cap in any unit (and 30 fit in a u128).
        let digits = whole.trim_start_matches('0');
        if digits.len() > 30 {
            overflow = true;
            continue;
        }
        let value: u128 = if digits.is_empty() {
            0
        } else {
            digits.parse().unwrap_or(u128::MAX)
        };
        let mut nanos = value.saturating_mul(unit_nanos);
        // Fractions finer than a nanosecond are dropped, as Go does.
        let mut scale = unit_nanos;
        for digit in fraction.bytes().take(20) {
            scale /= 10;
            nanos = nanos.saturating_add(u128::from(digit - b'0') * scale);
        }
        total = total.saturating_add(nanos);
        if total > CAP_NANOS {
            overflow = true;
        }
    }
    if overflow {
        return Parsed::TooLarge;
    }
    match (
        u64::try_from(total / 1_000_000_000),
        u32::try_from(total % 1_000_000_000),
    ) {
        (Ok(secs), Ok(nanos)) => Parsed::Duration(Duration::new(secs, nanos)),
        _ => Parsed::TooLarge,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every form the schema admits converts without panicking, and the result is what Go's
    /// `time.ParseDuration` would give, or a range error.
    #[test]
    fn conversion_is_total_and_exact() {
        let cases: &[(&str, Result<Duration, ()>)] = &[
            ("30s", Ok(Duration::from_secs(30))),
            ("5m", Ok(Duration::from_secs(300))),
            ("1h30m", Ok(Duration::from_secs(5400))),
            ("1.5m", Ok(Duration::from_secs(90))),
            ("10000ms", Ok(Duration::from_secs(10))),
            ("24h", Ok(Duration::from_secs(86400))),
            ("0024h", Ok(Duration::from_secs(86400))),
            ("9s", Err(())),
            ("24h1ms", Err(())),
            ("99999999999999999999h", Err(())),
            ("99999999999999999999999999999999999999999999h", Err(())),
            ("1h99999999999999999999999999999999999999999999ms", Err(())),
            ("", Err(())),
            ("30", Err(())),
            ("-5s", Err(())),
            ("5 s", Err(())),
            ("1.s", Err(())),
            ("5us", Err(())),
            ("30s\u{e9}", Err(())),
        ];
        for (text, expected) in cases {
            let got = CheckInterval::from(*text).duration().map_err(|_| ());
            assert_eq!(&got, expected, "{text:?}");
        }
    }

    /// A huge value is a range error, not a syntax error: the message must say what to fix.
    #[test]
    fn huge_values_are_reported_as_out_of_range() {
        let err = CheckInterval::from("99999999999999999999h")
            .duration()
            .expect_err("out of range");
        assert!(matches!(err, IntervalError::OutOfRange(_)), "{err:?}");
        assert!(err.to_string().contains("between 10s and 24h"), "{err}");
    }
}
