//! Test support for the layering guards of the server's crates (issue 13: REST, console
//! and background tasks reach data only through the service layer): the one source scan
//! that finds where Rust code uses a store handle. Built for this crate's tests and for
//! crates that enable the `test-util` feature in their dev-dependencies (the console's
//! and the server's guards); not in a normal build.

/// One place Rust source uses a store ([`store_uses`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreUse {
    /// Line number, from 1.
    pub line: usize,
    /// That line, trimmed.
    pub text: String,
    /// A field read: `.store` (`st.store`, `&state.store`, also `st\n    .store`).
    pub field: bool,
    /// The method called on it, when a `.` follows (`store.rules()`, also across a line
    /// break): `rules`.
    pub method: Option<String>,
}

/// Where `code` (Rust source) uses a store: the identifier `store` with a `.` before it
/// (a field read) or after it (a method called on a store handle). Comment lines are
/// skipped (blanked, so line numbers hold); paths (`store::X`), other identifiers that
/// contain the word (`restore`, `store_dir`, `no-store` in a string is `store` with `-`
/// before it and nothing after) and the type `Store` are not uses. Pure.
pub fn store_uses(code: &str) -> Vec<StoreUse> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let code: String = code
        .lines()
        .map(|l| if l.trim_start().starts_with("//") { "" } else { l })
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(i) = code[from..].find("store").map(|i| i + from) {
        from = i + "store".len();
        if code[..i].chars().next_back().is_some_and(ident) || code[from..].starts_with(ident) {
            continue;
        }
        let field = code[..i].trim_end().ends_with('.');
        let after = code[from..].trim_start();
        let method = after
            .strip_prefix('.')
            .map(|rest| rest.chars().take_while(|c| ident(*c)).collect::<String>());
        if field || method.is_some() {
            let line = code[..i].matches('\n').count();
            found.push(StoreUse {
                line: line + 1,
                text: code.lines().nth(line).unwrap_or("").trim().to_string(),
                field,
                method,
            });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_calls_are_found_and_other_words_are_not() {
        let code =
            "let a = st.store.rules();\n// st.store.x()\nlet b = store\n    .hosts();\nlet c = st\n    .store;\n\
                    let d = store.clone();\nrestore.x(); store_dir.y(); Store::connect(); store::Tx; \"no-store\"";
        let uses = store_uses(code);
        let got: Vec<(usize, bool, Option<&str>)> =
            uses.iter().map(|u| (u.line, u.field, u.method.as_deref())).collect();
        assert_eq!(
            got,
            [
                (1, true, Some("rules")),
                (3, false, Some("hosts")),
                (6, true, None),
                (7, false, Some("clone"))
            ]
        );
        assert_eq!(uses[0].text, "let a = st.store.rules();");
    }
}
