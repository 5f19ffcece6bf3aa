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

/// The form labels are compared in for look-alikes (trial11 MED 2/3, trial19 HIGH-1):
/// [`identity_key`], the key of token names and hostnames too, so `Web`, `web `, `ｗｅｂ`,
/// Cyrillic `wеb`, `cordon‐protected` (U+2010 hyphen) and `ϲordon-protected` (U+03F2)
/// share a key with the ASCII label. For comparison only; the label is stored as given
/// ([`label`]).
pub fn label_key(l: &str) -> String {
    identity_key(l)
}

/// Labels stored before today's checks that the checks would refuse now (trial16: such
/// databases were not flagged), one sentence each, from every label `known` anywhere
/// ([`crate::store::Store::known_labels`]) (pure):
/// - look-alikes: two or more spellings with one [`label_key`] (`web`, `WEB`,
///   `w\u{200b}eb`) — a rule on any of them cannot fire, a protected one protects its
///   look-alikes only by key;
/// - a label [`label`] refuses now (a space, a bidi or invisible character).
///
/// Labels are quoted as refusals quote them (`\u{…}` for anything outside printable
/// ASCII). Sorted; empty for a clean database.
pub fn poisoned_labels(known: &[String]) -> Vec<String> {
    let mut groups: std::collections::BTreeMap<String, Vec<&String>> = std::collections::BTreeMap::new();
    for l in known {
        groups.entry(label_key(l)).or_default().push(l);
    }
    let mut out = Vec::new();
    for list in groups.values_mut() {
        list.sort();
        list.dedup();
        if list.len() > 1 {
            let names: Vec<String> = list.iter().map(|l| quoted(l)).collect();
            out.push(format!("look-alike labels: {}", names.join(", ")));
        }
    }
    for l in known {
        if let Err(e) = label(l) {
            out.push(format!("label {} would be refused today: {}", quoted(l), e.detail));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The first of `host_labels` that is one of `protected` or looks like one (same
/// [`label_key`]), if any: a host is protected by what its labels read as, so a label
/// stored before look-alikes were refused (`cordon‐protected` with U+2010 next to the
/// protected `cordon-protected`, trial19 HIGH-1) protects its host instead of passing as
/// protected on screen only. Automation, approvals and the console's reviews all ask
/// this.
pub fn protected_label<'a>(host_labels: &'a [String], protected: &[String]) -> Option<&'a String> {
    let keys: Vec<String> = protected.iter().map(|p| label_key(p)).collect();
    host_labels
        .iter()
        .find(|l| protected.contains(l) || keys.contains(&label_key(l)))
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

/// The form token names are compared in for uniqueness: [`identity_key`] (the one key
/// of labels, token names and hostnames). Two names with one key look alike: only one
/// of them may exist. The key is for comparison only (`m` and `rn`, `l`, `I` and `1`
/// share it); the stored and shown name is [`token_name_normal`]'s.
pub fn token_name_key(name: &str) -> String {
    identity_key(name)
}

/// Look-alikes UTS #39's confusables.txt does not list (as `unicode-security` ships it,
/// Unicode 18) but that read as the Latin text they are folded to in the sans-serif the
/// console and most terminals use (trial19 HIGH-1): `cl` as `d` (`cordon-protectecl`),
/// Latin `ɾ` (U+027E, fish-hook r) as `r`, and the modifier letter low ring `˳` — the
/// skeleton of the ideographic and half-width full stops ([`DOT_LOOK_ALIKES`]) — as `.`.
/// Applied to the lower-cased skeleton, so `CL`, `cI` and `c1` read as `d` too.
const EXTRA_LOOK_ALIKES: [(&str, &str); 3] = [("cl", "d"), ("\u{27E}", "r"), ("\u{2F3}", ".")];

/// Letters whose small form's skeleton differs from their capital's, the small form's
/// skeleton character mapped to the capital's (ASCII) text: `i` reads as `l` because `I`
/// does (confusables.txt maps `I` to `l`, `i` to itself), Greek `τ`'s skeleton `ᴛ` as
/// `t` because `Τ` is `T`, Cyrillic `ю` as `lo`, `ß` as `ss`. Without it a name's key
/// would depend on its case (`Iab` and `iab`). Derived from the skeleton tables — the
/// test `the_case_merge_table_is_what_the_confusable_data_gives` recomputes it from
/// every cased code point and fails, printing the new table, when the crate's data
/// changes. Hand-kept (not computed at start) because deriving it walks all of Unicode
/// (about a second unoptimised), and every process computing keys would pay for it.
const CASE_MERGE: [(char, &str); 67] = [
    ('\u{69}', "l"),
    ('\u{DF}', "ss"),
    ('\u{138}', "k"),
    ('\u{185}', "b"),
    ('\u{1A8}', "2"),
    ('\u{21D}', "3"),
    ('\u{25C}', "3"),
    ('\u{262}', "g"),
    ('\u{274}', "n"),
    ('\u{280}', "r"),
    ('\u{288}', "t"),
    ('\u{289}', "u"),
    ('\u{28D}', "rn"),
    ('\u{293}', "3"),
    ('\u{299}', "b"),
    ('\u{29C}', "h"),
    ('\u{29D}', "j"),
    ('\u{29F}', "l"),
    ('\u{3B6}', "z"),
    ('\u{3BC}', "rn"),
    ('\u{3C7}', "x"),
    ('\u{3DD}', "f"),
    ('\u{3FB}', "rn"),
    ('\u{3FC}', "f"),
    ('\u{44E}', "lo"),
    ('\u{4B3}', "x"),
    ('\u{57F}', "s"),
    ('\u{10D5}', "3"),
    ('\u{10F7}', "2"),
    ('\u{13FA}', "h"),
    ('\u{1C80}', "b"),
    ('\u{1C85}', "t"),
    ('\u{1C87}', "b"),
    ('\u{1D00}', "a"),
    ('\u{1D05}', "d"),
    ('\u{1D07}', "e"),
    ('\u{1D0A}', "j"),
    ('\u{1D18}', "p"),
    ('\u{1D1B}', "t"),
    ('\u{1E9F}', "6"),
    ('\u{1EFB}', "ll"),
    ('\u{2C66}', "t"),
    ('\u{2C68}', "h"),
    ('\u{2C6A}', "k"),
    ('\u{2D19}', "h"),
    ('\u{2D1D}', "s"),
    ('\u{2D27}', "2"),
    ('\u{A741}', "k"),
    ('\u{A75B}', "2"),
    ('\u{A793}', "e"),
    ('\u{AB79}', "y"),
    ('\u{AB8D}', "y"),
    ('\u{AB8F}', "t"),
    ('\u{AB92}', "h"),
    ('\u{AB97}', "w"),
    ('\u{ABA5}', "s"),
    ('\u{ABB7}', "d"),
    ('\u{104DC}', "r"),
    ('\u{104EC}', "p"),
    ('\u{104F5}', "h"),
    ('\u{104FA}', "7"),
    ('\u{10CE5}', "l"),
    ('\u{118C9}', "z"),
    ('\u{118CF}', "4"),
    ('\u{118D2}', "l"),
    ('\u{118DB}', "5"),
    ('\u{16EC5}', "l"),
];

/// One round of [`identity_key`]'s folding of an already skeletonised text `s`:
/// characters no name may hold dropped (invisible, format and control characters, see
/// [`refused_char`]), Unicode NFKC, lower case, the UTS #39 skeleton again, `case_merge`
/// (see [`CASE_MERGE`]), [`EXTRA_LOOK_ALIKES`], look-alike full stops as `.` and colons
/// as `:`, runs of spaces as one, no spaces at either end or around `:`.
fn identity_round(s: &str, case_merge: &[(char, &str)]) -> String {
    use unicode_normalization::UnicodeNormalization;
    let visible: String = s.chars().filter(|c| refused_char(*c).is_none()).collect();
    let lower: String = visible.nfkc().collect::<String>().to_lowercase();
    let mut out = String::with_capacity(lower.len());
    for c in unicode_security::skeleton(&lower) {
        match case_merge.binary_search_by_key(&c, |(k, _)| *k) {
            Ok(i) => out.push_str(case_merge[i].1),
            Err(_) if DOT_LOOK_ALIKES.contains(&c) => out.push('.'),
            Err(_) if dash_like(c) => out.push('-'),
            Err(_) if COLON_LOOK_ALIKES.contains(&c) => out.push(':'),
            Err(_) => out.push(c),
        }
    }
    let mut out = without_alphabet_marks(&out);
    for (from, to) in EXTRA_LOOK_ALIKES {
        out = out.replace(from, to);
    }
    spaces_normal(&out)
}

/// `s` in Unicode NFD with every nonspacing mark (Mn) on a Latin, Greek or Cyrillic
/// letter (or on a space, digit or ASCII punctuation) dropped: `admiṇ`, `systém`, `ADMİN`
/// and `Admiń` read as `admin`, `system`, `ADMIN` and `Admin` (trial33 LOW-A: a mark with
/// a precomposed form escaped the look-alike rules, since the skeleton keeps diacritics
/// and NFC took it out of reach of [`stray_latin_mark`]). Marks are the spelling of
/// other scripts' letters (Devanagari vowel signs, Hebrew points, …) and stay there.
/// For comparison only.
fn without_alphabet_marks(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    use unicode_properties::{GeneralCategory as G, UnicodeGeneralCategory};
    // Latin, IPA, Greek, Cyrillic and their extensions (below Armenian; phonetic
    // extensions, Latin Extended Additional, Greek Extended; Latin Extended C to E).
    let alphabet = |c: char| {
        let u = u32::from(c);
        u < 0x0530
            || (0x1D00..=0x1FFF).contains(&u)
            || (0x2C60..=0x2C7F).contains(&u)
            || (0xA640..=0xA69F).contains(&u)
            || (0xA720..=0xA7FF).contains(&u)
            || (0xAB30..=0xAB6F).contains(&u)
    };
    let mut out = String::with_capacity(s.len());
    let mut base: Option<char> = None;
    for c in s.nfd() {
        if c.general_category() == G::NonspacingMark {
            if base.is_some_and(alphabet) {
                continue;
            }
        } else {
            base = Some(c);
        }
        out.push(c);
    }
    out
}

/// Whether `c`, a skeleton character, reads as a dash: any dash punctuation (category
/// Pd: the Armenian, Hebrew, Mongolian, two-em and wavy dashes the confusable data keeps
/// as they are), and `ー` (U+30FC), the prototype confusables.txt gives the em dash, the
/// horizontal bar, the full-width hyphen-minus, box-drawing lines and CJK `一`. The dashes
/// whose prototype is no dash (`᐀` and `゠` read as `=`, `〜` as `~`, `︱` as `l`) keep
/// that reading.
fn dash_like(c: char) -> bool {
    use unicode_properties::{GeneralCategory as G, UnicodeGeneralCategory};
    c == '\u{30FC}' || c.general_category() == G::DashPunctuation
}

/// Runs of spaces as one, none at either end, none around `:` (`agent :x` is `agent:x`).
fn spaces_normal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split(' ').filter(|w| !w.is_empty()) {
        if !out.is_empty() && !out.ends_with(':') && !word.starts_with(':') {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// [`identity_key`] with the given case-merge table (the test deriving [`CASE_MERGE`]
/// runs it with none).
fn identity_key_with(s: &str, case_merge: &[(char, &str)]) -> String {
    let mut cur: String = unicode_security::skeleton(s).collect();
    // Each round only folds further; a handful reach the fixed point (the bound is a
    // guard, never reached by the test of every code point).
    for _ in 0..8 {
        let next = identity_round(&cur, case_merge);
        if next == cur {
            break;
        }
        cur = next;
    }
    cur
}

/// The one form every identity a person reads is compared in for look-alikes — host
/// labels, enrollment-token labels, rule trigger and protected labels, the server's own
/// `Quarantine` label ([`label_key`]), API token names ([`token_name_key`]) and
/// hostnames ([`hostname_key`]): two of them with one key look alike.
///
/// The UTS #39 confusable skeleton (`unicode-security`'s `skeleton`, confusables.txt)
/// of the whole text as given — before any case folding or normalisation, so a
/// character whose compatibility or lower-case form is no look-alike of what it shows
/// (`ϲ` U+03F2 reads as `c`, its NFKC form `ς` does not; `I` reads as `l`, `i` does not)
/// keeps its reading — then, until nothing changes, `identity_round`: NFKC, lower case
/// and the skeleton again (Greek `ΤΟΜ` is `TOM` is `tom`), the case-merge table (`Iab`,
/// `iab` and `lab` share a key), a few look-alikes confusables.txt lacks (`cl` and `d`,
/// `ɾ` and `r`), invisible characters dropped, spaces normalised. So `key(x) ==
/// key(skeleton(x))` for every text, hence two texts confusables.txt calls confusable
/// (same skeleton) share a key — every dash of category Pd that confusables.txt maps to
/// `-` (U+2010, U+2011, U+2012, U+2013, U+2212, U+FE63, U+FF0D …) reads as `-`.
///
/// For comparison only (`m` and `rn`, `l` and `1`, `0` and `o` share it); names are
/// stored and shown as given. Deterministic and idempotent; keys stored in the database
/// (`hosts.hostname_key`, `api_tokens.name_key`) are recomputed at start when this
/// folding changes, label keys are computed when compared.
pub fn identity_key(s: &str) -> String {
    identity_key_with(s, &CASE_MERGE)
}

/// [`reserved_token_prefix`]'s folding of an already normalised name: skeleton, then lower case,
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
    // Diacritics dropped (trial33 LOW-A: `systém` read as `system`).
    token_name_normal(&without_alphabet_marks(&folded))
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
        views
            .iter()
            .any(|v| v.starts_with(&pk) || v.starts_with(p) || reads_as_prefix(v, &pk) || reads_as_prefix(v, p))
    })
}

/// Characters a reserved prefix is compared without ([`reads_as_prefix`]): the
/// punctuation token names may hold ([`TOKEN_NAME_PUNCTUATION`]), which a reader takes
/// for the `:` or the space of `agent:`, `rule:` and `cordon server`.
const PREFIX_SEPARATORS: &str = " -_.@:";

/// Whether the folded name `view` reads as the reserved `prefix` once the separators
/// ([`PREFIX_SEPARATORS`]) are left out of both (trial25 F10: `cordon-server init`,
/// `s y s t e m`, `Cordon_server`, `rule-x`, `agent.web1`, `agent@web1` passed): the
/// prefix's letters, in order, with any separators between and before them; for a
/// prefix ending in `:` (`agent:`, `rule:`) one separator must follow them, so
/// `agent-web1` reads as `agent:web1` while `agentless` and `rules-team` do not. Pure.
fn reads_as_prefix(view: &str, prefix: &str) -> bool {
    let sep = |c: char| PREFIX_SEPARATORS.contains(c);
    let needs_sep = prefix.ends_with(':');
    let mut stem = prefix.chars().filter(|c| !sep(*c)).peekable();
    let mut rest = view.chars();
    while stem.peek().is_some() {
        match rest.next() {
            Some(c) if sep(c) => continue,
            Some(c) if Some(&c) == stem.peek() => {
                stem.next();
            }
            _ => return false,
        }
    }
    !needs_sep || rest.next().is_some_and(sep)
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
/// by name (issue 17, trial5, trial13, trial19): [`identity_key`] — the key of labels and
/// token names: the UTS #39 confusable skeleton, case, NFKC (full-width `ｈｏｓｔ１` is
/// `host1`), invisible characters dropped (hosts enrolled before [`hostname`] refused
/// them may have them), the full stops of [`DOT_LOOK_ALIKES`] as `.`, `ẞ`, `ß` and `ss`
/// alike, Cyrillic `dЬ1` and Greek `dϲ1` as `db1` and `dc1`, `l`/`1` and `rn`/`m`
/// alike — with trailing dots dropped (`host1.` is `host1`). For comparison only: the
/// name is stored and shown as given.
pub fn hostname_key(name: &str) -> String {
    let once = |n: &str| {
        identity_key(&ace_labels_as_unicode(n))
            .trim_end_matches(['.', ' '])
            .to_string()
    };
    // The key of a label that is no valid ACE can spell one (the skeleton reads `0` as
    // `o`: `xn--a-bc00b` keys as `xn--a-bcoob`, which decodes): read the key again until
    // it holds still, so a key is its own key (a few rounds: each decodes what the one
    // before spelled).
    let mut key = once(name);
    for _ in 0..4 {
        let next = once(&key);
        if next == key {
            break;
        }
        key = next;
    }
    key
}

/// `name` with each IDNA ACE label (`xn--…`, any case) as UTS #46 ToUnicode reads it
/// (`idna::domain_to_unicode`: Punycode decoded, mapped and checked), so the ACE spelling
/// a DNS log or an EDR reports (`xn--bcher-kva`, `XN--BCHER-KVA.example`) and the Unicode
/// one (`bücher`) are one hostname (trial25 F1). Labels are split at `.` and the full
/// stops of [`DOT_LOOK_ALIKES`] (IDNA's separators); a label that does not decode to a
/// valid one is kept as written. Every other label is left alone (the identity key
/// folds case, width and look-alikes afterwards). Pure.
fn ace_labels_as_unicode(name: &str) -> String {
    let mapped: String = name
        .chars()
        .map(|c| if DOT_LOOK_ALIKES.contains(&c) { '.' } else { c })
        .collect();
    mapped
        .split('.')
        .map(|label| {
            // Full-width `ｘｎ--` is ACE too once NFKC has read it (as IDNA maps it).
            use unicode_normalization::UnicodeNormalization;
            let nfkc: String = label.nfkc().collect();
            // An ACE label spelled with look-alikes of its ASCII letters (`xn--c3с`,
            // Cyrillic `с`) is the ACE label they read as: each non-ASCII character whose
            // identity key (confusable skeleton, case merged) is one ASCII letter or digit is read as it (ASCII is
            // left alone: its skeleton would turn the Punycode digits `0`/`1` into
            // letters), so both spellings decode to one label (shape18's proptest:
            // `a.xn--c3c` read `a.ช`, `a.xn--c3с` stayed as written).
            let plain: String = nfkc
                .chars()
                .map(|c| {
                    if c.is_ascii() {
                        return c;
                    }
                    let mut sk = identity_key(&c.to_string());
                    match (sk.pop(), sk.is_empty()) {
                        (Some(a), true) if a.is_ascii_alphanumeric() || a == '-' => a,
                        _ => c,
                    }
                })
                .collect();
            let ace = plain.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("xn--"));
            if !ace {
                return label.to_string();
            }
            match idna::domain_to_unicode(&plain) {
                (unicode, Ok(())) if !unicode.is_empty() && !unicode.contains('.') => unicode,
                _ => label.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(".")
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
    if let Err(problem) = hostname_rule(name) {
        return Err(ApiError::invalid(format!(
            "hostname {} is refused: {problem}",
            quoted(name)
        )));
    }
    Ok(name.to_string())
}

/// The hostname rule ([`cordon_proto::hostname::check`]: RFC 1123 labels plus `_` and
/// letters of any script; never an address, a host id or the console's `NAME (shortid)`),
/// then the same address and id readings of the name's Latin look-alike: the UTS #39
/// skeleton of its NFKC form with `O`/`o` read as `0` and `l`/`I` as `1`, so Cyrillic
/// `82Оcb233` or `1О.9.9.9` are refused like `820cb233` and `10.9.9.9`. Pure. Enrollment
/// refuses a name that breaks it; hosts enrolled before are flagged `invalid_hostname`.
///
/// # Errors
/// The first problem found.
pub fn hostname_rule(name: &str) -> Result<(), cordon_proto::hostname::HostnameProblem> {
    use cordon_proto::hostname::{as_address, check, looks_like_host_id, HostnameProblem};
    check(name)?;
    let latin = latin_reading(name);
    if latin.chars().filter(|c| *c == '.').count() == 3 {
        if let Some(std::net::IpAddr::V4(ip)) = as_address(&latin) {
            return Err(HostnameProblem::AddressLookAlike(ip));
        }
    }
    if looks_like_host_id(&latin) {
        return Err(HostnameProblem::HostId);
    }
    Ok(())
}

/// `name` as Latin letters and digits read it: the UTS #39 skeleton of its NFKC form,
/// `O`/`o` as `0`, `l`/`I` as `1`.
fn latin_reading(name: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    unicode_security::skeleton(&name.nfkc().collect::<String>())
        .map(|c| match c {
            'O' | 'o' => '0',
            'l' | 'I' => '1',
            c => c,
        })
        .collect()
}

/// The host id (or its start) a hostname refused as [`HostnameProblem::HostId`] reads
/// as: its Latin reading in lower case, a trailing dot dropped (`820CB233` →
/// `820cb233`, Cyrillic `82Оcb233` → `820cb233`).
///
/// [`HostnameProblem::HostId`]: cordon_proto::hostname::HostnameProblem::HostId
pub fn hostname_id_reading(name: &str) -> String {
    let plain: String = name
        .chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(u32::from(c) - 0xFEE0).unwrap_or(c),
            c => c,
        })
        .collect();
    let l = if cordon_proto::hostname::looks_like_host_id(&plain) {
        plain
    } else {
        latin_reading(name)
    };
    l.trim_end_matches('.').to_ascii_lowercase()
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
            let ahead_secs = (ms - now_ms()) / 1000;
            cordon_proto::check_expiry_secs(
                &format!("expires_at {t}"),
                ahead_secs.saturating_sub(cordon_proto::EXPIRY_CLOCK_LEEWAY_SECS),
            )
            .map_err(ApiError::invalid)?;
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

    /// trial33 LOW-A: a mark with a precomposed form (`admiṇ` U+1E47, `systém`, `ADMİN`
    /// U+0130, `Admiń`) passed the look-alike rules that refuse the same mark written as
    /// combining: the skeleton keeps diacritics. They read as the plain names for the
    /// duplicate and reserved checks; other scripts' marks (Devanagari's vowel sign) stay.
    #[test]
    fn precomposed_diacritics_read_as_the_plain_letters() {
        use super::{identity_key, reserved_token_prefix, token_name_key};
        for (marked, plain) in [
            ("admi\u{1E47}", "admin"),
            ("Admi\u{144}", "admin"),
            ("ADM\u{130}N", "admin"),
            ("syst\u{E9}m-ops", "system-ops"),
            ("b\u{FC}cher", "bucher"),
            ("\u{1F00}lpha", "\u{3B1}lpha"),
        ] {
            assert_eq!(token_name_key(marked), token_name_key(plain), "{marked:?}");
        }
        for name in [
            "syst\u{E9}m",
            "SYST\u{C9}M-bot",
            "r\u{FC}le:x",
            "\u{E9}nrollment",
            "\u{E0}gent:web1",
        ] {
            assert!(reserved_token_prefix(name).is_some(), "{name:?}");
        }
        // Marks that spell another script's letters keep them apart.
        assert_ne!(identity_key("\u{915}\u{93F}"), identity_key("\u{915}"));
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
        // `agent-smith` was kept here; it reads as the agent `agent:smith` (trial25 F10) and
        // is reserved now. A name merely starting with the letters is kept.
        assert!(token_name("agent-smith").is_err());
        assert_eq!(token_name("agentsmith").unwrap(), "agentsmith");
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
        // Separators between or after the reserved words fool no one (trial25 F10).
        for name in [
            "Cordon-Server",
            "cordon-server init",
            "Cordon_server",
            "cordon.server x",
            "sys tem",
            "s y s t e m",
            "S-Y-S-T-E-M",
            "agent-web1",
            "agent_web1",
            "agent.web1",
            "agent@web1",
            "a g e n t-web1",
            "rule-x",
            "rule.x",
            "Rule_x",
            "enroll-ment",
        ] {
            assert!(reserved_token_prefix(name).is_some(), "{name:?}");
            let e = token_name(name).unwrap_err().to_string();
            assert!(e.contains("reserved"), "{name:?}: {e}");
        }
        // Words that merely start like them stay names.
        for good in [
            "agentless",
            "rules-team",
            "ruler",
            "soc-system-team",
            "agenda",
            "cordon-ops",
            "rule",
        ] {
            assert_eq!(reserved_token_prefix(good), None, "{good:?}");
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

    /// trial16: a database poisoned before the label checks (look-alikes, a spaced or
    /// bidi label) was not flagged anywhere.
    #[test]
    fn labels_stored_before_the_checks_are_flagged() {
        let known: Vec<String> = [
            "web",
            "WEB",
            "w\u{200b}eb",
            "db",
            "ir hold",
            "Quarantine",
            "Qu\u{430}rantine",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let flagged = poisoned_labels(&known);
        let all = flagged.join("\n");
        assert!(
            all.contains("look-alike labels:") && all.contains("\"WEB\"") && all.contains("\"web\""),
            "{all}"
        );
        assert!(all.contains("\"Qu\\u{430}rantine\""), "{all}");
        assert!(all.contains("label \"ir hold\" would be refused today"), "{all}");
        assert!(!all.contains("\"db\""), "{all}");
        let clean: Vec<String> = ["web", "db", "Quarantine"].iter().map(|s| s.to_string()).collect();
        assert!(poisoned_labels(&clean).is_empty());
    }

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

    /// The fault kind (trial18 MED-1, trial19 LOW-k): a hostname that reads as an address
    /// or a host id through letters of other scripts (Cyrillic `О`, `с`, `е`, `а`) is
    /// refused like the ASCII one; what it reads as is the id the flag looks up.
    #[test]
    fn look_alikes_of_addresses_and_host_ids_break_the_hostname_rule() {
        use cordon_proto::hostname::HostnameProblem as P;
        assert_eq!(
            hostname_rule("1\u{41E}.9.9.\u{41E}"),
            Err(P::AddressLookAlike("10.9.9.0".parse().unwrap()))
        );
        assert_eq!(hostname_rule("82\u{41E}\u{441}b233"), Err(P::HostId));
        assert_eq!(hostname_id_reading("82\u{41E}\u{441}b233"), "820cb233");
        assert_eq!(hostname_rule("\u{435}\u{430}deadbe"), Err(P::HostId));
        assert_eq!(hostname_id_reading("820CB233."), "820cb233");
        for name in ["web1 (820cb233)", "10.9.9.9", "820cb233"] {
            let e = hostname(name).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
            assert!(e.detail.contains("is refused"), "{}", e.detail);
        }
        for ok in [
            "web1",
            "db-primary.example.com",
            "\u{441}\u{435}\u{440}\u{432}\u{435}\u{440}1",
            "srv.lol",
        ] {
            assert_eq!(hostname_rule(ok), Ok(()), "{ok}");
        }
    }
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
        // trial25 F1: an IDNA ACE label is the Unicode label it encodes.
        for (ace, unicode) in [
            ("xn--bcher-kva", "b\u{FC}cher"),
            ("XN--BCHER-KVA", "B\u{DC}CHER"),
            ("xn--bcher-kva.example", "b\u{FC}cher.example"),
            ("web1.xn--bcher-kva.example.", "web1.b\u{FC}cher.example"),
            ("\u{FF58}\u{FF4E}--bcher-kva", "b\u{FC}cher"),
            ("xn--bcher-kva\u{3002}example", "b\u{FC}cher.example"),
            // Cyrillic `аррӏе` in ACE form is a look-alike of `apple` like its Unicode form.
            ("xn--80ak6aa92e", "apple"),
            // An ACE label written with a look-alike letter is the label it reads as
            // (shape18's proptest case: Cyrillic `с` in `xn--c3с`).
            ("a.xn--c3\u{441}", "a.xn--c3c"),
            ("\u{445}n--bcher-kva", "b\u{FC}cher"),
        ] {
            assert_eq!(hostname_key(ace), hostname_key(unicode), "{ace:?} vs {unicode:?}");
        }
        // A key that spells a valid ACE label is read again: a key is its own key
        // (proptest case: `xn--a-bc00b` keyed as `xn--a-bcoob`, which decodes).
        let k = hostname_key("a.xn--a-bc00b");
        assert_eq!(hostname_key(&k), k);
        // Not a valid ACE label: compared as written.
        assert_eq!(hostname_key("xn--"), "xn--");
        assert_ne!(hostname_key("xn--bcher-kvb"), hostname_key("b\u{FC}cher"));
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

#[cfg(test)]
mod identity_key_tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// Whether `c` has a case mapping worth comparing (lower, upper or title case).
    fn cased(c: char) -> bool {
        use unicode_properties::{GeneralCategory as G, UnicodeGeneralCategory};
        c.is_lowercase() || c.is_uppercase() || c.general_category() == G::TitlecaseLetter
    }

    fn letter(c: char) -> bool {
        use unicode_properties::{GeneralCategoryGroup as Grp, UnicodeGeneralCategory};
        c.general_category_group() == Grp::Letter
    }

    /// [`CASE_MERGE`] as the skeleton tables give it: for every cased code point whose
    /// capital's key (without the table) is ASCII letters and digits and whose small
    /// form's key is one other character, that character → the capital's key.
    fn derive_case_merge() -> BTreeMap<char, String> {
        let mut m = BTreeMap::new();
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32).filter(|c| cased(*c)) {
            let (up, lo): (String, String) = (c.to_uppercase().collect(), c.to_lowercase().collect());
            let (ku, kl) = (identity_key_with(&up, &[]), identity_key_with(&lo, &[]));
            if ku == kl || !ku.chars().all(|a| a.is_ascii_alphanumeric()) {
                continue;
            }
            let mut it = kl.chars();
            if let (Some(x), None) = (it.next(), it.next()) {
                // A letter (not a combining mark: U+0345's skeleton is U+0328, which
                // must not read as `l` under every `ą`), non-ASCII unless the case pair is
                // ASCII itself (`I`/`i`: an ASCII letter is never remapped for another
                // script's case pair — `o` would become `6`).
                if letter(x) && (!x.is_ascii() || c.is_ascii()) {
                    m.entry(x).or_insert(ku);
                }
            }
        }
        m
    }

    #[test]
    fn the_case_merge_table_is_what_the_confusable_data_gives() {
        let derived = derive_case_merge();
        let kept: BTreeMap<char, String> = CASE_MERGE.iter().map(|(c, s)| (*c, s.to_string())).collect();
        let table: String = derived
            .iter()
            .map(|(c, s)| format!("    ('\\u{{{:X}}}', {s:?}),\n", u32::from(*c)))
            .collect();
        assert_eq!(
            kept,
            derived,
            "CASE_MERGE is out of date; it is now ({} entries):\n{table}",
            derived.len()
        );
        assert!(
            CASE_MERGE.windows(2).all(|w| w[0].0 < w[1].0),
            "sorted for binary search"
        );
    }

    /// trial19 HIGH-1: the look-alikes the old hand-written folds let through — Unicode
    /// dashes grouped apart from ASCII `-` (non-ASCII punctuation was read as `:` before
    /// the skeleton), `ϲ` U+03F2 (NFKC made it `ς` before the skeleton), Cyrillic `І`
    /// (read as a capital `I`, lower-cased to `i`, not as `l`), `℮` (a symbol, read as
    /// `:`), `ɾ` and `cl` (not in confusables.txt) — share the key of what they show.
    #[test]
    fn dash_and_letter_look_alikes_share_one_key_for_every_identity() {
        for (real, fake) in [
            ("cordon-protected", "cordon\u{2010}protected"),
            ("cordon-protected", "cordon\u{2011}protected"),
            ("cordon-protected", "cordon\u{2012}protected"),
            ("cordon-protected", "cordon\u{2013}protected"),
            ("cordon-protected", "cordon\u{2212}protected"),
            ("cordon-protected", "cordon\u{FE63}protected"),
            ("cordon-protected", "cordon\u{FF0D}protected"),
            ("ir-hold", "ir\u{2013}hold"),
            ("dom-ctrl", "dom\u{2010}ctrl"),
            ("cordon-protected", "\u{3F2}ordon-protected"),
            ("lab", "\u{406}ab"),
            ("lab", "Iab"),
            ("Quarantine", "Quarantin\u{212E}"),
            ("Quarantine", "Qua\u{27E}antine"),
            ("Quarantine", "quarantine"),
            ("cordon-protected", "cordon-protectecl"),
            ("dc1", "d\u{3F2}1"),
            ("web", "\u{FF57}\u{FF45}\u{FF42}"),
            ("web", "w\u{435}b"),
            ("web", "w\u{200B}eb"),
        ] {
            assert_eq!(label_key(real), label_key(fake), "label {real:?} vs {fake:?}");
            assert_eq!(token_name_key(real), token_name_key(fake), "token {real:?} vs {fake:?}");
            assert_eq!(hostname_key(real), hostname_key(fake), "host {real:?} vs {fake:?}");
        }
        assert_ne!(label_key("cordon-protected"), label_key("cordon_protected"));
        assert_ne!(label_key("web"), label_key("wab"));
        assert_ne!(label_key("ir-hold"), label_key("irhold"));
    }

    /// Every dash of category Pd has the key of `-` (with the marks its prototype
    /// carries: `⸚` is `-` with a diaeresis), whatever its neighbours (trial19: U+2010–
    /// U+2013 and U+2212 formed a class of their own), except the few confusables.txt
    /// reads as `=`, `~` or `l`.
    #[test]
    fn every_unicode_dash_reads_as_a_hyphen() {
        use unicode_properties::{GeneralCategory as G, UnicodeGeneralCategory};
        let mut n = 0;
        for d in (0..=0x10FFFFu32)
            .filter_map(char::from_u32)
            .filter(|c| c.general_category() == G::DashPunctuation)
        {
            let proto: String = unicode_security::skeleton(&d.to_string()).collect();
            let fake = format!("cordon{d}protected");
            if ["=", "~", "l"].contains(&proto.as_str()) {
                // Read as what confusables.txt says it shows (`᐀` as `=`).
                assert_eq!(label_key(&fake), label_key(&format!("cordon{proto}protected")));
                continue;
            }
            n += 1;
            let want = label_key(&format!(
                "cordon-{}protected",
                &proto[proto.char_indices().nth(1).map_or(proto.len(), |(i, _)| i)..]
            ));
            assert_eq!(label_key(&fake), want, "U+{:04X} ({proto:?})", u32::from(d));
        }
        assert!(n >= 20, "only {n} dashes read as '-'");
        for d in ['\u{2014}', '\u{2015}', '\u{FF0D}', '\u{058A}', '\u{2E3A}'] {
            assert_eq!(identity_key(&d.to_string()), "-", "U+{:04X}", u32::from(d));
        }
        for d in ['\u{2010}', '\u{2011}', '\u{2012}', '\u{2013}', '\u{2212}'] {
            assert_eq!(identity_key(&d.to_string()), "-", "U+{:04X}", u32::from(d));
        }
    }

    /// Every code point shares its key with its UTS #39 skeleton, so any two texts that
    /// confusables.txt calls confusable (one skeleton) share a key; and the key is
    /// idempotent. Over all of Unicode, not a sample: the pairs are the crate's own data.
    #[test]
    fn every_code_point_shares_its_key_with_its_confusable_prototype() {
        use unicode_properties::{GeneralCategory as G, UnicodeGeneralCategory};
        let mut bad = Vec::new();
        // Unassigned and private-use code points have no prototype (nine in ten).
        let assigned = |c: &char| !matches!(c.general_category(), G::Unassigned | G::PrivateUse);
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32).filter(assigned) {
            let s = c.to_string();
            let proto: String = unicode_security::skeleton(&s).collect();
            if proto == s {
                continue;
            }
            let k = identity_key(&s);
            if identity_key(&proto) != k {
                bad.push(format!(
                    "U+{:04X} {k:?} vs prototype {proto:?} {:?}",
                    u32::from(c),
                    identity_key(&proto)
                ));
            }
            if identity_key(&k) != k {
                bad.push(format!("U+{:04X} key {k:?} not idempotent", u32::from(c)));
            }
        }
        assert!(
            bad.is_empty(),
            "{} code points: {:?}",
            bad.len(),
            &bad[..bad.len().min(20)]
        );
    }

    /// A name's key does not depend on its case where both cases read as Latin letters.
    #[test]
    fn ascii_case_does_not_change_the_key() {
        for w in ["Iab", "cordon-protected", "Quarantine", "WEB1", "dc1", "ILL", "mail"] {
            assert_eq!(
                identity_key(&w.to_lowercase()),
                identity_key(&w.to_uppercase()),
                "{w:?}"
            );
        }
    }

    /// A Latin letter, digit, `-` or `.`, or one of its confusable look-alikes (code
    /// points whose skeleton is the skeleton of that character or of its capital), in
    /// either case. Built once from the crate's confusable data.
    fn look_alike_of(a: char) -> &'static [char] {
        static TABLE: std::sync::OnceLock<BTreeMap<char, Vec<char>>> = std::sync::OnceLock::new();
        let t = TABLE.get_or_init(|| {
            let sk = |c: char| unicode_security::skeleton(&c.to_string()).collect::<String>();
            let plain: Vec<char> = ('a'..='z').chain('0'..='9').chain(['-', '.']).collect();
            let mut by_proto: BTreeMap<String, Vec<char>> = BTreeMap::new();
            for p in &plain {
                for q in [*p, p.to_ascii_uppercase()] {
                    by_proto.entry(sk(q)).or_default().push(*p);
                }
            }
            let mut t: BTreeMap<char, Vec<char>> =
                plain.iter().map(|p| (*p, vec![*p, p.to_ascii_uppercase()])).collect();
            for c in (0x80..=0x1FFFFu32).filter_map(char::from_u32) {
                if let Some(ps) = by_proto.get(&sk(c)) {
                    for p in ps {
                        t.entry(*p).or_default().push(c);
                    }
                }
            }
            t
        });
        t.get(&a).map(Vec::as_slice).unwrap_or(&[])
    }

    fn disguised_pair() -> impl Strategy<Value = (String, String)> {
        proptest::collection::vec(
            (
                prop_oneof![
                    proptest::char::range('a', 'z'),
                    proptest::char::range('0', '9'),
                    Just('-'),
                    Just('.')
                ],
                any::<u16>(),
            ),
            1..16,
        )
        .prop_map(|v| {
            let plain: String = v.iter().map(|(c, _)| *c).collect();
            let fake: String = v
                .iter()
                .map(|(c, pick)| {
                    // Only look-alikes that are not combining marks: UTS #39's skeleton
                    // starts with NFD, whose canonical reordering sorts adjacent combining
                    // marks by combining class, so two mark look-alikes in a row (U+1D16D
                    // for `.`, U+1BF3 for `-`) read as `-.`, not `.-` — such a pair is not
                    // confusable with the plain name as a whole (found by this test).
                    let alts: Vec<char> = look_alike_of(*c)
                        .iter()
                        .copied()
                        .filter(|a| unicode_normalization::char::canonical_combining_class(*a) == 0)
                        .collect();
                    alts.get(usize::from(*pick) % alts.len().max(1)).copied().unwrap_or(*c)
                })
                .collect();
            (plain, fake)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        /// Any name with letters, digits and dashes swapped for look-alikes drawn from
        /// the confusable data (and any case) has the key of the plain name: as a label,
        /// a token name and a hostname.
        #[test]
        fn a_name_with_confusable_characters_has_the_key_of_the_plain_name((plain, fake) in disguised_pair()) {
            prop_assert_eq!(label_key(&plain), label_key(&fake), "{:?} vs {:?}", plain, fake);
            prop_assert_eq!(hostname_key(&plain), hostname_key(&fake), "{:?} vs {:?}", plain, fake);
            prop_assert_eq!(token_name_key(&plain), token_name_key(&fake));
        }
    }
}
