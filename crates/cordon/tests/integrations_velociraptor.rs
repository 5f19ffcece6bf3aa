//! The shipped Velociraptor artifacts (`integrations/velociraptor/*.yaml`) checked the way
//! Velociraptor loads them (`services/repository/repository.go` `LoadYaml`/`LoadProto`:
//! strict YAML into the `Artifact` proto of `artifacts/proto/artifact.proto`, the type
//! through `paths/artifact_modes/modes.go` `ModeNameToMode`, permissions through
//! `acls/acls.go`, every query through `vfilter.MultiParse`, "all queries in a source must
//! be LET queries, except for the final one").
//!
//! The VQL check here is a small scanner, not vfilter: it enforces the rules of vfilter's
//! grammar (`vfilter.go`, struct tags of `_Args` and `_MemberExpression`) that broke the
//! artifacts before: a `[` opens a list only as a named function argument (`name=[...]`)
//! or an index after a value; anything else (`LET X = [a, b]`, `then=[...]` is fine) is a
//! parse error there. The artifacts were also parsed and evaluated with the real vfilter
//! (see `integrations/velociraptor/vqlcheck/`); `testdata/` holds what that evaluation
//! produced, which the last tests feed to `cordon` and the intake.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_json::Value;

fn velo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../integrations/velociraptor")
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Parameter {
    name: String,
    #[serde(default)]
    default: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    choices: Vec<String>,
    #[serde(default)]
    friendly_name: Option<String>,
    #[serde(default)]
    validating_regex: Option<String>,
    #[serde(default)]
    artifact_type: Option<String>,
    #[serde(default)]
    sources: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Source {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    precondition: Option<String>,
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    queries: Vec<String>,
    #[serde(default)]
    notebook: Vec<serde_yaml_ng::Value>,
}

/// The fields of `Artifact` in `artifact.proto` that YAML may set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Artifact {
    name: String,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    author: Option<String>,
    #[serde(default)]
    reference: Vec<String>,
    #[serde(default)]
    references: Vec<String>,
    #[serde(default)]
    required_permissions: Vec<String>,
    #[serde(default)]
    implied_permissions: Vec<String>,
    #[serde(default)]
    impersonate: Option<String>,
    #[serde(default)]
    resources: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    tools: Vec<serde_yaml_ng::Value>,
    #[serde(default)]
    precondition: Option<String>,
    #[serde(default)]
    parameters: Vec<Parameter>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    sources: Vec<Source>,
    #[serde(default)]
    imports: Vec<String>,
    #[serde(default)]
    export: Option<String>,
    #[serde(default)]
    column_types: Vec<serde_yaml_ng::Value>,
}

/// `acls/acls.go` permission names.
const PERMISSIONS: [&str; 22] = [
    "ANY_QUERY",
    "PUBLISH",
    "READ_RESULTS",
    "LABEL_CLIENT",
    "COLLECT_CLIENT",
    "COLLECT_BASIC",
    "START_HUNT",
    "COLLECT_SERVER",
    "ARTIFACT_WRITER",
    "SERVER_ARTIFACT_WRITER",
    "EXECVE",
    "NOTEBOOK_EDITOR",
    "SERVER_ADMIN",
    "ORG_ADMIN",
    "IMPERSONATION",
    "FILESYSTEM_READ",
    "FILESYSTEM_WRITE",
    "NETWORK",
    "MACHINE_STATE",
    "PREPARE_RESULTS",
    "DELETE_RESULTS",
    "DATASTORE_ACCESS",
];

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str,
    Num,
    Punct(String),
}

/// Tokens of a VQL text (strings `'..'`, `".."`, `'''..'''`, backtick identifiers,
/// `//` and `--` line comments, `/* */` comments).
fn tokens(vql: &str) -> Result<Vec<Tok>, String> {
    let b = vql.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if vql[i..].starts_with("//") || vql[i..].starts_with("--") {
            i = vql[i..].find('\n').map_or(b.len(), |n| i + n);
        } else if vql[i..].starts_with("/*") {
            i = vql[i + 2..]
                .find("*/")
                .map(|n| i + n + 4)
                .ok_or("unterminated /* comment")?;
        } else if vql[i..].starts_with("'''") {
            i = vql[i + 3..]
                .find("'''")
                .map(|n| i + n + 6)
                .ok_or("unterminated ''' string")?;
            out.push(Tok::Str);
        } else if c == b'\'' || c == b'"' || c == b'`' {
            let mut j = i + 1;
            while j < b.len() && b[j] != c {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            if j >= b.len() {
                return Err(format!("unterminated string at byte {i}"));
            }
            out.push(if c == b'`' {
                Tok::Ident(vql[i + 1..j].to_string())
            } else {
                Tok::Str
            });
            i = j + 1;
        } else if c.is_ascii_digit() {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                i += 1;
            }
            out.push(Tok::Num);
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let s = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(Tok::Ident(vql[s..i].to_string()));
        } else {
            let two = vql.get(i..i + 2).unwrap_or("");
            let p = if ["<=", ">=", "!=", "=~", "<>", "=>", "||", "&&"].contains(&two) {
                two.to_string()
            } else {
                (c as char).to_string()
            };
            i += p.len();
            out.push(Tok::Punct(p));
        }
    }
    Ok(out)
}

