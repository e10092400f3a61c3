//! Parsing of human-friendly durations such as `30m`, `7d` or `3600`.

use std::time::Duration;

/// Parses a duration written as a number of seconds (`3600`) or as one or more
/// `<number><unit>` parts (`30s`, `30m`, `12h`, `7d`, `2w`, `1h30m`).
///
/// Units: `s` seconds, `m` minutes, `h` hours, `d` days, `w` weeks. A bare number
/// is seconds. Whitespace around the value is ignored.
pub(crate) fn parse_duration(input: &str) -> Result<Duration, String> {
    // One grammar for the flags and the cache's request headers (`x-cache-ttl`).
    crate::cache::parse_duration(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_forms() {
        assert_eq!(parse_duration("3600").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert!(parse_duration("7 days").is_err());
    }

    #[test]
    fn parses_every_unit_and_bare_seconds() {
        let cases = [
            ("0", 0),
            ("3600", 3600),
            (" 42 ", 42),
            ("45s", 45),
            ("30m", 1800),
            ("12h", 43_200),
            ("1d", 86_400),
            ("7d", 604_800),
            ("2w", 1_209_600),
            ("1h30m", 5_400),
            ("1d12h", 129_600),
        ];
        for (text, secs) in cases {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs(secs)),
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "d",
            "7x",
            "7 d",
            "1.5h",
            "-3",
            "m30",
            "99999999999999999999",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(parse_duration("18446744073709551615w").is_err());
    }
}
