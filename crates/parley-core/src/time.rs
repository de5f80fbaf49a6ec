//! Timestamps: UTC, microsecond precision, stored as `i64` epoch microseconds in both backends.

use std::time::{SystemTime, UNIX_EPOCH};

/// A UTC instant with microsecond precision.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, serde::Serialize, serde::Deserialize,
)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self(i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
    }
    /// From epoch microseconds.
    pub const fn from_unix_micros(us: i64) -> Self {
        Self(us)
    }
    /// From epoch seconds.
    pub const fn from_unix_secs(s: i64) -> Self {
        Self(s.saturating_mul(1_000_000))
    }
    /// Epoch microseconds.
    pub const fn unix_micros(self) -> i64 {
        self.0
    }
    /// Epoch seconds (floor).
    pub const fn unix_secs(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }
    /// This instant moved by `secs` seconds (negative moves back).
    pub const fn plus_secs(self, secs: i64) -> Self {
        Self(self.0.saturating_add(secs.saturating_mul(1_000_000)))
    }
    /// `YYYY-MM-DDTHH:MM:SSZ`, the wire format of every Chat v2 date (contract §0.1).
    pub fn to_rfc3339_seconds(self) -> String {
        let odt = time::OffsetDateTime::from_unix_timestamp(self.unix_secs())
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let fmt =
            time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
        odt.format(&fmt).unwrap_or_default()
    }
    /// Parse an ISO-8601 / RFC 3339 date-time (`2020-01-02T03:04:05Z`, offsets and fractions allowed).
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        let odt =
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
        let us = odt.unix_timestamp_nanos() / 1000;
        i64::try_from(us).ok().map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_without_fraction_or_offset() {
        let t = Timestamp::from_unix_micros(1_577_934_245_123_456);
        assert_eq!(t.to_rfc3339_seconds(), "2020-01-02T03:04:05Z");
    }

    #[test]
    fn parses_round_trip_and_offsets() {
        let t = Timestamp::parse_rfc3339("2020-01-02T03:04:05Z").expect("parse");
        assert_eq!(t.to_rfc3339_seconds(), "2020-01-02T03:04:05Z");
        let t2 = Timestamp::parse_rfc3339("2020-01-02T04:04:05+01:00").expect("parse");
        assert_eq!(t, t2);
        assert!(Timestamp::parse_rfc3339("yesterday").is_none());
    }
}
