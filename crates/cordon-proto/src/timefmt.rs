//! One time type for the wire, the CLI and the server: [`Timestamp`], on the `time` crate,
//! written in one format ([`WIRE_FORMAT`]: RFC 3339 in UTC with milliseconds) and read
//! from any RFC 3339 time. The database stores Unix milliseconds ([`Timestamp::unix_ms`]);
//! and one duration type, [`Span`] (`90s`, `15m`, `2h`, `7d`), read and written by one
//! parser and printer wherever a duration is given: CLI, REST, automation rules, console.

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
    /// [`TimeParseError`], naming the input and showing the expected shape.
    pub fn parse(s: &str) -> Result<Timestamp, TimeParseError> {
        OffsetDateTime::parse(s.trim(), &Rfc3339)
            .map(Timestamp::from_offset)
            .map_err(|reason| TimeParseError {
                input: s.to_string(),
                reason,
            })
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

/// Why a text is not an RFC 3339 time ([`Timestamp::parse`]; review14 LOW-6: the one time
/// type's error was a `String` while [`SpanError`] was typed). `Display`: `"TEXT" is not an
/// RFC 3339 time (e.g. 2030-01-02T03:04:05Z): WHAT` — the `time` crate's reason is part of
/// the sentence (not a separate `source`, so a cause chain does not say it twice).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not an RFC 3339 time (e.g. 2030-01-02T03:04:05Z): {reason}")]
pub struct TimeParseError {
    /// The text as given.
    pub input: String,
    /// What the `time` crate found wrong with it.
    pub reason: time::error::Parse,
}

impl FromStr for Timestamp {
    type Err = TimeParseError;
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
pub fn parse_rfc3339(s: &str) -> Result<i64, TimeParseError> {
    Timestamp::parse(s).map(Timestamp::unix_ms)
}

/// A positive length of time in whole seconds: the one duration type of Cordon. Every
/// duration a person or a script writes — the CLI's `--expires`, `--since`, `--ttl`,
/// `--expiry-interval`, `--audit-retention`, `rules put --expires-after/--cooldown`,
/// `rules settings --window/--cooldown` (their old names `--window-secs/--cooldown-secs`
/// still parse: a bare number is seconds), a rule's `expires_after` and `cooldown`, the
/// console's expiry and `since=` filter — is read by [`Span::parse`] (clap parses the
/// options into `Span`s, so a typo is a usage error naming the option) and written by its
/// `Display`, so all of them accept the same inputs:
///
/// * a whole number followed by one unit: `s` (seconds), `m` (minutes), `h` (hours) or
///   `d` (days) — `90s`, `15m`, `2h`, `7d`;
/// * a bare whole number, read as seconds (`90`) — stored rules hold such text; only
///   `--audit-retention`, which deletes records, wants the unit written
///   ([`Span::parse_with_unit`]);
/// * surrounding white space is ignored; nothing else is accepted (no `2w`, no `1h 30m`,
///   no fractions, no sign, no zero).
///
/// `Display` writes the largest unit that divides the span exactly (`5400` seconds is
/// `90m`, `86400` is `1d`), which [`Span::parse`] reads back as the same span; [`Span::words`]
/// says it for sentences (`90 minutes`). Serialises as that text; deserialises with
/// [`Span::parse`].
///
/// The small parser is kept rather than `humantime` because the accepted strings are a
/// stored contract: automation rules keep `expires_after`/`cooldown` as text in the
/// database, read by every replica and by older and newer servers alike, so the set must
/// neither shrink (`humantime` refuses the bare number of seconds accepted so far) nor grow
/// (its weeks, months, years and compound forms like `1h 30m` would be stored by a new
/// server and refused by an old one).
///
/// Not spans, on purpose (issue 13): timing knobs that need fractions of a second — the
/// agent configuration's `*_secs` (tests run `check_interval_secs = 0.2`), `--lock-timeout`
/// and `--verify-timeout` (at least 0.1 s) — are decimal seconds, named `…_secs`/`SECS`;
/// a whole-second span cannot say 0.5 s and widening [`Span::parse`] to fractions would
/// grow the stored rules' contract above. Wire fields kept in numbers for the agents and
/// clients already deployed: the guardrails' `cap_window_secs`/`cooldown_secs` (seconds)
/// and the agent's `heartbeat_ms`; the CLI converts from a `Span` ([`Span::secs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span(u64);

/// Why a text is not a [`Span`]. Its `Display` names the text and shows what is accepted;
/// [`SpanError::field`] puts the name of the field or option in front.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpanError {
    /// Not a number with one of the four units (`2w`, `1h 30m`, `-5m`, ``).
    #[error("{0:?} is not a duration like 30m, 2h or 7d (a whole number and s, m, h or d)")]
    NotADuration(String),
    /// Zero, or more seconds than an `i64` holds.
    #[error("{0:?} is out of range: a duration must be above zero and below 292 billion years")]
    OutOfRange(String),
    /// A bare number where the unit must be written ([`Span::parse_with_unit`]).
    #[error("{0:?} has no unit: write {0}d for days (or {0}h, {0}m, {0}s)")]
    NoUnit(String),
    /// One of the above for a named field or option.
    #[error("{field}: {source}")]
    Field {
        /// The field or option (`expires_after`, `--expires`).
        field: String,
        /// What is wrong with its value.
        #[source]
        source: Box<SpanError>,
    },
}

impl SpanError {
    /// The same error for field or option `field`: `expires_after: "2w" is not a duration …`.
    pub fn field(self, field: &str) -> SpanError {
        SpanError::Field {
            field: field.to_string(),
            source: Box::new(self),
        }
    }
}

/// The units [`Span`] reads and writes, largest first: (suffix, seconds, word).
const SPAN_UNITS: [(&str, u64, &str); 4] = [
    ("d", 86_400, "day"),
    ("h", 3_600, "hour"),
    ("m", 60, "minute"),
    ("s", 1, "second"),
];

impl Span {
    /// The longest span, in seconds (what an `i64` of seconds holds).
    pub const MAX_SECS: u64 = i64::MAX as u64;

    /// A span of `secs` seconds; `None` for zero or above [`Span::MAX_SECS`].
    pub fn from_secs(secs: u64) -> Option<Span> {
        (1..=Span::MAX_SECS).contains(&secs).then_some(Span(secs))
    }

    /// Reads a span (the accepted inputs are listed on [`Span`]). Pure.
    ///
    /// # Errors
    /// [`SpanError::NotADuration`] for any other shape, [`SpanError::OutOfRange`] for zero
    /// or overflow.
    pub fn parse(s: &str) -> Result<Span, SpanError> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let per = match unit {
            "" | "s" => 1,
            "m" => 60,
            "h" => 3_600,
            "d" => 86_400,
            _ => return Err(SpanError::NotADuration(t.to_string())),
        };
        if num.is_empty() {
            return Err(SpanError::NotADuration(t.to_string()));
        }
        // Digits only: a failed parse is an overflow.
        let n: u64 = num.parse().map_err(|_| SpanError::OutOfRange(t.to_string()))?;
        n.checked_mul(per)
            .and_then(Span::from_secs)
            .ok_or_else(|| SpanError::OutOfRange(t.to_string()))
    }

    /// [`Span::parse`] for an option that deletes or discards by age: a bare number is
    /// refused ([`SpanError::NoUnit`]) — `--audit-retention 365` read as seconds archived
    /// and deleted every record older than six minutes (trial25 F7).
    ///
    /// # Errors
    /// As [`Span::parse`], and [`SpanError::NoUnit`].
    pub fn parse_with_unit(s: &str) -> Result<Span, SpanError> {
        let t = s.trim();
        if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SpanError::NoUnit(t.to_string()));
        }
        Span::parse(t)
    }

    /// The span in seconds (at least 1; fits an `i64` by construction).
    pub fn secs(self) -> i64 {
        i64::try_from(self.0).unwrap_or(i64::MAX)
    }

    /// The span in milliseconds, saturating at `i64::MAX` (Cordon's times are Unix ms).
    pub fn millis(self) -> i64 {
        self.secs().saturating_mul(1000)
    }

    /// The span as a `std` duration.
    pub fn as_duration(self) -> Duration {
        Duration::from_secs(self.0)
    }

    /// The span for sentences, in the largest unit that divides it exactly: `365 days`,
    /// `1 day`, `36 hours`, `90 minutes`, `30 seconds`. Pure.
    pub fn words(self) -> String {
        let (n, _, word) = self.largest_unit();
        format!("{n} {word}{}", if n == 1 { "" } else { "s" })
    }

    fn largest_unit(self) -> (u64, &'static str, &'static str) {
        SPAN_UNITS
            .iter()
            .find(|(_, per, _)| self.0.is_multiple_of(*per))
            .map_or((self.0, "s", "second"), |(suffix, per, word)| {
                (self.0 / per, suffix, word)
            })
    }
}

