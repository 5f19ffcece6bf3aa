//! Input checks done before anything is written: a request that fails here changes nothing.

#![deny(missing_docs)]

use cordon_policy::AllowSpec;
use cordon_proto::{ActionRequest, MAX_MESSAGE_CHARS};

use crate::limits::MAX_ALLOW_PER_HOST;
use crate::store::{ActionParams, Targets};
use crate::timefmt::now_ms;
use crate::ApiError;

/// Longest comment (the reason an action is taken), in characters.
pub const MAX_COMMENT_CHARS: usize = 2000;
/// Longest host label, in characters.
pub const MAX_LABEL_CHARS: usize = 64;

/// Checks the comment of a change (required: say why), trimmed, at most
/// [`MAX_COMMENT_CHARS`] characters. Returns it trimmed.
///
/// # Errors
/// 400 for a missing, empty or too long comment.
pub fn comment(c: Option<&str>) -> Result<String, ApiError> {
    let c = c.map(str::trim).unwrap_or("");
    if c.is_empty() {
        return Err(ApiError::invalid("comment is required: say why"));
    }
    if c.chars().count() > MAX_COMMENT_CHARS {
        return Err(ApiError::invalid(format!(
            "comment is longer than {MAX_COMMENT_CHARS} characters"
        )));
    }
    Ok(c.to_string())
}

/// Checks a host, enrollment-token, protected or trigger label: trimmed, 1 to [`MAX_LABEL_CHARS`]
/// characters, no comma, no white space inside (trial13: `w eb` next to `web`) and none of the characters hostnames refuse (`refused_char`:
/// control, format — zero-width, bidi overrides —, separators, invisible fillers), so a
/// label cannot look like another (`web` and `w\u{200b}eb`) or reorder the text shown
/// after it (trial8).
///
/// # Errors
/// 400 naming the character and its position (a space, a control, invisible or bidi
/// character), or the length or the comma.
pub fn label(l: &str) -> Result<String, ApiError> {
    let l = l.trim();
    if l.is_empty() || l.chars().count() > MAX_LABEL_CHARS || l.contains(',') {
        return Err(ApiError::invalid(format!(
            "label {l:?} must be 1 to {MAX_LABEL_CHARS} characters without commas"
        )));
    }
    for (i, c) in l.chars().enumerate() {
        if let Some(what) = refused_char(c) {
            return Err(ApiError::invalid(format!(
                "label {} contains {what} (U+{:04X} at character {}): labels must be visible text, so that \
                 one cannot look like another",
                quoted(l),
                u32::from(c),
                i + 1
            )));
        }
    }
    if let Some(i) = l.chars().position(char::is_whitespace) {
        return Err(ApiError::invalid(format!(
            "label {} contains a space (character {}): a label is one word (`w eb` would look like `web`); \
             use - or _ between words",
            quoted(l),
            i + 1
        )));
    }
    Ok(l.to_string())
}

/// `l` between double quotes, every character outside printable ASCII written `\u{…}`
/// (Cyrillic `wеb` shows as `w\u{435}b`), escaped once: refusals name labels this way.
fn quoted(l: &str) -> String {
    format!("\"{}\"", l.escape_default())
}

/// The form labels are compared in for look-alikes (trial11 MED 2/3): the same folding as
/// token names ([`token_name_key`]: NFKC, runs of spaces, case, UTS #39 confusable
/// skeleton), so `Web`, `web `, `ｗｅｂ` and Cyrillic `wеb` share `web`'s key. For
/// comparison only; the label is stored as given ([`label`]).
pub fn label_key(l: &str) -> String {
    token_name_key(l)
}

/// Checks labels that are about to exist (host labels added, enrollment token labels,
/// protected labels; trigger labels are resolved with the same key): each with
/// [`label`], then none may look like another label without being it — neither one of
/// `existing` (compared as [`label_key`]; a label of `existing` itself is always fine)
/// nor another of `new`. `existing` is every label known anywhere
/// ([`crate::store::Store::known_labels`]). Returns the labels as
/// [`label`] leaves them.
///
/// # Errors
/// 400 from [`label`], or for two new labels that look alike; 409 naming the existing
/// label a new one looks like (use that one, or rename it first).
pub fn new_labels(new: &[String], existing: &[String]) -> Result<Vec<String>, ApiError> {
    let checked = new.iter().map(|l| label(l)).collect::<Result<Vec<_>, _>>()?;
    for (i, l) in checked.iter().enumerate() {
        let k = label_key(l);
        // A label that is already known is re-used as it is, even where a look-alike of it
        // exists already (that one is what was refused, or predates the check).
        let known = existing.contains(l);
        if let Some(e) = existing.iter().find(|e| !known && *e != l && label_key(e) == k) {
            return Err(ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "conflict",
                format!(
                    "label {} looks like the existing label {} (same letters up to case, spaces, width or \
                     look-alike characters): use {}, or rename it first",
                    quoted(l),
                    quoted(e),
                    quoted(e)
                ),
            ));
        }
        if let Some(o) = checked[..i].iter().find(|o| *o != l && label_key(o) == k) {
            return Err(ApiError::invalid(format!(
                "labels {} and {} look alike: give one of them",
                quoted(o),
                quoted(l)
            )));
        }
    }
    Ok(checked)
}

/// Longest API token name, in characters.
pub const MAX_TOKEN_NAME_CHARS: usize = 128;

/// Name prefixes the server's own actors use in the audit log (compared on the
/// normalised, case-folded form, see [`token_name_key`]): a token named like them would
/// make a person's action read as the server's, an agent's, a rule's or enrollment's.
/// `cordon server` is how the server's own commands appear (`cordon server init`).
pub const RESERVED_TOKEN_PREFIXES: [&str; 5] = ["system", "agent:", "rule:", "enrollment", "cordon server"];

/// Characters that look like `:` but that NFKC leaves alone (ratio, modifier letter
/// colons, Armenian full stop, Hebrew sof pasuq, middle dot, presentation and other
/// script colons): folded to `:` in the comparison form, so `rule∶x` is `rule:x`.
const COLON_LOOK_ALIKES: [char; 16] = [
    '\u{2236}', '\u{A789}', '\u{02D0}', '\u{02F8}', '\u{0589}', '\u{05C3}', '\u{00B7}', '\u{0387}', '\u{16EC}',
    '\u{1365}', '\u{205A}', '\u{2E2C}', '\u{A4FD}', '\u{0703}', '\u{0704}', '\u{FE13}',
];

