//! Property tests of the `--allow` spec parser.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report
use cordon_policy::AllowSpec;
use proptest::prelude::*;

proptest! {
    /// Any string either parses or is rejected with an error; never a panic.
    #[test]
    fn any_string_parses_or_errors(s in ".{0,80}") {
        let _ = AllowSpec::parse(&s);
        let _ = AllowSpec::parse_server(&s);
    }

    /// Strings shaped like specs exercise the interesting branches.
    #[test]
    fn spec_shaped_strings_never_panic(
        scheme in "(tcp|udp|http|https|ftp|)",
        host in "(\\[?[0-9a-fA-F:.]{0,40}\\]?|[a-z0-9.-]{0,30})",
        port in "(:[0-9]{0,7})?",
        tail in "(/[a-z]*)?",
    ) {
        let s = if scheme.is_empty() { format!("{host}{port}{tail}") } else { format!("{scheme}://{host}{port}{tail}") };
        if let Ok(spec) = AllowSpec::parse(&s) {
            // Whatever parses renders back to a spec that parses to the same thing.
            prop_assert_eq!(AllowSpec::parse(&spec.to_string()).unwrap(), spec);
        }
    }
}
