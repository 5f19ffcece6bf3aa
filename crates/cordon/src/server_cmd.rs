//! `cordon server init | token create | run`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use cordon_server::run::{self, RunConfig};
use cordon_server::timefmt::{Span, SpanError};
use serde_json::json;

use crate::exit::{Code, Failure};

#[derive(Args, Debug)]
pub struct ServerArgs {
    #[command(subcommand)]
    pub what: ServerWhat,
}

#[derive(Subcommand, Debug)]
pub enum ServerWhat {
    /// Create the CA, the server certificate, the database and a bootstrap admin token.
    Init(InitArgs),
    /// One-time enrollment tokens.
    Token(TokenArgs),
    /// Serve the API and agents over TLS.
    Run(RunArgs),
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Directory for keys, certificates and the default SQLite database.
    #[arg(long, env = "CORDON_DATA", default_value = "/var/lib/cordon-server")]
    pub data: PathBuf,
    /// DNS name(s) agents use to reach the server (certificate SANs).
    #[arg(long = "name")]
    pub names: Vec<String>,
    /// IP address(es) agents use to reach the server (certificate SANs).
    #[arg(long = "ip")]
    pub ips: Vec<IpAddr>,
    /// Database URL (default sqlite://DATA/cordon.db).
    #[arg(long, env = "CORDON_DB")]
    pub db: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub what: TokenWhat,
}

#[derive(Subcommand, Debug)]
pub enum TokenWhat {
    /// Issue a one-time enrollment token.
    Create(TokenCreateArgs),
}

#[derive(Args, Debug)]
pub struct TokenCreateArgs {
    /// Labels given to the host that enrolls with this token (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub labels: Vec<String>,
    /// Lifetime: 30m, 24h, 7d (the one duration form, `Span`).
    #[arg(long, default_value = "24h", value_name = "SPAN")]
    pub ttl: Span,
    #[arg(long, env = "CORDON_DATA", default_value = "/var/lib/cordon-server")]
    pub data: PathBuf,
    #[arg(long, env = "CORDON_DB")]
    pub db: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Address and port to listen on; `[::]:8443` (the default) accepts IPv6 and IPv4.
    #[arg(long, default_value = "[::]:8443")]
    pub listen: SocketAddr,
    #[arg(long, env = "CORDON_DB")]
    pub db: Option<String>,
    #[arg(long, env = "CORDON_DATA", default_value = "/var/lib/cordon-server")]
    pub data: PathBuf,
    /// How often expired quarantines are released (5s, 1m).
    #[arg(long, default_value = "5s", value_name = "SPAN")]
    pub expiry_interval: Span,
    /// Audit retention: records older than this (with its unit: 365d, 12h, 90m, 30s)
    /// are archived to a file in --audit-archive-dir and then deleted; the hash chain
    /// continues across the cut. A number without a unit is refused (exit 2). Default:
    /// keep everything.
    #[arg(long, value_name = "AGE", requires = "audit_archive_dir", value_parser = retention_age)]
    pub audit_retention: Option<Span>,
    /// Where retention writes its archives (JSON lines with a signed trailer; verify
    /// them with `cordon audit verify --file`).
    #[arg(long, value_name = "DIR", requires = "audit_retention")]
    pub audit_archive_dir: Option<PathBuf>,
}

/// Reads `--audit-retention`: a [`Span`] with its unit written (`365d`, `12h`, `90m`,
/// `30s`; [`Span::parse_with_unit`]). A bare number is refused: it read as seconds, so
/// `365` (meant as days, as the help's `365d` suggests) archived and deleted every record
/// older than six minutes (trial25 F7).
///
/// # Errors
/// The refusal naming the option and the text (no unit, not a duration, zero).
fn retention_age(text: &str) -> Result<Span, SpanError> {
    Span::parse_with_unit(text).map_err(|e| e.field("--audit-retention"))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// Whether `e` is the caller's to fix before anything happens (exit 2): a refused
/// request, a database initialised already, a data directory of another CA.
fn usage_error(e: &run::RunError) -> bool {
    matches!(
        e,
        run::RunError::Invalid(_)
            | run::RunError::Initialised { .. }
            | run::RunError::Store(cordon_server::StoreError::OtherCa { .. })
    )
}

/// `e` as the binary's failure: exit code 1 (2 for [`usage_error`]s), printed with its
/// cause chain.
fn fail(e: run::RunError) -> Failure {
    if usage_error(&e) {
        return Failure::new(Code::Usage, e);
    }
    Failure::from(anyhow::Error::from(e))
}

/// One argument as a POSIX shell reads it back: as is when it holds only characters the
/// shell leaves alone, single-quoted otherwise.
fn shell_word(a: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c);
    if !a.is_empty() && a.chars().all(plain) {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', r"'\''"))
    }
}