/// Default-ignorable code points outside category Cf (Unicode's
/// DerivedCoreProperties.txt, `Default_Ignorable_Code_Point`): marks and fillers that
/// render as nothing. `unicode-properties` has no table for the property; this is the
/// whole list minus the Cf ones (refused by category) as of Unicode 15.
const IGNORABLE_NOT_CF: [(char, char); 8] = [
    ('\u{034F}', '\u{034F}'),
    ('\u{115F}', '\u{1160}'),
    ('\u{17B4}', '\u{17B5}'),
    ('\u{180B}', '\u{180F}'),
    ('\u{3164}', '\u{3164}'),
    ('\u{FE00}', '\u{FE0F}'),
    ('\u{FFA0}', '\u{FFA0}'),
    ('\u{E0100}', '\u{E01EF}'),
];

/// Why `c` may not appear in a token name, if it may not: control (Cc), format (Cf:
/// zero-width spaces and joiners, bidi controls), line or paragraph separator (Zl, Zp),
/// a space other than U+0020 (Zs), a default-ignorable mark or filler, a surrogate or
/// unassigned code point.
pub(crate) fn refused_char(c: char) -> Option<&'static str> {
    use unicode_properties::{GeneralCategory as G, UnicodeGeneralCategory};
    if c == '\u{2800}' {
        return Some("a blank character (U+2800 Braille pattern blank shows as nothing)");
    }
    match c.general_category() {
        G::Control => Some("a control character"),
        G::Format => Some("an invisible format character (zero-width or direction mark)"),
        G::LineSeparator | G::ParagraphSeparator => Some("a line or paragraph separator"),
        G::SpaceSeparator if c != ' ' => Some("a space other than the plain space"),
        G::Surrogate | G::Unassigned => Some("an unassigned code point"),
        _ if IGNORABLE_NOT_CF.iter().any(|(a, b)| (*a..=*b).contains(&c)) => {
            Some("an invisible character (a default-ignorable mark or filler)")
        }
        _ => None,
    }
}

/// A combining mark left on a Latin letter (or a space) once `name` is composed (NFC): `ı` + U+0307
/// shows as `i`, `n` + U+0338 as `≠`-like overlays, and no precomposed character absorbs
/// them, so NFKC keeps them and a name could look like another (`admı̇n` next to `admin`,
/// trial7). Marks on other scripts' letters (Devanagari vowel signs, …) are their normal
/// spelling and stay allowed; a letter with a precomposed form (`e` + U+0301 = `é`) is
/// composed first and never refused. Returns the 1-based position and the mark.
pub(crate) fn stray_latin_mark(name: &str) -> Option<(usize, char)> {
    use unicode_normalization::UnicodeNormalization;
    use unicode_properties::{GeneralCategory as G, UnicodeGeneralCategory};
    let mut base: Option<char> = None;
    for (i, c) in name.nfc().enumerate() {
        match c.general_category() {
            G::NonspacingMark | G::EnclosingMark => {
                if base.is_some_and(|b| u32::from(b) < 0x0250) {
                    return Some((i + 1, c));
                }
            }
            _ => base = Some(c),
        }
    }
    None
}

/// The form a token name is stored and shown in: Unicode NFKC (full-width and other
/// compatibility forms become the plain ones: `ｓｙｓｔｅｍ` is `system`), runs of spaces
/// one space, trimmed, and no spaces around `:` (`agent :x` is `agent:x`).
pub fn token_name_normal(name: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let nfkc: String = name.nfkc().collect();
    let mut out = String::with_capacity(nfkc.len());
    for word in nfkc.split(' ').filter(|w| !w.is_empty()) {
        if !out.is_empty() && !out.ends_with(':') && !word.starts_with(':') {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// The form token names are compared in for uniqueness: [`token_name_normal`], colon
/// look-alikes (and any non-ASCII punctuation or symbol) as `:`, then the UTS #39
/// confusable skeleton (`unicode-security`'s tables) of each character in both cases
/// (`case_skeleton`: `ADMIN`, Cyrillic `аdmin` and `admin` share one key, and so do
/// `TOM`, Greek `ΤΟΜ` and Cyrillic `ТОМ`), spaces as in [`token_name_normal`]. Two names
/// with one key look alike: only one of them may exist.
/// The key is for comparison only (`m` and `rn`, `l` and `1` share it); the stored and
/// shown name is [`token_name_normal`]'s.
pub fn token_name_key(name: &str) -> String {
    let normal = token_name_normal(name);
    let colons: String = normal.chars().map(colon_fold).collect();
    token_name_normal(&case_skeleton(&colons))
}

/// A non-ASCII punctuation mark or symbol, or a colon look-alike, as `:` (see
/// [`COLON_LOOK_ALIKES`]); any other character as it is.
fn colon_fold(c: char) -> char {
    use unicode_properties::{GeneralCategoryGroup as Grp, UnicodeGeneralCategory};
    let punct = !c.is_ascii() && matches!(c.general_category_group(), Grp::Punctuation | Grp::Symbol);
    if punct || COLON_LOOK_ALIKES.contains(&c) {
        ':'
    } else {
        c
    }
}

/// The key of an ASCII letter or digit: its lower case's UTS #39 skeleton, lower-cased
/// (`I` is `i`, `1` is `l`, `m` is `rn`).
fn ascii_key(a: char) -> String {
    unicode_security::skeleton(&a.to_ascii_lowercase().to_string())
        .collect::<String>()
        .to_lowercase()
}

/// For each skeleton character an ASCII letter or digit has (the prototypes: `l` for
/// `I`, `l` and `1`), those ASCII characters: upper-case letters, then digits, then
/// lower-case letters.
fn ascii_by_prototype() -> &'static std::collections::HashMap<String, Vec<char>> {
    static TABLE: std::sync::OnceLock<std::collections::HashMap<String, Vec<char>>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t: std::collections::HashMap<String, Vec<char>> = std::collections::HashMap::new();
        for a in ('A'..='Z').chain('0'..='9').chain('a'..='z') {
            t.entry(unicode_security::skeleton(&a.to_string()).collect())
                .or_default()
                .push(a);
        }
        t
    })
}

/// The ASCII characters a non-ASCII character's skeleton `t` reads as, one per
/// character of `t`, preferring the case of `upper` (a capital reads as a capital);
/// `None` when a character of `t` is no ASCII letter's or digit's prototype.
fn read_as_ascii(t: &str, upper: bool) -> Option<String> {
    let table = ascii_by_prototype();
    let mut out = String::new();
    for p in t.chars() {
        let cands = table.get(&p.to_string())?;
        let a = if upper {
            cands.first()
        } else {
            cands.iter().find(|a| !a.is_ascii_uppercase()).or(cands.first())
        }?;
        out.push(*a);
    }
    Some(out)
}

