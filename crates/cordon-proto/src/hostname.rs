//! The hostname rule: what a host may be enrolled as (issue 17, trial18 MED-1, trial19
//! MED-B and LOW-k). One definition, used by the server at enrollment (refused with 400)
//! and to flag hosts enrolled before the rule (`invalid_hostname`), and by the agent's
//! `enroll` before it asks.
//!
//! A hostname names one host among others, and Cordon lets events, the CLI and the
//! console address hosts by id, by hostname *or by address*, and shows twins as
//! `NAME (shortid)`. So a hostname must never read as any of the other three:
//!
//! - **Characters**: RFC 1123 §2.1 host names are labels of letters, digits and `-`
//!   separated by dots. Real endpoints report more: `_` (Windows NetBIOS names and many
//!   inventories carry it, and Microsoft DNS accepts it) and letters of other scripts
//!   (IDN U-labels, Windows computer names typed in Japanese or Cyrillic). Those are
//!   accepted: letters (`char::is_alphabetic`) and combining marks of any script, ASCII
//!   digits, `-`, `_` and `.`. Everything else NetBIOS allows (space, `!@#$%^&'(){}~`) is
//!   refused — Windows itself warns that such names are not DNS names, and they are what
//!   could spell the console's own `web1 (820cb233)` — and so are digits of other
//!   scripts (full-width `１`, Arabic-Indic), which read as, or are taken for, ASCII ones.
//!   [`char::is_alphabetic`] is std's Unicode `Alphabetic` property; marks come from
//!   `unicode-properties` (the general category), since std has no table for them.
//! - **Dots**: no empty label (`a..b`, a leading dot); one trailing dot (`host1.`, the
//!   fully qualified form) is accepted. A label does not start or end with `-` (RFC 952,
//!   RFC 1123), so no hostname reads as a command-line option.
//! - **Not an address**: nothing any IP parser takes for an address — Rust's
//!   [`std::net::IpAddr`] syntax, IPv6 in brackets or with a zone (`fe80::1%eth0`), and
//!   every inet_aton(3) spelling (`0x0a.9.9.9`, `010.9.9.9`, `10.9.2313`, `168364297`) —
//!   and no name whose last label is a number (WHATWG URL host parsing, "ends in a
//!   number": browsers and URL libraries parse `host.123` as an IPv4 address; RFC 1123
//!   §2.1 already notes that the highest-level label of a real name is alphabetic, and
//!   Windows refuses all-digit computer names). Also a dotted quad of digits and the
//!   letters `O`, `o`, `l`, `I` (`1O.9.9.9`), which reads as one.
//! - **Not a host id**: no UUID (hyphenated or 32 hex digits, any case) and no start of
//!   one at least 8 characters long (`820cb233`, `98828b7e-3c72`): the console, Slack
//!   texts and `cordon hosts` show short ids of 8 hex digits next to names, and the audit
//!   search takes id prefixes of 8 characters or more.
//!
//! Names are checked as IDNA (UTS #46) maps them: full-width ASCII forms (`ｗｅｂ１`,
//! U+FF01-U+FF5E) as the ASCII they read as and the ideographic full stops (U+3002,
//! U+FF61) as `.`, so `ｗｅｂ１。example` passes, `８２０ｃｂ２３３` is an id, `１０.９.９.９` an
//! address and `web1（x）` has parentheses. Look-alikes in other scripts
//! (Cyrillic `е` in a hex string) are the server's identity key's business
//! (`cordon_server_core::service::validate`), which calls this on the skeleton too.
//!
//! Pure: no I/O, no allocation beyond the returned error.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why a name may not be a hostname ([`check`]). Each message says what the name reads as
/// and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostnameProblem {
    /// Empty, or only dots.
    #[error("a hostname must not be empty")]
    Empty,
    /// A character outside the rule (1-based position in characters).
    #[error(
        "{what} {c:?} (U+{code:04X} at character {at}) is not allowed: hostnames are letters, ASCII digits, \
         '-', '_' and '.' (RFC 1123 labels, plus '_' and letters of any script), so that no name can read as \
         another host's or as the console's \"NAME (shortid)\"",
        code = u32::from(*c)
    )]
    Character {
        /// The character.
        c: char,
        /// Its position, 1-based, in characters.
        at: usize,
        /// What kind of character it is, in words.
        what: &'static str,
    },
    /// A dot at the start, or two dots in a row.
    #[error("a hostname is labels separated by single dots (an empty label: a leading dot or '..')")]
    EmptyLabel,
    /// A label starting or ending with `-`.
    #[error("label {0:?} starts or ends with '-' (RFC 1123): it could read as a command-line option")]
    Hyphen(String),
    /// The name is an IP address in some spelling.
    #[error(
        "it is the IP address {0}: a hostname is never an address (events and commands name hosts by \
         address too, so the host would take the address of another); enroll with the host's real name"
    )]
    Address(IpAddr),
    /// The name looks like a dotted-quad address (digits and letters that read as digits).
    #[error(
        "it reads as the IP address {0} (letters O, o, l, I among the digits): a hostname never looks like an \
         address; enroll with the host's real name"
    )]
    AddressLookAlike(Ipv4Addr),
    /// The last label is a number.
    #[error(
        "its last label {0:?} is a number: URL parsers read such a name as an IPv4 address (WHATWG URL \
         'ends in a number'; RFC 1123: the top-level label is alphabetic)"
    )]
    NumericLastLabel(String),
    /// The name reads as a host id or the start of one.
    #[error(
        "it reads as a host id (a UUID, or its first 8 or more characters as short ids and id searches show \
         them): a hostname never looks like an id; enroll with the host's real name"
    )]
    HostId,
}