impl fmt::Display for Span {
    /// `7d`, `36h`, `90m`, `45s`: the largest unit that divides the span exactly, so
    /// [`Span::parse`] reads it back as the same span.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (n, suffix, _) = self.largest_unit();
        write!(f, "{n}{suffix}")
    }
}

impl FromStr for Span {
    type Err = SpanError;
    fn from_str(s: &str) -> Result<Span, SpanError> {
        Span::parse(s)
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        let s = String::deserialize(d)?;
        Span::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn round_trip_and_durations() {
        let ms = parse_rfc3339("2030-01-02T03:04:05.250Z").unwrap();
        assert_eq!(to_rfc3339(ms), "2030-01-02T03:04:05.250Z");
        assert_eq!(Span::parse("2h").unwrap().secs(), 7200);
        assert_eq!(Span::parse("90").unwrap().secs(), 90);
        assert!(Span::parse("2w").is_err());
        assert!(Span::parse("0m").is_err());
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
        assert_eq!(Span::parse("15m").unwrap().as_duration(), Duration::from_secs(900));
        assert_eq!(Span::parse("7d").unwrap().secs(), 7 * 86_400);
        assert!(Span::parse("").is_err());
        assert!(Span::parse("-5m").is_err());
        assert!(Span::parse("1h 30m").is_err());
    }

    /// Issue 13: one duration type. The accepted inputs (the list on [`Span`]) and the
    /// refusals, each naming the text (and the field, when given).
    #[test]
    fn spans_accept_one_set_of_inputs_and_name_what_is_wrong() {
        for (text, secs) in [
            ("90", 90),
            ("90s", 90),
            ("15m", 900),
            ("2h", 7_200),
            ("7d", 604_800),
            (" 2h ", 7_200),
            ("007d", 604_800),
        ] {
            assert_eq!(Span::parse(text).map(Span::secs), Ok(secs), "{text:?}");
        }
        for text in [
            "", " ", "2w", "1h 30m", "1h30m", "-5m", "+5m", "1.5h", "2H", "h", "2 h", "５m", "3x",
        ] {
            let e = Span::parse(text).unwrap_err();
            assert!(matches!(e, SpanError::NotADuration(_)), "{text:?}: {e:?}");
            assert!(
                e.to_string().contains("is not a duration like 30m, 2h or 7d"),
                "{text:?}: {e}"
            );
        }
        for text in ["0", "0m", "00d", "99999999999999999999", "106751991167301d"] {
            let e = Span::parse(text).unwrap_err();
            assert!(matches!(e, SpanError::OutOfRange(_)), "{text:?}: {e:?}");
            assert!(e.to_string().contains("is out of range"), "{text:?}: {e}");
        }
        assert_eq!(Span::parse(&i64::MAX.to_string()).map(Span::secs), Ok(i64::MAX));
        let e = Span::parse("2w").unwrap_err().field("expires_after");
        assert_eq!(
            e.to_string(),
            "expires_after: \"2w\" is not a duration like 30m, 2h or 7d (a whole number and s, m, h or d)"
        );
        assert!(std::error::Error::source(&e).is_some(), "the cause is kept");
        // Only where a bare number is refused: the unit written.
        let e = Span::parse_with_unit("365").unwrap_err();
        assert_eq!(e, SpanError::NoUnit("365".into()));
        assert!(e.to_string().contains("write 365d for days"), "{e}");
        assert_eq!(Span::parse_with_unit("365d").map(Span::secs), Ok(365 * 86_400));
    }

    #[test]
    fn spans_are_written_in_their_largest_exact_unit() {
        let show = |secs: u64| Span::from_secs(secs).map(|s| (s.to_string(), s.words()));
        assert_eq!(show(365 * 86_400), Some(("365d".into(), "365 days".into())));
        assert_eq!(show(86_400), Some(("1d".into(), "1 day".into())));
        assert_eq!(show(36 * 3_600), Some(("36h".into(), "36 hours".into())));
        assert_eq!(show(5_400), Some(("90m".into(), "90 minutes".into())));
        assert_eq!(show(61), Some(("61s".into(), "61 seconds".into())));
        assert_eq!(show(1), Some(("1s".into(), "1 second".into())));
        assert_eq!(show(0), None);
        assert_eq!(Span::from_secs(Span::MAX_SECS + 1), None);
        let s: Span = serde_json::from_str("\"4h\"").unwrap();
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"4h\"");
        let e = serde_json::from_str::<Span>("\"2w\"").unwrap_err().to_string();
        assert!(e.contains("\"2w\" is not a duration"), "{e}");
    }

