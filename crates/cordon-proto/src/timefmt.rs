//! One time type for the wire, the CLI and the server: [`Timestamp`], on the `time` crate,
//! written in one format ([`WIRE_FORMAT`]: RFC 3339 in UTC with milliseconds) and read
//! from any RFC 3339 time. The database stores Unix milliseconds ([`Timestamp::unix_ms`]);
//! the CLI accepts durations like `2h` ([`parse_duration`]). The small parser is kept
//! rather than `humantime` because the accepted strings are a stored contract: automation
//! rules keep `expires_after`/`cooldown` as text in the database, read by every replica and
//! by older and newer servers alike, so the set must neither shrink (`humantime` refuses
//! the bare number of seconds, `90`, accepted today) nor grow (its weeks, months, years and
//! compound forms like `1h 30m` would be stored by a new server and refused by an old one).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

/// The one format Cordon writes times in: `2030-01-02T03:04:05.250Z` (RFC 3339, UTC,
/// milliseconds).
pub const WIRE_FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// A point in time, millisecond precision, shown in [`WIRE_FORMAT`]. Serialises as that
/// string; deserialises from any RFC 3339 time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    /// The current time (UTC), truncated to milliseconds.
    pub fn now() -> Timestamp {
        Timestamp::from_offset(OffsetDateTime::now_utc())
    }

    /// The time `ms` milliseconds after the Unix epoch; `None` outside years -9999..=9999.
    pub fn from_unix_ms(ms: i64) -> Option<Timestamp> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .ok()
            .map(Timestamp)
    }

    /// The time `ms` milliseconds after the Unix epoch, or for a value outside years
    /// -9999..=9999 the nearest end of that range (the database's columns are plain
    /// integers; nothing in range is changed).
    pub fn from_unix_ms_clamped(ms: i64) -> Timestamp {
        Timestamp::from_unix_ms(ms).unwrap_or(if ms < 0 {
            Timestamp(OffsetDateTime::new_utc(time::Date::MIN, time::Time::MIDNIGHT))
        } else {
            Timestamp(OffsetDateTime::new_utc(time::Date::MAX, time::Time::MAX))
        })
    }

    /// Milliseconds since the Unix epoch (what the database stores).
    pub fn unix_ms(self) -> i64 {
        // Years -9999..=9999 in ms fit an i64 by far.
        (self.0.unix_timestamp_nanos() / 1_000_000) as i64
    }

    /// Parses any RFC 3339 time (`Z` or an offset, any fraction).
    ///
    /// # Errors
    /// A message naming the input and showing the expected shape.
    pub fn parse(s: &str) -> Result<Timestamp, String> {
        OffsetDateTime::parse(s.trim(), &Rfc3339)
            .map(Timestamp::from_offset)
            .map_err(|e| format!("{s:?} is not an RFC 3339 time (e.g. 2030-01-02T03:04:05Z): {e}"))
    }

    /// The underlying `time` value (UTC).
    pub fn as_offset_date_time(self) -> OffsetDateTime {
        self.0
    }

    fn from_offset(t: OffsetDateTime) -> Timestamp {
        let t = t.to_offset(UtcOffset::UTC);
        let ms = t.millisecond();
        Timestamp(t.replace_millisecond(ms).unwrap_or(t))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.format(WIRE_FORMAT).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

impl FromStr for Timestamp {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Timestamp::parse(s)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Timestamp {
    /// A string in `date-time` format: what [`Timestamp`] writes and reads.
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some(
                "RFC 3339 time; written in UTC with milliseconds (`2030-01-02T03:04:05.250Z`), read with any offset",
            ))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Timestamp {}

/// Serde helpers for optional times in *request* bodies, where callers have always been
/// able to send `""` (or only spaces) for "none": such a value reads as `None`; any other
/// value must be an RFC 3339 time ([`Timestamp::parse`]'s message otherwise). Writes
/// `None` as `null`, like a plain `Option<Timestamp>`.
pub mod opt_empty_as_none {
    use super::Timestamp;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// See the [module](self).
    ///
    /// # Errors
    /// The serializer's error.
    pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        t.serialize(s)
    }

    /// See the [module](self).
    ///
    /// # Errors
    /// A value that is neither blank nor an RFC 3339 time.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) if s.trim().is_empty() => Ok(None),
            Some(s) => Timestamp::parse(&s).map(Some).map_err(serde::de::Error::custom),
        }
    }
}

/// Serde helpers for optional times that *agents* report about their host (a claim's
/// `since`): the time is informational, and a report must not be refused over it — an
/// agent whose claims file holds a time it cannot parse (an engine before the one time
/// format wrote `unknown` when formatting failed) sends that text, read here as `None`
/// ("since when: not known"), never as a different time.
pub mod opt_lenient {
    use super::Timestamp;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// See the [module](self).
    ///
    /// # Errors
    /// The serializer's error.
    pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        t.serialize(s)
    }

    /// See the [module](self).
    ///
    /// # Errors
    /// Only a value that is not a string or null.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        Ok(Option::<String>::deserialize(d)?.and_then(|s| Timestamp::parse(&s).ok()))
    }
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    Timestamp::now().unix_ms()
}