fn is_kw(t: &Tok, kw: &str) -> bool {
    matches!(t, Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
}

/// The vfilter grammar rules the artifacts once broke. Returns the first violation.
fn check_vql(vql: &str) -> Result<(), String> {
    let toks = tokens(vql)?;
    // Stack of open brackets; for '(' whether it is a call's argument list.
    let mut stack: Vec<(char, bool)> = vec![];
    // Top level statement structure: LET NAME[(...)] =|<= BODY ... SELECT ...
    let (mut in_let, mut op_seen, mut let_body, mut saw_final) = (false, false, false, false);
    // Open http_client( calls: the stack depth of their argument list, and the names of
    // the arguments given.
    let mut http_calls: Vec<(usize, Vec<String>)> = vec![];
    for (i, t) in toks.iter().enumerate() {
        let prev = i.checked_sub(1).map(|p| &toks[p]);
        let prev2 = i.checked_sub(2).map(|p| &toks[p]);
        let depth_before = stack.len();
        match t {
            Tok::Punct(p) if p == "(" => {
                let call = matches!(prev, Some(Tok::Ident(s)) if !["AND", "OR", "NOT", "IN", "SELECT", "WHERE", "FROM"]
                    .iter().any(|k| s.eq_ignore_ascii_case(k)));
                stack.push(('(', call));
                if matches!(prev, Some(Tok::Ident(s)) if s.eq_ignore_ascii_case("http_client")) {
                    http_calls.push((stack.len(), vec![]));
                }
            }
            Tok::Punct(p) if p == "=" => {
                if let (Some(Tok::Ident(name)), Some((depth, args))) = (prev, http_calls.last_mut()) {
                    if *depth == stack.len() {
                        args.push(name.to_ascii_lowercase());
                    }
                }
            }
            Tok::Punct(p) if p == "{" => stack.push(('{', false)),
            Tok::Punct(p) if p == "[" => {
                const KEYWORDS: [&str; 9] = ["SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LET", "AS"];
                let index = matches!(prev, Some(Tok::Ident(s)) if !KEYWORDS.iter().any(|k| s.eq_ignore_ascii_case(k)))
                    || matches!(prev, Some(Tok::Str | Tok::Num))
                    || matches!(prev, Some(Tok::Punct(q)) if q == ")" || q == "]" || q == "}");
                let argument = matches!(prev, Some(Tok::Punct(q)) if q == "=")
                    && matches!(prev2, Some(Tok::Ident(_)))
                    && matches!(stack.last(), Some(('(', true)));
                if !(index || argument) {
                    return Err(format!(
                        "list literal `[` outside a function argument (token {i}): VQL has lists only as name=[...] arguments; use a tuple (a, b,)"
                    ));
                }
                stack.push(('[', false));
            }
            Tok::Punct(p) if p == ")" || p == "}" || p == "]" => {
                let want = match p.as_str() {
                    ")" => '(',
                    "}" => '{',
                    _ => '[',
                };
                if http_calls.last().is_some_and(|(depth, _)| *depth == stack.len()) {
                    let (_, args) = http_calls.pop().unwrap_or_default();
                    // vql/networking/http_client.go, v0.72 to v0.74.x: the url field is
                    // `vfilter:"required,field=url"`, so a call without url= fails argument
                    // parsing there (optional only from v0.75, commit cadc0f873).
                    if !args.iter().any(|a| a == "url") {
                        return Err(format!(
                            "http_client() without url= (token {i}): url is required before Velociraptor 0.75; \
                             for a managed secret use url=\"secret://\" + NAME, which every version since 0.72 reads"
                        ));
                    }
                }
                match stack.pop() {
                    Some((open, _)) if open == want => {}
                    _ => return Err(format!("unbalanced {p} (token {i})")),
                }
            }
            _ => {}
        }
        if depth_before > 0 {
            continue;
        }
        if is_kw(t, "LET") {
            if saw_final {
                return Err("a LET after the final SELECT: all queries but the last must be LET".into());
            }
            (in_let, op_seen, let_body) = (true, false, false);
        } else if in_let && !op_seen {
            op_seen = matches!(t, Tok::Punct(p) if p == "=" || p == "<=");
        } else if is_kw(t, "SELECT") && (!in_let || let_body) {
            if saw_final {
                return Err("two final SELECTs: all queries but the last must be LET".into());
            }
            (in_let, saw_final) = (false, true);
        } else if in_let {
            let_body = true;
        }
    }
    if !stack.is_empty() {
        return Err("unclosed bracket".into());
    }
    if !saw_final {
        return Err("no final SELECT: the last query of a source must not be a LET".into());
    }
    Ok(())
}

#[test]
fn vql_check_rejects_what_vfilter_rejects() {
    // The shape of the old Custom.Cordon.Quarantine argv (vfilter: unexpected token "[").
    let bad = [
        "LET A = [B, \"isolate\"]\nSELECT * FROM execve(argv=A)",
        "LET M = if(condition=X, then=[\"--message=\" + X], else=[])\nLET A = [B] + M\nSELECT * FROM scope()",
        "SELECT * FROM execve(argv=[\"a\"] + [\"b\"])",
        "LET A = SELECT * FROM info()",
        "SELECT 1 FROM scope()\nLET A = 1\nSELECT 2 FROM scope()",
        "SELECT * FROM foreach(row={SELECT 1 FROM scope()}",
        "SELECT [1] FROM scope()",
        // url is required before Velociraptor 0.75: secret= alone does not parse there.
        "SELECT * FROM http_client(secret=S, method=\"POST\", data=D)",
        "SELECT * FROM foreach(row=Q, query={ SELECT * FROM http_client(secret=S, headers=dict(url=1)) })",
    ];
    for q in bad {
        assert!(check_vql(q).is_err(), "must be refused: {q}");
    }
    // Forms Velociraptor's own artifacts use.
    let good = [
        "LET A = (B, 'add', 'rule', '{', C, '}')\nSELECT * FROM execve(argv=A)",
        "SELECT * FROM execve(argv=['wall', MessageBox])",
        "LET D(URL) = split(string=url(parse=URL).Host, sep=\":\")[0]\nSELECT D(URL=\"x\") FROM scope()",
        "LET X <= config.server_urls + VelociraptorURL\nSELECT format(format=\"%v %v\", args=[A, B]) FROM scope()",
        "SELECT * FROM foreach(row=Q, query={ SELECT * FROM http_client(url=U, data=regex_replace(source=S, re='''\\n\\s*''', replace=\"\")) })",
        "SELECT * FROM http_client(url=\"secret://\" + CordonSecret, method=\"POST\")",
        "// a comment [ with brackets\nSELECT X[1:2] FROM scope() WHERE Y =~ \"[a-z]\"",
    ];
    for q in good {
        check_vql(q).unwrap_or_else(|e| panic!("{q}: {e}"));
    }
}

fn artifacts() -> Vec<(String, String)> {
    let mut out = vec![];
    for entry in std::fs::read_dir(velo_dir()).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "yaml") {
            out.push((p.display().to_string(), std::fs::read_to_string(&p).unwrap()));
        }
    }
    assert!(out.len() >= 2, "{out:?}");
    out
}