/// The UTS #39 confusable skeleton of `n`, case-insensitively and character by
/// character. An ASCII letter or digit becomes [`ascii_key`]'s form (case-insensitive,
/// as before); any other character becomes the form of the ASCII characters it reads as
/// — its skeleton as written, else its lower case's, else its upper case's — a capital
/// read as a capital (trial14 MED-2: Greek `ΤΟΜ`, `ΑΜΙΝ` and Cyrillic `ТОМ` fold to
/// lower-case letters no table maps to Latin, or to other Latin letters — `ν` reads as
/// `v` — while the capitals read as `TOM`, `AMIN`; Cyrillic `Ь` reads as `b`, its `ь`
/// does not). A character that reads as no ASCII one keeps its lower case's skeleton.
/// So a look-alike in either case shares the Latin name's key, and a name's key does
/// not depend on its case — except for the few letters whose two cases read as two
/// different Latin letters (Greek `Ν`/`ν`), which keep the one written.
fn case_skeleton(n: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    use unicode_security::skeleton;
    let mut out = String::with_capacity(n.len());
    for c in n.chars() {
        if c.is_ascii_alphanumeric() {
            out.push_str(&ascii_key(c));
            continue;
        }
        let via = |t: String| skeleton(&t).collect::<String>();
        let lower: String = c.to_lowercase().collect();
        let read = [
            (via(c.to_string()), c.is_uppercase()),
            (via(lower.clone()), false),
            (via(c.to_uppercase().collect()), true),
        ]
        .into_iter()
        .find_map(|(t, up)| read_as_ascii(&t, up));
        match read {
            Some(a) => out.extend(a.chars().map(ascii_key)),
            None => out.push_str(&via(lower).to_lowercase()),
        }
    }
    out.nfkc().map(colon_fold).collect()
}

/// [`token_name_key`]'s folding of an already normalised name: skeleton, then lower case,
/// then skeleton again (`skeleton_first`), or lower case first (a capital whose own
/// skeleton is not its Latin look-alike's can still have a lower case that is).
fn confusable_fold(n: &str, skeleton_first: bool) -> String {
    use unicode_normalization::UnicodeNormalization;
    use unicode_properties::{GeneralCategoryGroup as Grp, UnicodeGeneralCategory};
    use unicode_security::skeleton;
    // Colon look-alikes the tables keep, and any other non-ASCII punctuation mark or
    // symbol (refused in new names; in old ones it may stand where `:` would), read as `:`.
    let colons = |c: char| {
        let punct = !c.is_ascii() && matches!(c.general_category_group(), Grp::Punctuation | Grp::Symbol);
        if punct || COLON_LOOK_ALIKES.contains(&c) {
            ':'
        } else {
            c
        }
    };
    let first: String = if skeleton_first {
        skeleton(n).map(colons).collect()
    } else {
        n.to_lowercase().nfkc().map(colons).collect()
    };
    let again: String = if skeleton_first {
        first.to_lowercase().nfkc().map(colons).collect()
    } else {
        skeleton(&first).map(colons).collect()
    };
    let folded: String = skeleton(&again).map(colons).collect::<String>().to_lowercase();
    token_name_normal(&folded)
}

/// The reserved prefix `name` reads as, if any: its [`token_name_key`] (and the
/// lower-case-first and upper-case foldings, and those of the name before NFKC) starts
/// with a reserved prefix's key. Used to refuse new names and to flag existing ones.
pub fn reserved_token_prefix(name: &str) -> Option<&'static str> {
    let trimmed = name.trim_matches(char::is_whitespace);
    let normal = token_name_normal(trimmed);
    // Reserved in any case: each case form of the name is folded (Cyrillic `т` is no
    // look-alike of `t`, but its capital `Т` is one of `T`).
    let views = [
        confusable_fold(&normal, true),
        confusable_fold(&normal, false),
        confusable_fold(&normal.to_uppercase(), true),
        confusable_fold(trimmed, true),
        confusable_fold(trimmed, false),
        confusable_fold(&trimmed.to_uppercase(), true),
    ];
    RESERVED_TOKEN_PREFIXES.into_iter().find(|p| {
        let pk = confusable_fold(p, true);
        views.iter().any(|v| v.starts_with(&pk) || v.starts_with(p))
    })
}

/// ASCII punctuation a token name may hold besides letters, marks and digits (and the
/// plain space): every other punctuation mark or symbol is refused, so no look-alike of
/// `:` or of another name's punctuation can appear (trial7 MED 5: `rule᠄x` with U+1804).
pub const TOKEN_NAME_PUNCTUATION: &str = " -_.@:";

/// Why character `c` (at 1-based position `i` of the normalised name, after `prev`) may
/// not be in a token name, if it may not: only letters and digits that UTS #39's General
/// Security Profile allows in identifiers (`Identifier_Status=Allowed`: no obsolete,
/// technical or limited-use characters), combining marks following a letter, and
/// [`TOKEN_NAME_PUNCTUATION`].
fn token_name_char_refused(c: char, prev: Option<char>) -> Option<&'static str> {
    use unicode_properties::{GeneralCategory as G, UnicodeGeneralCategory};
    use unicode_security::mixed_script::AugmentedScriptSet;
    use unicode_security::GeneralSecurityProfile;
    if TOKEN_NAME_PUNCTUATION.contains(c) || c.is_ascii_alphanumeric() {
        return None;
    }
    let cat = c.general_category();
    let letter = matches!(
        cat,
        G::UppercaseLetter | G::LowercaseLetter | G::TitlecaseLetter | G::ModifierLetter | G::OtherLetter
    );
    let mark = matches!(cat, G::NonspacingMark | G::SpacingMark | G::EnclosingMark);
    if !(letter || mark || cat == G::DecimalNumber) {
        return Some("a punctuation mark, symbol or other character outside letters, digits and ` -_.@:`");
    }
    if !c.identifier_allowed() {
        return Some("a character Unicode restricts in identifiers (UTS #39: obsolete, technical or uncommon)");
    }
    if letter && AugmentedScriptSet::for_char(c).is_all() {
        return Some("a modifier letter of no script (it reads as punctuation)");
    }
    if mark {
        let base_ok = prev.is_some_and(|p| {
            let pc = p.general_category();
            matches!(
                pc,
                G::UppercaseLetter
                    | G::LowercaseLetter
                    | G::TitlecaseLetter
                    | G::ModifierLetter
                    | G::OtherLetter
                    | G::NonspacingMark
                    | G::SpacingMark
                    | G::EnclosingMark
            ) && {
                let mut s = AugmentedScriptSet::for_char(p);
                s.intersect_with(AugmentedScriptSet::for_char(c));
                !s.is_empty()
            }
        });
        if !base_ok {
            return Some("a combining mark not on a letter of its own script");
        }
    }
    None
}

