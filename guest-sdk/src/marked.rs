//! Binary data and timestamps, which JSON lacks, for clients that speak MessagePack.
//!
//! Arguments reach a plugin as JSON: what a MessagePack client sends as binary (bin) arrives as a
//! base64 string, and a timestamp as an ISO 8601 UTC string, exactly what a JSON client would
//! send. [`Binary`] and [`Timestamp`] read either form. Going out they serialize as the host's
//! markers, `{"$binary":"<base64>"}` and `{"$date":"<ISO 8601>"}`, which the host writes as bin
//! and a timestamp for MessagePack clients and as the plain base64 or ISO string for JSON
//! clients (as ASP.NET writes `byte[]` and `DateTime`).
//!
//! ```
//! use switchboard_guest::{Binary, Context, HubError, Timestamp};
//!
//! /// Echoes a file and the time it was sent, in the caller's own types.
//! fn echo(_: &Context, (data, at): (Binary, Timestamp)) -> Result<(Binary, Timestamp), HubError> {
//!     Ok((data, at))
//! }
//!
//! let data: Binary = serde_json::from_str(r#""AQID""#).unwrap();
//! assert_eq!(data.as_slice(), &[1, 2, 3]);
//! assert_eq!(serde_json::to_string(&data).unwrap(), r#"{"$binary":"AQID"}"#);
//! let at: Timestamp = serde_json::from_str(r#""2024-01-02T03:04:05.5Z""#).unwrap();
//! assert_eq!(serde_json::to_string(&at).unwrap(), r#"{"$date":"2024-01-02T03:04:05.5Z"}"#);
//! ```

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Bytes: bin for MessagePack clients, a base64 string for JSON clients.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Binary(pub Vec<u8>);

impl Binary {
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    /// The bytes, by value.
    pub fn into_vec(self) -> Vec<u8> {
        self.0
    }
}

impl From<Vec<u8>> for Binary {
    fn from(bytes: Vec<u8>) -> Self {
        Binary(bytes)
    }
}

impl From<&[u8]> for Binary {
    fn from(bytes: &[u8]) -> Self {
        Binary(bytes.to_vec())
    }
}

impl Serialize for Binary {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("$binary", &BASE64.encode(&self.0))?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for Binary {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = deserializer.deserialize_any(MarkedText("$binary"))?;
        BASE64
            .decode(text.as_bytes())
            .map(Binary)
            .map_err(|e| de::Error::custom(format!("invalid base64: {e}")))
    }
}

/// A point in time, UTC, to the nanosecond: a timestamp for MessagePack clients, an ISO 8601
/// string (`2024-01-02T03:04:05.5Z`) for JSON clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    secs: i64,
    nanos: u32,
}

impl Timestamp {
    /// The time `secs` seconds and `nanos` nanoseconds after the Unix epoch (`nanos` below
    /// 1,000,000,000; none otherwise).
    pub fn from_unix(secs: i64, nanos: u32) -> Option<Timestamp> {
        (nanos < 1_000_000_000).then_some(Timestamp { secs, nanos })
    }

    /// The time `ms` milliseconds after the Unix epoch (JavaScript's `Date.getTime()`).
    pub fn from_unix_millis(ms: i64) -> Timestamp {
        Timestamp {
            secs: ms.div_euclid(1000),
            nanos: (ms.rem_euclid(1000) as u32) * 1_000_000,
        }
    }

    /// Whole seconds since the Unix epoch (negative before it).
    pub fn unix_seconds(self) -> i64 {
        self.secs
    }

    /// Nanoseconds past [`Timestamp::unix_seconds`].
    pub fn subsec_nanos(self) -> u32 {
        self.nanos
    }

    /// Milliseconds since the Unix epoch, rounded down.
    pub fn unix_millis(self) -> i64 {
        self.secs * 1000 + i64::from(self.nanos / 1_000_000)
    }

    /// Reads `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, as the host and `Date.toJSON()` write.
    pub fn parse(text: &str) -> Option<Timestamp> {
        let (secs, nanos) = iso::parse(text)?;
        Some(Timestamp { secs, nanos })
    }
}