/// What a server command run as root on `data` (owned by `owner`) says instead of
/// running (trial26 M2): whose directory it is, why root's files there break the
/// server, and the command line `args` again under `sudo -u OWNER`.
fn foreign_dir_message(data: &Path, owner: &run::ForeignOwner, args: &[String]) -> String {
    let (who, user) = match &owner.name {
        Some(n) => (format!("{n} (uid {})", owner.uid), n.clone()),
        None => (format!("uid {}", owner.uid), format!("'#{}'", owner.uid)),
    };
    let cmd: Vec<String> = args.iter().map(|a| shell_word(a)).collect();
    format!(
        "refusing to run as root on {}, which belongs to {who}: the files this command creates there \
         (database, audit anchor, writer lock, keys) would be root's, 0600, and the server, which runs as that \
         user, could not read them. Nothing was changed. Run it as the directory's owner:\n  sudo -u {user} {}",
        data.display(),
        cmd.join(" ")
    )
}

/// Refuses (exit 2, [`foreign_dir_message`]) when this process runs as root and `data`
/// belongs to another user.
///
/// # Errors
/// That refusal.
fn refuse_root_on_foreign_data_dir(data: &Path) -> Result<(), Failure> {
    let Some(owner) = run::foreign_data_dir_owner(data) else {
        return Ok(());
    };
    let args: Vec<String> = std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect();
    Err(Failure::usage(foreign_dir_message(data, &owner, &args)))
}

pub fn run(a: ServerArgs) -> Result<(), Failure> {
    let rt = runtime()?;
    match a.what {
        ServerWhat::Init(a) => rt.block_on(init(a)),
        ServerWhat::Token(TokenArgs {
            what: TokenWhat::Create(a),
        }) => rt.block_on(token_create(a)),
        ServerWhat::Run(a) => rt.block_on(serve(a)),
    }
}

async fn init(a: InitArgs) -> Result<(), Failure> {
    refuse_root_on_foreign_data_dir(&a.data)?;
    let db = run::db_url(&a.data, a.db.as_deref());
    match run::init(&a.data, &db, &a.names, &a.ips).await {
        Ok(out) => {
            if a.json {
                println!(
                    "{}",
                    json!({"ca_fingerprint": out.ca_fingerprint, "admin_token": out.admin.token, "db": db,
                           "files": out.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>()})
                );
            } else {
                println!("initialised {}", a.data.display());
                for f in &out.files {
                    println!("  wrote {}", f.display());
                }
                println!("CA fingerprint (give agents --ca-fingerprint): {}", out.ca_fingerprint);
                println!("admin API token (shown once, store it safely):");
                println!("  {}", out.admin.token);
            }
            Ok(())
        }
        Err(e) => Err(fail(e)),
    }
}

async fn token_create(a: TokenCreateArgs) -> Result<(), Failure> {
    refuse_root_on_foreign_data_dir(&a.data)?;
    let ttl = a.ttl.secs();
    let labels: Vec<String> = a
        .labels
        .iter()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    let db = run::db_url(&a.data, a.db.as_deref());
    match run::create_enroll_token(&a.data, &db, &labels, ttl).await {
        Ok(t) => {
            if a.json {
                println!(
                    "{}",
                    json!({"token": t.token, "labels": t.labels, "expires_at": t.expires_at})
                );
            } else {
                println!("{}", t.token);
                eprintln!("one-time enrollment token, expires {}", t.expires_at);
            }
            Ok(())
        }
        Err(e) => Err(fail(e)),
    }
}

async fn serve(a: RunArgs) -> Result<(), Failure> {
    refuse_root_on_foreign_data_dir(&a.data)?;
    let every = a.expiry_interval.as_duration();
    let retention = a.audit_retention;
    if let (Some(_), Some(dir)) = (retention, &a.audit_archive_dir) {
        if let Err(e) = cordon_server::service::audit::check_archive_dir(dir) {
            return Err(Failure::usage(format!("--audit-archive-dir {}: {e}", dir.display())));
        }
    }
    let cfg = RunConfig {
        listen: a.listen,
        db: run::db_url(&a.data, a.db.as_deref()),
        data_dir: a.data.clone(),
        expiry_every: every,
        max_wait: Duration::from_secs(25),
    };
    let running = match run::start(&cfg).await {
        Ok(r) => r,
        // trial39 LOW-7: the data directory's CA or certificates cannot be read (a key
        // chowned to root, a file missing): the operator's to fix, and restarting does
        // not heal it — exit 2, which the unit's RestartPreventExitStatus=2 does not
        // restart (it restart-looped for ever on exit 1).
        Err(e @ run::RunError::Pki(_)) => return Err(Failure::new(Code::Usage, e)),
        Err(e) => return Err(fail(e)),
    };
    eprintln!("cordon server listening on https://{}", running.addr);
    let retention_task = match (retention, &a.audit_archive_dir) {
        (Some(age), Some(dir)) => {
            eprintln!(
                "audit retention: records older than {} are archived to {} and then deleted (at start and every hour)",
                age.words(),
                dir.display()
            );
            Some(run::spawn_audit_retention(
                running.state.clone(),
                age.as_duration(),
                dir.clone(),
            ))
        }
        _ => None,
    };
    let _ = shutdown_signal().await;
    if let Some(t) = retention_task {
        t.abort();
    }
    eprintln!("cordon server: shutting down");
    running.shutdown().await;
    Ok(())
}