/// Full stops other scripts use as a label separator: ideographic (U+3002), full-width
/// (U+FF0E) and half-width ideographic (U+FF61). IDNA (UTS #46) maps them to `.`, so a
/// resolver reads `web1。example` as `web1.example`: the key does too.
pub const DOT_LOOK_ALIKES: [char; 3] = ['\u{3002}', '\u{FF0E}', '\u{FF61}'];

/// The form hostnames are compared in for the duplicate flag and for addressing a host
/// by name (issue 17, trial5, trial13): Unicode NFKC (full-width `ｈｏｓｔ１` is `host1`),
/// every character a name may not hold dropped (zero-width and other invisible, format
/// and control characters, U+2800 — see [`hostname`]; hosts enrolled before the check
/// may have them), the full stops of [`DOT_LOOK_ALIKES`] as `.`, lower-cased with `ß` as
/// `ss` (so `ẞ`, `ß` and `ss` compare equal), then the UTS #39 confusable skeleton as
/// for token names ([`token_name_key`]'s folding: Cyrillic `dЬ1` is `db1`, and `l`/`1`,
/// `rn`/`m` share one key), white space at either end and trailing dots dropped
/// (`host1.` is `host1`). For comparison only: the name is stored and shown as given.
pub fn hostname_key(name: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let dots = |c: char| if DOT_LOOK_ALIKES.contains(&c) { '.' } else { c };
    let visible: String = name
        .nfkc()
        .filter(|c| refused_char(*c).is_none())
        .map(dots)
        .collect::<String>()
        .replace(['ß', 'ẞ'], "ss");
    let trim = |s: &str| {
        s.trim_matches(char::is_whitespace)
            .trim_end_matches('.')
            .trim_matches(char::is_whitespace)
            .to_string()
    };
    // Both case forms of each character: a capital's look-alike can be lost in its lower
    // case (Cyrillic `Ь` reads as `b`, its `ь` does not).
    let folded: String = token_name_normal(&case_skeleton(&trim(&visible)))
        .replace('ß', "ss")
        .nfkc()
        .map(dots)
        .collect();
    trim(&folded)
}

/// Longest hostname, in bytes (a DNS name is at most 253).
pub const MAX_HOSTNAME_BYTES: usize = 255;

/// Checks a hostname given at enrollment: plain spaces (U+0020) at either end dropped,
/// then 1 to [`MAX_HOSTNAME_BYTES`] bytes with no control, invisible, format or
/// separator character anywhere — at either end too: a tab, U+0085 or a no-break space
/// is refused, never trimmed into another name (trial10) — (spaces other than U+0020,
/// U+2800 included; such a name would look like another host's) and something left
/// once compared ([`hostname_key`]). Returns the trimmed name (stored and shown as
/// given; compared in its key form).
///
/// # Errors
/// 400 naming the character and its position, or the length.
pub fn hostname(name: &str) -> Result<String, ApiError> {
    let name = name.trim_matches(' ');
    if name.is_empty() || name.len() > MAX_HOSTNAME_BYTES {
        return Err(ApiError::invalid(format!(
            "hostname must be 1-{MAX_HOSTNAME_BYTES} bytes of visible text"
        )));
    }
    for (i, c) in name.chars().enumerate() {
        if let Some(what) = refused_char(c) {
            return Err(ApiError::invalid(format!(
                "hostname contains {what} (U+{:04X} at character {}): hostnames must be visible text, so that \
                 one cannot look like another host's",
                u32::from(c),
                i + 1
            )));
        }
    }
    if let Some((i, c)) = stray_latin_mark(name) {
        return Err(ApiError::invalid(format!(
            "hostname contains a combining mark on a Latin letter (U+{:04X} at character {i}): it can make \
             the name look like another host's",
            u32::from(c)
        )));
    }
    if hostname_key(name).is_empty() {
        return Err(ApiError::invalid(format!("hostname {name:?} is only dots")));
    }
    Ok(name.to_string())
}

/// Checks an API token's name: plain spaces (U+0020) at either end dropped, then no control,
/// invisible, format or separator characters (spaces other than U+0020 included),
/// normalised ([`token_name_normal`]) to 1-128 characters of letters, combining marks on a
/// letter of their own script, digits and [`TOKEN_NAME_PUNCTUATION`], letters of one
/// script (UTS #39 single-script, Han with kana or hangul counts as one), and not
/// looking like a reserved prefix ([`reserved_token_prefix`]: confusable skeleton,
/// case-folded). Returns the normalised name (what is stored and shown).
///
/// # Errors
/// 400 naming the problem: the character, its code point and position, the scripts
/// mixed, or the reserved prefix the name reads as.
pub fn token_name(name: &str) -> Result<String, ApiError> {
    use unicode_security::MixedScript;
    // Plain spaces at either end are dropped; any other white space or control there is
    // refused like anywhere else (trial14 LOW-5: `admin2\r` was stored as `admin2`), as
    // for hostnames.
    let name = name.trim_matches(' ');
    for (i, c) in name.chars().enumerate() {
        if let Some(what) = refused_char(c) {
            return Err(ApiError::invalid(format!(
                "token name contains {what} (U+{:04X} at character {}): names must be visible text",
                u32::from(c),
                i + 1
            )));
        }
    }
    let n = token_name_normal(name);
    if n.is_empty() || n.chars().count() > MAX_TOKEN_NAME_CHARS {
        return Err(ApiError::invalid(format!(
            "token name must be 1 to {MAX_TOKEN_NAME_CHARS} characters (after trimming and Unicode normalisation)"
        )));
    }
    if let Some(p) = reserved_token_prefix(name) {
        let key = token_name_key(&n);
        let shown = if key == n.to_lowercase() {
            format!("{n:?}")
        } else {
            format!("{n:?} (compared as {key:?})")
        };
        let odd = name
            .chars()
            .enumerate()
            .find(|(_, c)| !c.is_ascii())
            .map(|(i, c)| {
                format!(
                    " — {c:?} U+{:04X} at character {} reads as Latin or ':'",
                    u32::from(c),
                    i + 1
                )
            })
            .unwrap_or_default();
        return Err(ApiError::invalid(format!(
            "token name {shown} is reserved{odd}: names that look like {p:?} at their start (any case, \
             Unicode look-alikes of letters and ':' compared on their UTS #39 confusable skeleton, spaces \
             around ':' ignored) are the server's own actors in the audit log (system, agent:HOST, \
             rule:NAME, enrollment, cordon server …); choose another name"
        )));
    }
    if let Some((i, c)) = stray_latin_mark(&n) {
        return Err(ApiError::invalid(format!(
            "token name contains a combining mark on a Latin letter or space (U+{:04X} at character {i}): it can make \
             the name look like another (`admı̇n` and `admin`)",
            u32::from(c)
        )));
    }
    let mut prev = None;
    for (i, c) in n.chars().enumerate() {
        if let Some(what) = refused_char(c).or_else(|| token_name_char_refused(c, prev)) {
            return Err(ApiError::invalid(format!(
                "token name contains {c:?} (U+{:04X} at character {} of the normalised name {n:?}): {what}; \
                 names are letters, digits, combining marks and ` -_.@:`",
                u32::from(c),
                i + 1
            )));
        }
        prev = Some(c);
    }
    if !n.as_str().is_single_script() {
        let scripts: Vec<String> = n
            .chars()
            .filter(|c| {
                let s = unicode_security::mixed_script::AugmentedScriptSet::for_char(*c);
                !s.is_all()
            })
            .map(|c| unicode_security::mixed_script::AugmentedScriptSet::for_char(c).to_string())
            .fold(Vec::new(), |mut v, s| {
                if !v.contains(&s) {
                    v.push(s);
                }
                v
            });
        return Err(ApiError::invalid(format!(
            "token name {n:?} mixes letters of several scripts ({}): a mixed-script name can look like \
             another (Cyrillic `а` in a Latin name); write it in one script",
            scripts.join("; ")
        )));
    }
    Ok(n)
}