/// Unix milliseconds in [`WIRE_FORMAT`]; outside years -9999..=9999 the nearest
/// representable end of that range.
pub fn to_rfc3339(ms: i64) -> String {
    Timestamp::from_unix_ms_clamped(ms).to_string()
}

/// Parses an RFC 3339 timestamp into Unix milliseconds.
///
/// # Errors
/// As [`Timestamp::parse`].
pub fn parse_rfc3339(s: &str) -> Result<i64, String> {
    Timestamp::parse(s).map(Timestamp::unix_ms)
}

/// Parses a positive duration: a number with unit `s`, `m`, `h` or `d` (`90s`, `15m`,
/// `2h`, `7d`), or a bare number of seconds (`90`). Kept to these four units on purpose:
/// the same strings are accepted by the CLI, the API and the automation rules.
///
/// # Errors
/// A message naming the input, for any other shape, zero, or overflow.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    parse_duration_secs(s).map(|secs| Duration::from_secs(secs.unsigned_abs()))
}

/// [`parse_duration`] in seconds (at least 1).
///
/// # Errors
/// As [`parse_duration`].
pub fn parse_duration_secs(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 30m, 2h or 7d"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{s:?} is not a duration like 30m, 2h or 7d")),
    };
    n.checked_mul(mult)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("{s:?} is out of range: a duration must be above zero and below 292 billion years"))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn round_trip_and_durations() {
        let ms = parse_rfc3339("2030-01-02T03:04:05.250Z").unwrap();
        assert_eq!(to_rfc3339(ms), "2030-01-02T03:04:05.250Z");
        assert_eq!(parse_duration_secs("2h").unwrap(), 7200);
        assert_eq!(parse_duration_secs("90").unwrap(), 90);
        assert!(parse_duration_secs("2w").is_err());
        assert!(parse_duration_secs("0m").is_err());
    }

    /// Moved from the hand-written calendar code this module replaced.
    #[test]
    fn formats_epoch_and_leap_day() {
        assert_eq!(to_rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(to_rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
    }

    #[test]
    fn timestamp_is_written_in_one_format_whatever_offset_it_was_read_in() {
        let t: Timestamp = "2030-01-02T05:04:05.25+02:00".parse().unwrap();
        assert_eq!(t.to_string(), "2030-01-02T03:04:05.250Z");
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"2030-01-02T03:04:05.250Z\"");
        let back: Timestamp = serde_json::from_str("\"2030-01-02T03:04:05.250Z\"").unwrap();
        assert_eq!(back, t);
        assert!(serde_json::from_str::<Timestamp>("\"yesterday\"").is_err());
        // Sub-millisecond digits are dropped, not rounded into the next second.
        let t: Timestamp = "2030-01-02T03:04:05.999999Z".parse().unwrap();
        assert_eq!(t.to_string(), "2030-01-02T03:04:05.999Z");
    }

    #[test]
    fn durations_only_in_the_four_units() {
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration_secs("7d").unwrap(), 7 * 86_400);
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-5m").is_err());
        assert!(parse_duration("1h 30m").is_err());
    }

    /// The fault kind: a typed request time that refuses what callers could always send
    /// for "none" (`""`), or that lets a bad time through.
    #[test]
    fn blank_request_times_read_as_none_and_bad_ones_are_refused() {
        #[derive(serde::Deserialize)]
        struct Req {
            #[serde(default, with = "super::opt_empty_as_none")]
            at: Option<Timestamp>,
        }
        let read = |j: &str| serde_json::from_str::<Req>(j).map(|r| r.at.map(|t| t.to_string()));
        assert_eq!(read(r#"{"at": ""}"#).unwrap(), None);
        assert_eq!(read(r#"{"at": "  "}"#).unwrap(), None);
        assert_eq!(read(r#"{"at": null}"#).unwrap(), None);
        assert_eq!(read("{}").unwrap(), None);
        assert_eq!(
            read(r#"{"at": "2030-01-02T03:04:05Z"}"#).unwrap().as_deref(),
            Some("2030-01-02T03:04:05.000Z")
        );
        let err = read(r#"{"at": "tomorrow"}"#).unwrap_err().to_string();
        assert!(err.contains("\"tomorrow\" is not an RFC 3339 time"), "{err}");
    }

    /// The fault kind: an informational time in an agent's report that makes the server
    /// refuse the whole report (or read as some other time).
    #[test]
    fn an_agents_unreadable_claim_time_reads_as_not_known() {
        #[derive(serde::Deserialize)]
        struct Claim {
            #[serde(default, with = "super::opt_lenient")]
            since: Option<Timestamp>,
        }
        let read = |j: &str| serde_json::from_str::<Claim>(j).map(|c| c.since.map(|t| t.to_string()));
        assert_eq!(read(r#"{"since": "unknown"}"#).unwrap(), None);
        assert_eq!(read(r#"{"since": null}"#).unwrap(), None);
        assert_eq!(
            read(r#"{"since": "2030-01-01T00:00:05.123456789Z"}"#)
                .unwrap()
                .as_deref(),
            Some("2030-01-01T00:00:05.123Z")
        );
        assert!(read(r#"{"since": 5}"#).is_err(), "not a string at all is still refused");
    }
}