async fn shutdown_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// trial26 M2: the refusal names the owner and gives the same command under
    /// `sudo -u OWNER`, quoted so a shell reads it back.
    #[test]
    fn root_on_another_users_data_dir_is_told_the_sudo_form() {
        let owner = run::ForeignOwner {
            uid: 999,
            name: Some("cordon-server".into()),
        };
        let args: Vec<String> = [
            "cordon-server",
            "server",
            "token",
            "create",
            "--labels",
            "a b",
            "--data",
            "/var/lib/cordon-server",
        ]
        .map(String::from)
        .to_vec();
        let m = foreign_dir_message(Path::new("/var/lib/cordon-server"), &owner, &args);
        assert!(
            m.contains("/var/lib/cordon-server, which belongs to cordon-server (uid 999)"),
            "{m}"
        );
        assert!(
            m.ends_with("\n  sudo -u cordon-server cordon-server server token create --labels 'a b' --data /var/lib/cordon-server"),
            "{m}"
        );
        let nameless = run::ForeignOwner { uid: 4242, name: None };
        let m = foreign_dir_message(
            Path::new("/srv/c"),
            &nameless,
            &["cordon".into(), "server".into(), "run".into()],
        );
        assert!(
            m.contains("belongs to uid 4242") && m.ends_with("sudo -u '#4242' cordon server run"),
            "{m}"
        );
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
        assert_eq!(shell_word("[::]:8443"), "'[::]:8443'");
    }

    /// trial25 F7: `--audit-retention 365` meant 365 seconds; a bare number is refused
    /// naming the unit to write, and the age is said in words at start.
    #[test]
    fn a_retention_needs_its_unit_and_reads_in_words() {
        // The one duration type (issue 13): the messages are `Span`'s, naming the option.
        let e = retention_age("365").unwrap_err().to_string();
        assert!(
            e.contains("--audit-retention: \"365\" has no unit") && e.contains("365d"),
            "{e}"
        );
        assert!(retention_age("0d").is_err());
        assert!(retention_age("1.5h").is_err());
        let words = |t: &str| retention_age(t).map(|s| (s.as_duration(), s.words())).unwrap();
        assert_eq!(words("365d"), (Duration::from_secs(365 * 86_400), "365 days".into()));
        assert_eq!(words("30s"), (Duration::from_secs(30), "30 seconds".into()));
        assert_eq!(words("1d").1, "1 day");
        assert_eq!(words("36h").1, "36 hours");
        assert_eq!(words("5400s").1, "90 minutes");
        assert_eq!(words("10s").1, "10 seconds");
    }

    /// Issue 13: `--ttl` and `--expiry-interval` are `Span`s parsed with the command line
    /// (a typo is clap's usage error, exit 2, naming the option), not strings read later.
    #[test]
    fn token_ttl_and_expiry_interval_are_spans() {
        let ttl = |t: &str| match crate::parse_cli(["cordon", "server", "token", "create", "--ttl", t]) {
            Ok(c) => match c.command {
                crate::Command::Server(ServerArgs {
                    what:
                        ServerWhat::Token(TokenArgs {
                            what: TokenWhat::Create(a),
                        }),
                }) => Ok(a.ttl.secs()),
                _ => panic!("not token create"),
            },
            Err(e) => Err((e.exit_code(), e.to_string())),
        };
        assert_eq!(ttl("7d"), Ok(7 * 86_400));
        let (code, e) = ttl("2w").unwrap_err();
        assert_eq!(code, 2);
        assert!(e.contains("--ttl") && e.contains("\"2w\" is not a duration"), "{e}");
        assert!(crate::parse_cli(["cordon", "server", "run", "--expiry-interval", "1h 30m"]).is_err());
    }
}