/// Checks a quarantine request's parameters.
pub fn quarantine_params(req: &ActionRequest) -> Result<ActionParams, ApiError> {
    let comment = comment(req.comment.as_deref())?;
    if req.allow.len() > MAX_ALLOW_PER_HOST {
        return Err(ApiError::invalid(format!(
            "{} exceptions given; at most {MAX_ALLOW_PER_HOST} per host",
            req.allow.len()
        )));
    }
    let mut allow = Vec::with_capacity(req.allow.len());
    let mut parsed = Vec::with_capacity(req.allow.len());
    for spec in &req.allow {
        parsed.push(AllowSpec::parse(spec).map_err(|e| ApiError::invalid(e.to_string()))?);
        allow.push(spec.trim().to_string());
    }
    // The agent refuses (or leaves out) exceptions that open a whole family — such a
    // quarantine isolates nothing there — so accepting them here would make a request
    // the host never carries out (it would stay open). Same check as the engine's.
    let open = cordon_policy::model::no_isolation_families(&parsed);
    if !open.is_empty() {
        let culprits = cordon_policy::model::whole_family_exceptions(&parsed, &open);
        let words: Vec<&str> = open.iter().map(|f| f.name()).collect();
        return Err(ApiError::invalid(format!(
            "the exceptions {} cover every {} address, so the quarantine would isolate nothing there; \
             nothing was changed (a quarantine through the server always isolates both families)",
            culprits.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", "),
            words.join(" and ")
        )));
    }
    let message = match req.message.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(m) if m.chars().count() > MAX_MESSAGE_CHARS => {
            return Err(ApiError::invalid(format!(
                "message is longer than {MAX_MESSAGE_CHARS} characters"
            )))
        }
        Some(m) => Some(m.to_string()),
    };
    let expires_at = match req.expires_at {
        None => None,
        Some(t) => {
            let ms = t.unix_ms();
            if ms <= now_ms() {
                return Err(ApiError::invalid(format!("expires_at {t} is in the past")));
            }
            Some(ms)
        }
    };
    Ok(ActionParams {
        comment,
        allow,
        message,
        expires_at,
        if_revisions: req.if_revisions.clone().unwrap_or_default(),
        reviewed_set: req.if_revisions.is_some(),
        replace: req.replace,
        preview: req.preview,
    })
}

/// The parameters of a release from its request: the comment ([`comment`]) and the
/// revisions the caller expects (`if_revisions`).
///
/// # Errors
/// 400 as [`comment`].
pub fn release_params(req: &ActionRequest) -> Result<ActionParams, ApiError> {
    Ok(ActionParams {
        comment: comment(req.comment.as_deref())?,
        if_revisions: req.if_revisions.clone().unwrap_or_default(),
        reviewed_set: req.if_revisions.is_some(),
        preview: req.preview,
        ..Default::default()
    })
}

/// Targets from the body (`hosts` or `label`, exactly one of them).
pub fn targets(req: &ActionRequest) -> Result<Targets, ApiError> {
    match (req.hosts.is_empty(), &req.label) {
        (false, None) => Ok(Targets::Hosts(req.hosts.clone())),
        (true, Some(l)) => Ok(Targets::Label(label(l)?)),
        (true, None) => Err(ApiError::invalid("give hosts [...] or label")),
        (false, Some(_)) => Err(ApiError::invalid("give either hosts or label, not both")),
    }
}

#[cfg(test)]
mod mark_tests {
    /// trial7 MED 4: `maı̇l1` (dotless ı + U+0307) next to `mail1`, `admı̇n` next to
    /// `admin`, `admin` + U+0338 were accepted and looked like the plain names.
    #[test]
    fn combining_marks_on_latin_letters_are_refused_composed_ones_and_other_scripts_are_not() {
        for bad in ["ma\u{131}\u{307}l1", "admin\u{338}", "web1\u{307}"] {
            let e = super::hostname(bad).unwrap_err();
            assert!(e.detail.contains("combining mark"), "{bad:?}: {e:?}");
            let e = super::token_name(bad).unwrap_err();
            assert!(e.detail.contains("combining mark"), "{bad:?}: {e:?}");
        }
        // Decomposed é is composed first; Devanagari's vowel sign and virama are spelling.
        for good in ["cafe\u{301}-01", "\u{938}\u{930}\u{94d}\u{935}\u{930}"] {
            assert!(super::hostname(good).is_ok(), "{good:?}");
            assert!(super::token_name(good).is_ok(), "{good:?}");
        }
    }
}