#[test]
fn artifacts_load_like_velociraptor_loads_them() {
    for (path, text) in artifacts() {
        let a: Artifact = serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
        let kind = a.kind.clone().unwrap_or_default().to_ascii_uppercase();
        assert!(
            [
                "",
                "CLIENT",
                "CLIENT_EVENT",
                "SERVER",
                "SERVER_EVENT",
                "NOTEBOOK",
                "INTERNAL"
            ]
            .contains(&kind.as_str()),
            "{path}: type {kind}"
        );
        for p in &a.required_permissions {
            assert!(PERMISSIONS.contains(&p.as_str()), "{path}: permission {p}");
        }
        for p in &a.parameters {
            let k = p.kind.as_deref().unwrap_or("string");
            assert!(
                [
                    "string",
                    "bool",
                    "csv",
                    "int",
                    "json",
                    "choices",
                    "hidden",
                    "timestamp",
                    "regex",
                    "upload"
                ]
                .contains(&k),
                "{path}: parameter {} type {k}",
                p.name
            );
            assert!(
                !p.name.to_ascii_lowercase().contains("token") && !p.name.to_ascii_lowercase().contains("password"),
                "{path}: credentials belong in Velociraptor's secrets, not parameter {}",
                p.name
            );
        }
        assert!(!a.sources.is_empty(), "{path}");
        for s in &a.sources {
            let q = s.query.clone().unwrap_or_else(|| s.queries.join("\n"));
            check_vql(&q).unwrap_or_else(|e| panic!("{path}: {e}"));
        }
        for extra in [&a.precondition, &a.export].into_iter().flatten() {
            check_vql(extra).unwrap_or_else(|e| panic!("{path}: {e}"));
        }
    }
}