impl HostnameProblem {
    /// The kind of problem as a short phrase for flags and tables: `address`,
    /// `address look-alike`, `numeric last label`, `host id`, `character`, `dots`,
    /// `hyphen`, `empty`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::Character { .. } => "character",
            Self::EmptyLabel => "dots",
            Self::Hyphen(_) => "hyphen",
            Self::Address(_) => "address",
            Self::AddressLookAlike(_) => "address look-alike",
            Self::NumericLastLabel(_) => "numeric last label",
            Self::HostId => "host id",
        }
    }
}

/// `c` as IDNA (UTS #46) maps it: a full-width form of an ASCII character (U+FF01-U+FF5E)
/// as that character, the ideographic and half-width ideographic full stops (U+3002,
/// U+FF61) as `.`; otherwise itself.
fn ascii_of_fullwidth(c: char) -> char {
    match u32::from(c) {
        0xFF01..=0xFF5E => char::from_u32(u32::from(c) - 0xFEE0).unwrap_or(c),
        0x3002 | 0xFF61 => '.',
        _ => c,
    }
}

/// Checks `name` against the hostname rule (module documentation), in this order: the
/// address and id readings (the most specific message), then characters, then dots and
/// hyphens. `name` is checked as given (the server trims plain spaces first).
///
/// # Errors
/// The first [`HostnameProblem`] found.
pub fn check(name: &str) -> Result<(), HostnameProblem> {
    if let Some(ip) = as_address(name) {
        return Err(HostnameProblem::Address(ip));
    }
    if let Some(ip) = as_address_look_alike(name) {
        return Err(HostnameProblem::AddressLookAlike(ip));
    }
    if looks_like_host_id(name) {
        return Err(HostnameProblem::HostId);
    }
    // Checked as IDNA maps it (`ｗｅｂ１。example` is `web1.example`); refusals name the
    // character as given.
    let mapped: String = name.chars().map(ascii_of_fullwidth).collect();
    for (i, (m, c)) in mapped.chars().zip(name.chars()).enumerate() {
        if let Some(what) = refused_character(m) {
            return Err(HostnameProblem::Character { c, at: i + 1, what });
        }
    }
    let body = mapped.strip_suffix('.').unwrap_or(&mapped);
    if body.is_empty() {
        return Err(HostnameProblem::Empty);
    }
    for label in body.split('.') {
        if label.is_empty() {
            return Err(HostnameProblem::EmptyLabel);
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(HostnameProblem::Hyphen(label.to_string()));
        }
    }
    if let Some(last) = body.rsplit('.').next() {
        if is_number(last) {
            return Err(HostnameProblem::NumericLastLabel(last.to_string()));
        }
    }
    Ok(())
}