#[cfg(test)]
mod token_name_tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reserved_look_alikes_are_refused() {
        for name in [
            "system",
            "System-bot",
            "  SYSTEM ",
            "agent :x",
            "agent : x",
            "AGENT:web-1",
            "rule :wazuh-critical",
            "rule\u{FE55}wazuh", // small colon
            // Colon look-alikes NFKC leaves alone, and the server's own command actors
            // (trial5 findings).
            "rule\u{2236}wazuh-critical",
            "agent\u{A789}x",
            "agent\u{02D0}x",
            "rule\u{0589}x",
            "rule\u{05C3}x",
            "rule\u{00B7}x",
            "cordon server init",
            "Cordon  Server token create",
            "\u{FF53}\u{FF59}\u{FF53}\u{FF54}\u{FF45}\u{FF4D}", // full-width "system"
            "\u{017F}ystem",                                    // long s
            "Enrollment",
            "\u{FF21}gent:x", // full-width A
        ] {
            let e = token_name(name).unwrap_err();
            assert!(e.to_string().contains("reserved"), "{name:?}: {e}");
        }
    }

    #[test]
    fn invisible_and_control_characters_are_refused_naming_them() {
        for (name, code) in [
            ("sys\u{200B}tem", "U+200B"),
            ("\u{200D}system", "U+200D"),
            ("sys\u{FEFF}tem", "U+FEFF"),
            ("sys\u{2060}tem", "U+2060"),
            ("admin\u{202E}nimda", "U+202E"),
            ("a\u{00A0}b", "U+00A0"),
            ("a\u{3000}b", "U+3000"),
            ("\u{3000}system", "U+3000"),
            ("a\u{2028}b", "U+2028"),
            ("a\tb", "U+0009"),
            ("sys\u{FE0F}tem", "U+FE0F"),
            ("\u{3164}", "U+3164"),
        ] {
            let e = token_name(name).unwrap_err().to_string();
            assert!(e.contains(code), "{name:?}: {e}");
        }
    }

    #[test]
    fn ordinary_names_are_kept_normalised() {
        assert_eq!(token_name("  ops  team ").unwrap(), "ops team");
        assert_eq!(token_name("siem : prod").unwrap(), "siem:prod");
        assert_eq!(token_name("Zoë").unwrap(), "Zoë");
        assert_eq!(token_name("agent-smith").unwrap(), "agent-smith");
        assert_eq!(token_name("\u{FF4F}ps").unwrap(), "ops");
        assert_eq!(token_name_key("OPS  Team"), token_name_key("ops team"));
        assert_eq!(token_name_key("\u{FF2F}ps"), "ops");
        assert!(token_name("").is_err());
        assert!(token_name(&"x".repeat(129)).is_err());
    }

    /// trial7 MED 5: look-alikes of `:` (and of Latin letters) that no hand list named were
    /// accepted (`rule᠄wazuh-critical`). The kind: any character outside letters, digits,
    /// marks on their own script's letters and ` -_.@:` is refused naming its code point,
    /// and the reserved prefixes are compared on the UTS #39 confusable skeleton.
    #[test]
    fn look_alikes_of_reserved_prefixes_outside_any_list_are_refused_naming_the_code_point() {
        for c in [
            '\u{1804}', '\u{2982}', '\u{0F7F}', '\u{1361}', '\u{0903}', '\u{A6F4}', '\u{0705}', '\u{0F14}', '\u{A789}',
            '\u{FE13}', '\u{FE55}', '\u{FF1A}', '\u{02F8}', '\u{2236}', '\u{205A}', '\u{1CD3}', '\u{FE30}',
        ] {
            let name = format!("rule{c}wazuh-critical");
            let e = token_name(&name).unwrap_err().to_string();
            let code = format!("U+{:04X}", u32::from(c));
            assert!(e.contains(&code) || e.contains("reserved"), "{name:?}: {e}");
            // The colon look-alike is refused in any name, not just after a reserved word.
            let e = token_name(&format!("siem{c}prod")).map_err(|e| e.to_string());
            if let Ok(n) = &e {
                // Only a compatibility form NFKC turns into ASCII punctuation may pass.
                assert!(n.is_ascii(), "{c:?} kept in a name: {n:?}");
            }
        }
        for name in [
            "\u{0455}\u{0443}\u{0455}t\u{0435}m",               // Cyrillic ѕуѕ е with Latin t m
            "\u{0455}\u{0443}\u{0455}\u{0442}\u{0435}\u{043C}", // all Cyrillic
            "\u{0405}\u{04AE}\u{0405}\u{0422}\u{0415}\u{041C}", // Cyrillic capitals ЅҮЅТЕМ
            "\u{0455}ystem",
            "syst\u{0435}m-bot",
            "\u{0430}gent:web1",
            "\u{0391}GENT:web1", // Greek capital alpha
            "ru\u{13DE}e:x",     // Cherokee
            "\u{1D42B}ule:x",    // mathematical bold r
            "enro\u{04CF}\u{04CF}ment",
            "cordon\u{2009}server",
        ] {
            let e = token_name(name).unwrap_err().to_string();
            assert!(e.contains("reserved") || e.contains("U+"), "{name:?}: {e}");
            assert!(
                reserved_token_prefix(name).is_some() || e.contains("U+"),
                "{name:?}: {e}"
            );
        }
        // Names that only look like each other share a key (one of them may exist).
        assert_eq!(token_name_key("\u{0430}dmin"), token_name_key("admin"));
        assert_eq!(token_name_key("ADMIN"), token_name_key("admin"));
        // Other scripts' names, written in one script, stay allowed.
        for good in [
            "Zo\u{00EB}",
            "\u{041E}\u{043F}\u{0435}\u{0440}\u{0430}\u{0442}\u{043E}\u{0440}",
            "\u{904B}\u{7528}\u{30C1}\u{30FC}\u{30E0}",
            "alice@example.org",
            "ci_bot-2.prod",
        ] {
            assert!(token_name(good).is_ok(), "{good:?}: {:?}", token_name(good));
        }
        // Mixed scripts and punctuation outside the set are refused naming the problem.
        let e = token_name("ops-\u{041A}\u{043E}\u{043C}\u{0430}\u{043D}\u{0434}\u{0430}")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("scripts") && e.contains("Cyrillic") && e.contains("Latin"),
            "{e}"
        );
        let e = token_name("alice (token 3)").unwrap_err().to_string();
        assert!(e.contains("U+0028"), "{e}");
    }

    /// Every single character whose confusable skeleton is that of `c` (from Unicode's
    /// own table, through `unicode-security`), computed once over all code points.
    fn look_alikes(c: char) -> Vec<char> {
        use std::collections::HashMap;
        use std::sync::OnceLock;
        static TABLE: OnceLock<HashMap<String, Vec<char>>> = OnceLock::new();
        let t = TABLE.get_or_init(|| {
            let mut t: HashMap<String, Vec<char>> = HashMap::new();
            for c in (0u32..=0x10FFFF).filter_map(char::from_u32) {
                let mut b = [0; 4];
                let sk: String = unicode_security::skeleton(c.encode_utf8(&mut b)).collect();
                if sk.chars().count() == 1 && sk.chars().all(|s| s.is_ascii_graphic()) {
                    t.entry(sk).or_default().push(c);
                }
            }
            t
        });
        let mut b = [0; 4];
        let sk: String = unicode_security::skeleton(c.encode_utf8(&mut b)).collect();
        t.get(&sk).cloned().unwrap_or_else(|| vec![c])
    }

    /// A reserved prefix (any case) with each character replaced by one of its
    /// look-alikes, then anything.
    fn confusable_reserved() -> impl Strategy<Value = String> {
        let word = prop::sample::select(RESERVED_TOKEN_PREFIXES.to_vec());
        (
            word,
            any::<bool>(),
            prop::collection::vec(any::<prop::sample::Index>(), 16),
            "\\PC{0,6}",
        )
            .prop_map(|(w, upper, picks, tail)| {
                let w = if upper { w.to_uppercase() } else { w.to_string() };
                let mut s = String::new();
                for (c, pick) in w.chars().zip(picks.iter().cycle()) {
                    let alikes = look_alikes(c);
                    s.push(*pick.get(&alikes));
                }
                s + &tail
            })
    }

    /// A reserved word in disguise: each character possibly upper-cased or full-width,
    /// invisible or space characters between, spaces around the colon.
    fn disguised() -> impl Strategy<Value = String> {
        let word = prop::sample::select(vec!["system", "agent:", "rule:", "enrollment"]);
        let noise = prop::sample::select(vec![
            "", "", "", " ", "  ", "\u{200B}", "\u{200C}", "\u{200D}", "\u{2060}", "\u{FEFF}", "\u{00A0}", "\u{3000}",
            "\u{00AD}", "\u{034F}", "\u{FE0F}", "\u{180E}",
        ]);
        (word, prop::collection::vec((any::<u8>(), noise), 12), ".{0,6}").prop_map(|(w, mix, tail)| {
            let mut s = String::new();
            for (c, (r, n)) in w.chars().zip(mix) {
                let c = match r % 4 {
                    0 => c.to_ascii_uppercase(),
                    1 if c.is_ascii_graphic() => char::from_u32(u32::from(c) - 0x21 + 0xFF01).unwrap_or(c),
                    _ => c,
                };
                s.push_str(n);
                s.push(c);
            }
            s + &tail
        })
    }

    proptest! {
        /// Any string whose confusable skeleton starts with a reserved prefix (in either
        /// case) is refused — as reserved, or for a character no name may hold — and
        /// [`reserved_token_prefix`] recognises it whenever the string is otherwise a
        /// possible name.
        #[test]
        fn any_name_whose_skeleton_starts_with_a_reserved_prefix_is_refused(name in confusable_reserved()) {
            let sk: String = unicode_security::skeleton(&name).collect();
            let sk_lower: String = unicode_security::skeleton(&sk.to_lowercase()).collect();
            prop_assume!(RESERVED_TOKEN_PREFIXES.iter().any(|p| {
                let pk: String = unicode_security::skeleton(p).collect();
                let pu: String = unicode_security::skeleton(&p.to_uppercase()).collect();
                sk.starts_with(&pk) || sk.starts_with(&pu) || sk_lower.starts_with(&pk)
            }));
            let r = token_name(&name);
            prop_assert!(r.is_err(), "{:?} accepted as {:?}", name, r);
            prop_assert!(reserved_token_prefix(&name).is_some() || r.as_ref().is_err_and(|e| e.to_string().contains("U+")),
                "{:?}: {:?}", name, r);
        }

        /// No accepted name normalises to a reserved prefix (and the stored form is a
        /// fixed point: checking it again gives the same name).
        #[test]
        fn no_accepted_name_normalises_to_a_reserved_prefix(name in prop_oneof![disguised(), any::<String>(), "\\PC{0,20}"]) {
            if let Ok(n) = token_name(&name) {
                let key = token_name_key(&n);
                for p in RESERVED_TOKEN_PREFIXES {
                    prop_assert!(!key.starts_with(p), "{:?} accepted as {:?} (key {:?})", name, n, key);
                    prop_assert!(!token_name_key(&name).starts_with(p), "{:?}", name);
                }
                prop_assert_eq!(token_name(&n).ok(), Some(n.clone()));
                prop_assert!(!n.chars().any(|c| refused_char(c).is_some()));
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod label_identity_tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    /// trial11 MED 2/3: a new label that looks like an existing one is refused naming it.
    #[test]
    fn look_alike_labels_are_refused_naming_the_existing_one() {
        let existing = s(&["web", "domain-controller"]);
        for l in ["Web", "w\u{0435}b", "ｗｅｂ", "WEB"] {
            let e = new_labels(&s(&[l]), &existing).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::CONFLICT, "{l:?}");
            assert!(e.detail.contains("existing label \"web\""), "{l:?}: {}", e.detail);
        }
        assert_eq!(new_labels(&s(&["web", "db"]), &existing).unwrap(), s(&["web", "db"]));
        let e = new_labels(&s(&["domain-controller\u{202e}"]), &existing).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
        let e = new_labels(&s(&["db", "DB"]), &existing).unwrap_err();
        assert!(e.detail.contains("look alike"), "{}", e.detail);
    }

    /// trial13 MED 1 / LOW: a space inside a label makes `w eb` read as `web`: refused
    /// with a 400 that says so, wherever it is (host, token, protected or trigger label).
    #[test]
    fn labels_with_inner_spaces_are_refused_saying_so() {
        for l in ["w eb", "domain controllers", "a\u{a0}b"] {
            let e = label(l).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST, "{l:?}");
            assert!(e.detail.contains("space"), "{l:?}: {}", e.detail);
        }
        assert_eq!(label(" web ").unwrap(), "web");
    }

    /// Re-using a known label exactly is fine even where a look-alike of it already exists
    /// (enrolled before the check): only new look-alikes are refused.
    #[test]
    fn a_known_label_is_reused_as_it_is_even_beside_an_older_look_alike() {
        let existing = s(&["servers", "Servers", "Quarantine"]);
        assert_eq!(new_labels(&s(&["servers"]), &existing).unwrap(), s(&["servers"]));
        let e = new_labels(&s(&["SERVERS"]), &existing).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::CONFLICT);
        // Escaped once: the Cyrillic letter is written `\u{435}`, with one backslash.
        let e = new_labels(&s(&["s\u{0435}rvers"]), &existing).unwrap_err();
        assert!(e.detail.contains("label \"s\\u{435}rvers\" looks like"), "{}", e.detail);
        let e = new_labels(&s(&["quarantine"]), &existing).unwrap_err();
        assert!(e.detail.contains("existing label \"Quarantine\""), "{}", e.detail);
    }
}