impl fmt::Display for Timestamp {
    /// `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, the fraction without trailing zeros.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&iso::format(self.secs, self.nanos))
    }
}

impl From<SystemTime> for Timestamp {
    fn from(time: SystemTime) -> Self {
        match time.duration_since(UNIX_EPOCH) {
            Ok(after) => Timestamp {
                secs: i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
                nanos: after.subsec_nanos(),
            },
            Err(before) => {
                let before = before.duration();
                let secs = -i64::try_from(before.as_secs()).unwrap_or(i64::MAX);
                match before.subsec_nanos() {
                    0 => Timestamp { secs, nanos: 0 },
                    n => Timestamp {
                        secs: secs - 1,
                        nanos: 1_000_000_000 - n,
                    },
                }
            }
        }
    }
}

impl From<Timestamp> for SystemTime {
    fn from(t: Timestamp) -> Self {
        let nanos = Duration::from_nanos(u64::from(t.nanos));
        if t.secs >= 0 {
            UNIX_EPOCH + Duration::from_secs(t.secs.unsigned_abs()) + nanos
        } else {
            UNIX_EPOCH - Duration::from_secs(t.secs.unsigned_abs()) + nanos
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("$date", &self.to_string())?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = deserializer.deserialize_any(MarkedText("$date"))?;
        Timestamp::parse(&text)
            .ok_or_else(|| de::Error::custom(format!("invalid ISO 8601 date-time '{text}'")))
    }
}

/// Reads a string, or the one-key marker object `{"<key>": "<string>"}`.
struct MarkedText(&'static str);

impl<'de> Visitor<'de> for MarkedText {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a string or {{\"{}\": string}}", self.0)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<String, A::Error> {
        let Some(key) = map.next_key::<String>()? else {
            return Err(de::Error::custom(format!("expected the key {}", self.0)));
        };
        if key != self.0 {
            return Err(de::Error::custom(format!(
                "expected the key {}, found {key}",
                self.0
            )));
        }
        let value: String = map.next_value()?;
        if map.next_key::<de::IgnoredAny>()?.is_some() {
            return Err(de::Error::custom(format!("{} takes one key", self.0)));
        }
        Ok(value)
    }
}

/// ISO 8601 in the form the host reads and writes (see `wit/hub.wit`).
mod iso {
    pub(super) fn parse(text: &str) -> Option<(i64, u32)> {
        let mut rest = text.as_bytes();
        let year = match rest.first()? {
            sign @ (b'+' | b'-') => {
                let digits = number(rest.get(1..7)?)?;
                rest = rest.get(7..)?;
                if *sign == b'-' { -digits } else { digits }
            }
            _ => {
                let digits = number(rest.get(..4)?)?;
                rest = rest.get(4..)?;
                digits
            }
        };
        let mut field = |sep: &[u8]| -> Option<i64> {
            let (head, tail) = rest.split_at_checked(sep.len())?;
            if head != sep && !(sep == b"T" && head == b"t") {
                return None;
            }
            let value = number(tail.get(..2)?)?;
            rest = tail.get(2..)?;
            Some(value)
        };
        let month = field(b"-")?;
        let day = field(b"-")?;
        let hour = field(b"T")?;
        let minute = field(b":")?;
        let second = field(b":")?;
        let mut nanos = 0u32;
        if let Some(fraction) = rest.strip_prefix(b".") {
            let digits = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
            if digits == 0 || digits > 9 {
                return None;
            }
            let value = u32::try_from(number(fraction.get(..digits)?)?).ok()?;
            nanos = value * 10u32.pow(9 - digits as u32);
            rest = fraction.get(digits..)?;
        }
        let offset = match rest {
            b"Z" | b"z" => 0,
            [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
                let hours = number(&[*h1, *h2])?;
                let minutes = number(&[*m1, *m2])?;
                if hours > 23 || minutes > 59 {
                    return None;
                }
                let offset = hours * 3600 + minutes * 60;
                if *sign == b'-' { -offset } else { offset }
            }
            _ => return None,
        };
        if !(1..=12).contains(&month)
            || day < 1
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return None;
        }
        let days = days_from_civil(year, month, day);
        Some((
            days * 86_400 + hour * 3600 + minute * 60 + second - offset,
            nanos,
        ))
    }

    pub(super) fn format(secs: i64, nanos: u32) -> String {
        let days = secs.div_euclid(86_400);
        let of_day = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        let mut out = if (0..=9999).contains(&year) {
            format!("{year:04}")
        } else {
            format!(
                "{}{:06}",
                if year < 0 { '-' } else { '+' },
                year.unsigned_abs()
            )
        };
        out.push_str(&format!(
            "-{month:02}-{day:02}T{:02}:{:02}:{:02}",
            of_day / 3600,
            of_day / 60 % 60,
            of_day % 60
        ));
        if nanos > 0 {
            let fraction = format!("{nanos:09}");
            out.push('.');
            out.push_str(fraction.trim_end_matches('0'));
        }
        out.push('Z');
        out
    }

    fn number(digits: &[u8]) -> Option<i64> {
        digits.iter().try_fold(0i64, |n, &b| {
            b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0'))
        })
    }

    fn days_in_month(year: i64, month: i64) -> i64 {
        match month {
            2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        }
    }

    fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
        let year = if month <= 2 { year - 1 } else { year };
        let era = year.div_euclid(400);
        let yoe = year.rem_euclid(400);
        let mp = if month > 2 { month - 3 } else { month + 9 };
        let doy = (153 * mp + 2) / 5 + day - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    fn civil_from_days(days: i64) -> (i64, u32, u32) {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        (yoe + era * 400 + i64::from(month <= 2), month, day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_reads_base64_or_the_marker_and_writes_the_marker() {
        let from_string: Binary = serde_json::from_str(r#""AAEC/w==""#).expect("base64");
        let from_marker: Binary =
            serde_json::from_str(r#"{"$binary":"AAEC/w=="}"#).expect("marker");
        assert_eq!(from_string, Binary(vec![0, 1, 2, 255]));
        assert_eq!(from_marker, from_string);
        assert_eq!(
            serde_json::to_string(&from_string).expect("json"),
            r#"{"$binary":"AAEC/w=="}"#
        );
        assert!(serde_json::from_str::<Binary>(r#""not base64!""#).is_err());
        assert!(serde_json::from_str::<Binary>(r#"{"$date":"AA=="}"#).is_err());
        assert!(serde_json::from_str::<Binary>("5").is_err());
    }

    #[test]
    fn timestamps_read_iso_strings_or_the_marker_and_write_utc() {
        let t: Timestamp = serde_json::from_str(r#""2024-01-02T05:04:05.120+02:00""#).expect("iso");
        assert_eq!(
            (t.unix_seconds(), t.subsec_nanos()),
            (1_704_164_645, 120_000_000)
        );
        assert_eq!(t.unix_millis(), 1_704_164_645_120);
        assert_eq!(
            serde_json::to_string(&t).expect("json"),
            r#"{"$date":"2024-01-02T03:04:05.12Z"}"#
        );
        let marked: Timestamp =
            serde_json::from_str(r#"{"$date":"2024-01-02T03:04:05.12Z"}"#).expect("marker");
        assert_eq!(marked, t);
        assert_eq!(
            Timestamp::from_unix_millis(-1).to_string(),
            "1969-12-31T23:59:59.999Z"
        );
        assert_eq!(
            Timestamp::from(SystemTime::from(Timestamp::from_unix_millis(-1))),
            Timestamp::from_unix_millis(-1)
        );
        for bad in [
            "2024-02-30T00:00:00Z",
            "2024-01-02T03:04:05",
            "2024-01-02",
            "yesterday",
        ] {
            assert!(Timestamp::parse(bad).is_none(), "{bad}");
        }
        assert_eq!(
            Timestamp::parse("+010000-01-01T00:00:00Z").map(|t| t.to_string()),
            Some("+010000-01-01T00:00:00Z".to_owned())
        );
    }
}