    proptest::proptest! {
        /// What `Display` writes, `parse` reads back as the same span, for every span.
        #[test]
        fn every_span_round_trips(secs in 1..=Span::MAX_SECS) {
            let span = Span::from_secs(secs).unwrap();
            proptest::prop_assert_eq!(Span::parse(&span.to_string()), Ok(span));
            let json = serde_json::to_string(&span).unwrap();
            proptest::prop_assert_eq!(serde_json::from_str::<Span>(&json).unwrap(), span);
        }

        /// A number with any of the four units is that many units; the same number with
        /// any other suffix is refused.
        #[test]
        fn numbers_with_units_read_as_written(n in 1u64..10_000_000_000, unit in 0usize..5, other in "[a-zA-Z]{1,2}") {
            let (suffix, per) = [("", 1), ("s", 1), ("m", 60), ("h", 3_600), ("d", 86_400)][unit];
            proptest::prop_assert_eq!(Span::parse(&format!("{n}{suffix}")).map(Span::secs), Ok((n * per) as i64));
            if !["s", "m", "h", "d"].contains(&other.as_str()) {
                let text = format!("{n}{other}");
                proptest::prop_assert!(Span::parse(&text).is_err(), "{} was read", text);
            }
        }

        /// Any text: never a panic, and what is read is written back as the same span.
        #[test]
        fn any_text_reads_or_is_refused(text in "\\PC{0,12}") {
            if let Ok(span) = Span::parse(&text) {
                proptest::prop_assert_eq!(Span::parse(&span.to_string()), Ok(span));
            }
        }
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