#[cfg(test)]
mod hostname_key_tests {
    use super::*;
    use proptest::prelude::*;

    /// trial14 LOW-5: token names were trimmed of any white space at the ends
    /// (`admin2\r` created `admin2`); refused now like hostnames, naming the character.
    #[test]
    fn whitespace_and_controls_around_a_token_name_are_refused_not_trimmed() {
        for (bad, says) in [
            ("admin2\r", "U+000D"),
            ("\tbob", "U+0009"),
            ("bob\u{A0}", "U+00A0"),
            ("\u{3000}bob", "U+3000"),
        ] {
            let e = token_name(bad).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST, "{bad:?}");
            assert!(e.detail.contains(says), "{bad:?}: {e:?}");
        }
        assert_eq!(token_name("  bob ").unwrap(), "bob");
    }

    /// trial10 LOW: a tab, U+0085 or a no-break space at either end of a hostname was
    /// trimmed away (the host stored as another name); inside it was refused. Refused
    /// anywhere now, naming the character; plain spaces at the ends are still dropped.
    #[test]
    fn whitespace_and_controls_around_a_hostname_are_refused_not_trimmed() {
        for (bad, says) in [
            ("db1\u{A0}", "U+00A0"),
            ("\u{A0}db1", "U+00A0"),
            ("\tdb1", "U+0009"),
            ("db1\u{85}", "U+0085"),
            ("db1\n", "U+000A"),
            ("db\u{3000}1", "U+3000"),
            ("\u{2003}db1", "U+2003"),
        ] {
            let e = hostname(bad).unwrap_err();
            assert!(e.detail.contains(says), "{bad:?}: {e:?}");
        }
        assert_eq!(hostname("  db1 ").unwrap(), "db1");
    }

    /// trial13 MED / trial10 LOW: `dЬ1` (Cyrillic soft sign) and `db1`, `web1。example`
    /// (ideographic full stop) and `web1.example` had different keys, so neither pair was
    /// flagged duplicate. The key folds look-alike full stops to `.` and takes the UTS #39
    /// skeleton, as token names do.
    #[test]
    fn look_alike_hostnames_share_one_key() {
        for (a, b) in [
            ("db1", "d\u{42C}1"),
            ("web1.example", "web1\u{3002}example"),
            ("web1.example", "web1\u{FF61}example"),
            ("web1.example", "web1\u{FF0E}example"),
            ("web1", "web1\u{3002}"),
            ("mail", "m\u{430}il"),
            ("host1", "\u{FF48}\u{FF4F}\u{FF53}\u{FF54}\u{FF11}"),
            ("strasse", "STRA\u{1E9E}E"),
        ] {
            assert_eq!(hostname_key(a), hostname_key(b), "{a:?} vs {b:?}");
        }
        assert_ne!(hostname_key("db1"), hostname_key("db2"));
        assert_ne!(hostname_key("web1.example"), hostname_key("web1-example"));
    }

    /// Cyrillic (and Greek) look-alikes of Latin letters, and look-alike full stops.
    fn disguise(c: char, pick: u8) -> char {
        match (c, pick % 2) {
            ('a', _) => '\u{430}',
            ('b', _) => '\u{42C}',
            ('c', _) => '\u{441}',
            ('e', _) => '\u{435}',
            ('o', 0) => '\u{43E}',
            ('o', _) => '\u{3BF}',
            ('p', _) => '\u{440}',
            ('x', _) => '\u{445}',
            ('y', _) => '\u{443}',
            ('.', 0) => '\u{3002}',
            ('.', _) => '\u{FF61}',
            (c, _) => c,
        }
    }

    /// trial14 MED-2: `TOM`, Greek `ΤΟΜ` and Cyrillic `ТОМ` (and `BOB`/`ΒΟΒ`,
    /// `KATE`/`ΚΑΤΕ`, `AMIN`/`ΑΜΙΝ`) had three keys: the capitals fold to lower-case
    /// letters no table maps to Latin. One key now, in either case; names that differ
    /// keep distinct keys.
    #[test]
    fn upper_case_look_alikes_of_other_scripts_share_the_token_key() {
        for set in [
            &["TOM", "tom", "\u{3A4}\u{39F}\u{39C}", "\u{422}\u{41E}\u{41C}"][..],
            &["BOB", "\u{392}\u{39F}\u{392}"],
            &["KATE", "\u{39A}\u{391}\u{3A4}\u{395}"],
            &["AMIN", "\u{391}\u{39C}\u{399}\u{39D}"],
            &["cope", "\u{441}\u{43E}\u{440}\u{435}", "\u{421}\u{41E}\u{420}\u{415}"],
            &["db1", "d\u{42C}1", "D\u{44C}1"],
        ] {
            let k = token_name_key(set[0]);
            for n in set {
                assert_eq!(token_name_key(n), k, "{n:?} vs {:?}", set[0]);
                if n.is_ascii() {
                    assert_eq!(token_name_key(&n.to_lowercase()), k, "{n:?} lower");
                    assert_eq!(token_name_key(&n.to_uppercase()), k, "{n:?} upper");
                }
            }
        }
        assert_ne!(token_name_key("tom"), token_name_key("tim"));
        assert_ne!(token_name_key("alice"), token_name_key("bob"));
    }

    proptest! {
        /// Any hostname with some of its letters replaced by look-alikes of another
        /// script (and its dots by ideographic or half-width ones) has the same key, so
        /// the two hosts are flagged duplicate and neither name addresses one of them
        /// alone.
        #[test]
        fn a_hostname_and_its_look_alikes_share_one_key(
            name in "[a-z0-9][a-z0-9.-]{0,30}[a-z0-9]",
            picks in proptest::collection::vec(any::<u8>(), 32),
        ) {
            let disguised: String = name
                .chars()
                .zip(picks.iter().cycle())
                .map(|(c, p)| if p % 3 == 0 { c } else { disguise(c, *p) })
                .collect();
            prop_assert_eq!(hostname_key(&name), hostname_key(&disguised), "{:?} vs {:?}", name, disguised);
            // The key is a fixed point and holds only what it compares.
            let k = hostname_key(&name);
            prop_assert_eq!(hostname_key(&k), k.clone());
            prop_assert!(!k.ends_with('.'));
        }
    }
}