/// What `c` is, in words, when the rule refuses it.
fn refused_character(c: char) -> Option<&'static str> {
    use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};
    if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
        return None;
    }
    if c == ' ' {
        return Some("a space");
    }
    if c.is_ascii() {
        return Some("the punctuation mark");
    }
    if c.is_numeric() {
        return Some("a digit of another script or a number form");
    }
    if c.is_alphabetic() || c.general_category_group() == GeneralCategoryGroup::Mark {
        return None;
    }
    Some("the character")
}

/// A number as inet_aton(3) and the WHATWG URL parser read one part of an IPv4 address:
/// decimal digits, or `0x`/`0X` and hex digits (`0x` alone included).
fn is_number(part: &str) -> bool {
    if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
        return hex.bytes().all(|b| b.is_ascii_hexdigit());
    }
    !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit())
}

/// The value of one inet_aton(3) part: `0x` hex, `0` octal, else decimal.
fn inet_aton_part(part: &str) -> Option<u64> {
    if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
        if hex.is_empty() {
            return Some(0);
        }
        return u64::from_str_radix(hex, 16).ok();
    }
    if part.len() > 1 && part.starts_with('0') {
        return u64::from_str_radix(&part[1..], 8).ok();
    }
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

/// The IPv4 address inet_aton(3) reads `s` as: 1 to 4 parts separated by dots, the
/// last filling the remaining bytes (`10.9.2313`, `168364297`). `None` when it is none.
fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let values = parts.iter().map(|p| inet_aton_part(p)).collect::<Option<Vec<u64>>>()?;
    let (last, head) = values.split_last()?;
    if head.iter().any(|v| *v > 255) || *last >= 1u64 << (8 * (5 - values.len())) {
        return None;
    }
    let mut n: u64 = 0;
    for (i, v) in head.iter().enumerate() {
        n |= v << (24 - 8 * i);
    }
    n |= last;
    u32::try_from(n).ok().map(Ipv4Addr::from)
}

/// The address `name` is, in any spelling an IP parser accepts: [`IpAddr`]'s syntax,
/// an IPv6 address in brackets and/or with a `%zone`, any inet_aton(3) form; one
/// trailing dot and full-width ASCII forms allowed. `None` for a name that is no address.
pub fn as_address(name: &str) -> Option<IpAddr> {
    let ascii: String = name.chars().map(ascii_of_fullwidth).collect();
    let t = ascii.strip_suffix('.').unwrap_or(&ascii);
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Some(ip);
    }
    let unbracketed = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')).unwrap_or(t);
    let unzoned = unbracketed.split_once('%').map_or(unbracketed, |(a, _)| a);
    if let Ok(ip) = unzoned.parse::<Ipv6Addr>() {
        return Some(IpAddr::V6(ip));
    }
    if let Ok(ip) = unzoned.parse::<Ipv4Addr>() {
        return Some(IpAddr::V4(ip));
    }
    inet_aton(t).map(IpAddr::V4)
}

/// The dotted-quad address `name` reads as when the letters `O`/`o` stand for `0` and
/// `l`/`I` for `1` (`1O.9.9.9`), if it has four dot-separated parts and is not itself an
/// address.
fn as_address_look_alike(name: &str) -> Option<Ipv4Addr> {
    let ascii: String = name.chars().map(ascii_of_fullwidth).collect();
    let t = ascii.strip_suffix('.').unwrap_or(&ascii);
    if t.split('.').count() != 4 || !t.contains(['O', 'o', 'l', 'I']) {
        return None;
    }
    let digits: String = t
        .chars()
        .map(|c| match c {
            'O' | 'o' => '0',
            'l' | 'I' => '1',
            c => c,
        })
        .collect();
    inet_aton(&digits)
}

/// The hyphenated form of a host id (a UUID): `x` a hex digit.
const ID_FORM: &str = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";

/// Whether `name` reads as a host id or its start: a UUID in hyphenated form or as 32 hex
/// digits (any case), or the first 8 or more characters of the hyphenated form
/// (`820cb233`, `98828b7e-3c72`) — what short ids show and id searches take. Full-width
/// forms read as ASCII; one trailing dot ignored.
pub fn looks_like_host_id(name: &str) -> bool {
    let ascii: String = name.chars().map(ascii_of_fullwidth).collect();
    let t = ascii.strip_suffix('.').unwrap_or(&ascii);
    if t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return true;
    }
    t.len() >= 8
        && t.len() <= ID_FORM.len()
        && t.bytes().zip(ID_FORM.bytes()).all(|(b, f)| match f {
            b'x' => b.is_ascii_hexdigit(),
            _ => b == f,
        })
}

