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
        match self.rfc3339_seconds_bytes() {
            Some(b) => b.iter().map(|&c| char::from(c)).collect(),
            None => self.to_rfc3339_seconds_slow(),
        }
    }

    /// [`Timestamp::to_rfc3339_seconds`] without allocating, for years 0000–9999 (`None`
    /// outside them). Hot: several dates per resource, 50 resources per page.
    pub fn rfc3339_seconds_bytes(self) -> Option<[u8; 20]> {
        let secs = self.unix_secs();
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (y, m, d) = civil_from_days(days);
        if !(0..=9999).contains(&y) {
            return None;
        }
        let mut b = *b"0000-00-00T00:00:00Z";
        let mut put = |at: usize, n: i64, width: usize| {
            let mut n = n;
            for i in (at..at + width).rev() {
                // n % 10 is 0..=9: the cast cannot truncate.
                b[i] = b'0' + (n % 10) as u8;
                n /= 10;
            }
        };
        put(0, y, 4);
        put(5, m, 2);
        put(8, d, 2);
        put(11, rem / 3600, 2);
        put(14, rem / 60 % 60, 2);
        put(17, rem % 60, 2);
        Some(b)
    }

    fn to_rfc3339_seconds_slow(self) -> String {
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

/// (year, month, day) of a day count since 1970-01-01, proleptic Gregorian (H. Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hand_written_format_agrees_with_the_time_crate() {
        // Every day boundary from 0000 to 9999 in big strides, plus odd seconds and leap days.
        let min = -62_167_219_200_i64; // 0000-01-01T00:00:00Z
        let max = 253_402_300_799_i64; // 9999-12-31T23:59:59Z
        let mut s = min;
        while s <= max {
            let t = Timestamp::from_unix_micros(s * 1_000_000);
            assert_eq!(
                t.to_rfc3339_seconds(),
                t.to_rfc3339_seconds_slow(),
                "at {s}"
            );
            s += 86_400 * 97 + 3_607;
        }
        for s in [
            min,
            max,
            0,
            -1,
            951_782_400,
            951_868_799,
            4_107_542_400,
            1_709_164_800,
        ] {
            let t = Timestamp::from_unix_micros(s * 1_000_000);
            assert_eq!(
                t.to_rfc3339_seconds(),
                t.to_rfc3339_seconds_slow(),
                "at {s}"
            );
        }
        // Outside 0000–9999: the old path (time's range or the epoch).
        let far = Timestamp::from_unix_micros((max + 1) * 1_000_000);
        assert_eq!(far.to_rfc3339_seconds(), far.to_rfc3339_seconds_slow());
    }

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