#[test]
fn velociraptor_readme_matches_the_artifacts() {
    let readme = std::fs::read_to_string(velo_dir().join("README.md")).unwrap();
    // EXECVE is the permission the quarantine artifact needs; no CordonToken parameter.
    assert!(readme.contains("EXECVE"));
    assert!(!readme.contains("CordonToken"), "the token lives in a secret");
    // The forwarder reads its secret through url="secret://NAME" (the form every version
    // since 0.72 reads; secret= without url= only parses from 0.75), and says so.
    let fwd = std::fs::read_to_string(velo_dir().join("Server.Cordon.ForwardEvents.yaml")).unwrap();
    assert!(fwd.contains("url=\"secret://\" + CordonSecret"), "{fwd}");
    assert!(
        readme.contains("secret://"),
        "the README says how the secret is named in the URL"
    );
    assert!(readme.contains("HTTP Secrets"));
}

/// The argv the quarantine artifact built in real vfilter (server_urls wss://192.0.2.1:8000/
/// and https://192.0.2.2/, two AllowList rows, a MessageBox) is one `cordon isolate`
/// accepts.
#[cfg(target_os = "linux")]
#[test]
fn recorded_quarantine_argv_is_a_valid_cordon_isolate() {
    let argv: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(velo_dir().join("testdata/quarantine-argv.json")).unwrap())
            .unwrap();
    assert_eq!(&argv[1..3], ["isolate", "--json"]);
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cordon"))
        .args(&argv[1..])
        .arg("--dry-run")
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ruleset = v["ruleset"].as_str().unwrap();
    for want in ["192.0.2.1", "8000", "192.0.2.2", "443", "198.51.100.50", "198.51.100.7"] {
        assert!(ruleset.contains(want), "{want} missing from\n{ruleset}");
    }
    assert!(!dir.path().join("state").exists());
}

/// What the forwarder's http_client sent in real vfilter: one JSON object per line.
#[test]
fn recorded_forwarder_body_is_json_lines() {
    let body = std::fs::read_to_string(velo_dir().join("testdata/forward.ndjson")).unwrap();
    assert!(body.ends_with('\n'));
    for line in body.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        for k in [
            "ClientId",
            "Fqdn",
            "Hostname",
            "Artifact",
            "Severity",
            "Timestamp",
            "Detail",
        ] {
            assert!(v.get(k).is_some(), "{k} missing in {line}");
        }
        assert!(v["Detail"].is_object() && !v["Detail"]["Name"].is_null(), "{line}");
    }
}

/// trial34 M2: one `CordonPath` for Linux and macOS defaulted to `/usr/bin/cordon` (the
/// .deb/.rpm path), which does not exist on a Mac (the tarball installs
/// `/usr/local/bin/cordon`; /usr/bin is read-only under SIP): a hunt with defaults over a
/// mixed fleet failed on every Mac. Each OS has its own parameter whose default is where
/// that OS's package puts cordon, and the query picks by `info()`'s OS.
#[test]
fn the_quarantine_artifact_finds_cordon_where_each_os_package_installs_it() {
    let text = std::fs::read_to_string(velo_dir().join("Custom.Cordon.Quarantine.yaml")).unwrap();
    let a: Artifact = serde_yaml_ng::from_str(&text).unwrap();
    let default = |name: &str| {
        a.parameters
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| p.default.clone())
            .unwrap_or_else(|| panic!("no parameter {name} with a default"))
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    // Linux: the packages install /usr/bin/cordon (scripts/package's units name it).
    assert_eq!(default("CordonPath"), "/usr/bin/cordon");
    let package = std::fs::read_to_string(root.join("scripts/package")).unwrap();
    assert!(package.contains("\"$d/usr/bin/cordon\""), "the .deb/.rpm path changed");
    // macOS: the tarball's README installs /usr/local/bin/cordon, the plists start it.
    assert_eq!(default("CordonPathMacOS"), "/usr/local/bin/cordon");
    let mac_readme = std::fs::read_to_string(root.join("packaging/macos/README.md")).unwrap();
    assert!(mac_readme.contains("/usr/local/bin/cordon"));
    let plist = std::fs::read_to_string(root.join("packaging/macos/com.cordon.agent.plist")).unwrap();
    assert!(plist.contains("<string>/usr/local/bin/cordon</string>"));
    assert_eq!(default("CordonPathWindows"), r"C:\Program Files\Cordon\cordon.exe");
    // The query picks the binary by OS: darwin → CordonPathMacOS, windows →
    // CordonPathWindows, else CordonPath.
    let q = a.sources[0].query.clone().unwrap();
    assert!(q.contains(r#"WHERE OS =~ "darwin""#), "{q}");
    assert!(q.contains("then=CordonPathMacOS"), "{q}");
    assert!(q.contains("then=CordonPathWindows"), "{q}");
    assert!(q.contains("else=CordonPath)"), "{q}");
}