/// Whether `name` could be the short id (first 8 characters of the id) or the start of
/// the id `id`, compared case-insensitively: the host named so impersonates that host.
pub fn names_id(name: &str, id: &str) -> bool {
    let ascii: String = name
        .chars()
        .map(ascii_of_fullwidth)
        .collect::<String>()
        .to_ascii_lowercase();
    let t = ascii.strip_suffix('.').unwrap_or(&ascii);
    looks_like_host_id(t) && (id.to_ascii_lowercase().starts_with(t) || id.replace('-', "").to_ascii_lowercase() == t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hostnames_real_endpoints_report_pass() {
        for ok in [
            "web1",
            "web1.corp.example",
            "web1.corp.example.",
            "DESKTOP-7H2K9QX",
            "db_primary",
            "db-primary-01.eu-west-1.prod.internal.example.com",
            "müller-pc",
            "田中のPC",
            "сервер1",
            "दिल्ली-पीसी",
            "deadbee",
            "cafe-1234-host",
            "x1",
            "host.lol",
            "lol",
            "web.0x1g",
            "a",
            "\u{FF48}\u{FF4F}\u{FF53}\u{FF54}\u{FF11}",
            "web1\u{3002}example",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    /// The fault kind: a hostname that is another host's address in any spelling an IP
    /// parser takes (trial18 MED-1).
    #[test]
    fn hostnames_that_are_addresses_in_any_spelling_are_refused() {
        let v4 = |s: &str| IpAddr::V4(s.parse().unwrap());
        for (name, ip) in [
            ("10.9.9.9", v4("10.9.9.9")),
            ("10.9.9.9.", v4("10.9.9.9")),
            ("010.9.9.9", v4("8.9.9.9")),
            ("0x0a.9.9.9", v4("10.9.9.9")),
            ("0X0A.0x9.9.9", v4("10.9.9.9")),
            ("10.9.2313", v4("10.9.9.9")),
            ("10.592137", v4("10.9.9.9")),
            ("168364297", v4("10.9.9.9")),
            ("0xa090909", v4("10.9.9.9")),
            ("１０.９.９.９", v4("10.9.9.9")),
            ("2001:db8::5", "2001:db8::5".parse().unwrap()),
            ("2001:DB8::5", "2001:db8::5".parse().unwrap()),
            ("[2001:db8::5]", "2001:db8::5".parse().unwrap()),
            ("fe80::1%eth0", "fe80::1".parse().unwrap()),
            ("[fe80::1%25eth0]", "fe80::1".parse().unwrap()),
            ("::ffff:10.9.9.9", "::ffff:10.9.9.9".parse().unwrap()),
            ("2001:db8:0:0:0:0:0:5", "2001:db8::5".parse().unwrap()),
        ] {
            assert_eq!(check(name), Err(HostnameProblem::Address(ip)), "{name}");
        }
        assert_eq!(
            check("1O.9.9.9"),
            Err(HostnameProblem::AddressLookAlike("10.9.9.9".parse().unwrap()))
        );
        assert_eq!(
            check("l0.9.9.O"),
            Err(HostnameProblem::AddressLookAlike("10.9.9.0".parse().unwrap()))
        );
        for numeric in ["host.123", "web1.0x10", "999.999.999.999", "1.2.3.4.5", "08.1.1.1"] {
            assert!(
                matches!(check(numeric), Err(HostnameProblem::NumericLastLabel(_))),
                "{numeric}: {:?}",
                check(numeric)
            );
        }
    }

    /// The fault kind: a hostname that reads as a host id or a short id (trial18 LOW,
    /// trial19 LOW-k).
    #[test]
    fn hostnames_that_read_as_host_ids_are_refused() {
        for name in [
            "98828b7e-3c72-4a5e-9f1d-0123456789ab",
            "9DCEEFB5-3C72-4A5E-9F1D-0123456789AB",
            "98828b7e3c724a5e9f1d0123456789ab",
            "820cb233",
            "820CB233",
            "deadbeef",
            "98828b7e-3c72",
            "98828b7e-",
            "８２０ｃｂ２３３",
        ] {
            assert_eq!(check(name), Err(HostnameProblem::HostId), "{name}");
        }
        assert!(names_id("820CB233", "820cb233-1111-4111-8111-111111111111"));
        assert!(names_id(
            "820CB233111141118111111111111111",
            "820cb233-1111-4111-8111-111111111111"
        ));
        assert!(!names_id("820cb234", "820cb233-1111-4111-8111-111111111111"));
    }

    /// The fault kind: a hostname that spells the console's twin naming `NAME (shortid)`
    /// or carries other punctuation (trial19 MED-B).
    #[test]
    fn hostnames_with_spaces_parentheses_or_punctuation_are_refused() {
        for (name, c) in [
            ("web1 (820cb233)", ' '),
            ("web1(820cb233)", '('),
            ("web1[1]", '['),
            ("web1!", '!'),
            ("a:b", ':'),
            ("web1/2", '/'),
            ("web1\u{FF08}x", '\u{FF08}'),
            ("web\u{2010}1", '\u{2010}'),
            ("web\u{0661}", '\u{0661}'),
        ] {
            assert!(
                matches!(check(name), Err(HostnameProblem::Character { c: got, .. }) if got == c),
                "{name}: {:?}",
                check(name)
            );
        }
        assert_eq!(check("a..b"), Err(HostnameProblem::EmptyLabel));
        assert_eq!(check(".a"), Err(HostnameProblem::EmptyLabel));
        assert_eq!(check("-rf"), Err(HostnameProblem::Hyphen("-rf".into())));
        assert_eq!(check("web-.corp"), Err(HostnameProblem::Hyphen("web-".into())));
        assert_eq!(check("."), Err(HostnameProblem::Empty));
        let msg = check("web1 (820cb233)").unwrap_err().to_string();
        assert!(msg.contains("U+0020") && msg.contains("NAME (shortid)"), "{msg}");
    }

    proptest! {
        /// Every IPv4 and IPv6 address, written as Rust writes it, in brackets, or (v4) as
        /// one number, is refused as that address.
        #[test]
        fn every_address_spelling_is_refused(a in any::<u32>(), b in any::<u128>()) {
            let v4 = Ipv4Addr::from(a);
            let v6 = Ipv6Addr::from(b);
            prop_assert_eq!(check(&v4.to_string()), Err(HostnameProblem::Address(IpAddr::V4(v4))));
            prop_assert_eq!(check(&a.to_string()), Err(HostnameProblem::Address(IpAddr::V4(v4))));
            prop_assert_eq!(check(&format!("{a:#x}")), Err(HostnameProblem::Address(IpAddr::V4(v4))));
            let v6_parsed = v6.to_string().parse::<IpAddr>().unwrap();
            prop_assert_eq!(check(&v6.to_string()), Err(HostnameProblem::Address(v6_parsed)));
            prop_assert_eq!(check(&format!("[{v6}]")), Err(HostnameProblem::Address(IpAddr::V6(v6))));
        }

        /// Every hyphenated UUID, its simple form, and every prefix of 8 or more characters
        /// is refused as a host id, in either case.
        #[test]
        fn every_id_and_id_prefix_is_refused(b in any::<u128>(), cut in 8usize..=36, upper in any::<bool>()) {
            let h = format!("{b:032x}");
            let id = format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..]);
            let case = |s: &str| if upper { s.to_ascii_uppercase() } else { s.to_string() };
            prop_assert!(check(&case(&id[..cut])).is_err());
            prop_assert!(looks_like_host_id(&case(&id[..cut])));
            prop_assert!(names_id(&case(&id[..cut]), &id));
            prop_assert!(looks_like_host_id(&case(&h)));
        }

        /// Names of LDH labels whose last label starts with a letter and is not hex-only
        /// of 8+ characters pass.
        #[test]
        fn ldh_names_with_an_alphabetic_top_label_pass(
            labels in proptest::collection::vec("[a-z0-9]([a-z0-9_-]{0,10}[a-z0-9])?", 0..4),
            top in "[g-z][a-z0-9]{0,6}",
        ) {
            let mut name = labels.join(".");
            if !name.is_empty() { name.push('.'); }
            name.push_str(&top);
            prop_assume!(!looks_like_host_id(&name) && as_address_look_alike(&name).is_none());
            prop_assert_eq!(check(&name), Ok(()), "{}", name);
        }
    }
}
