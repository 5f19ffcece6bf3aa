//! Reading hosts.

use std::collections::HashMap;

use cordon_proto::{
    ClaimInfo, DesiredState, Host, HostFlag, HostState, DEFAULT_HEARTBEAT_MS, MAX_HEARTBEAT_MS,
    OFFLINE_AFTER_HEARTBEATS,
};
use sqlx::any::AnyRow;

use super::agent_reads::AgentHost;
use super::{get_i64, get_opt_i64, get_opt_str, get_str, json_list, Store, StoreError, Tx};
use crate::timefmt::{now_ms, Timestamp};

pub(crate) const HOST_COLUMNS: &str = "id, hostname, os, addresses, agent_version, enrolled_at, last_seen, revoked, \
     revision, quarantined, allow_json, message, comment, actor, actor_token_id, expires_at, state, state_reason, state_since, \
     applied_revision, digest, backend, degraded, enforcing, heartbeat_ms, claims, release_previous";

#[derive(Debug, Clone, Default)]
/// Which hosts a list returns (all given conditions hold).
pub struct HostFilter {
    /// Only hosts carrying this label.
    pub label: Option<String>,
    /// Only hosts in this state.
    pub state: Option<HostState>,
    /// Case-insensitive substring of id, hostname or an address.
    pub text: Option<String>,
    /// Include every revoked host. By default a revoked host is listed only while it may
    /// still be isolated (`REVOKED_LISTED_SQL`: its state is not `normal`, or other
    /// sources' claims stand on it), marked `revoked`: a host left quarantined by a forced
    /// revocation is never hidden (trial17 MED-5).
    pub include_revoked: bool,
    /// Only revoked hosts (every one of them, whatever `include_revoked` says).
    pub only_revoked: bool,
    /// Only hosts that are (`Some(true)`) or are not (`Some(false)`) offline now
    /// ([`offline`]).
    pub offline: Option<bool>,
}

/// Which revoked hosts a list shows by default, as SQL over `hosts h`: the ones that may
/// still be isolated — any state but `normal` (quarantined, pending, failed, tampered: the
/// server cannot release them any more, someone must follow up on the host), or `normal`
/// with other sources' claims standing.
pub const REVOKED_LISTED_SQL: &str = "(h.state <> 'normal' OR h.claims <> '[]')";

/// The revoked-host part of a host list's WHERE clause for `f` (starts with ` AND`, or
/// is empty).
pub(crate) fn revoked_sql(f: &HostFilter) -> String {
    if f.only_revoked {
        " AND h.revoked = 1".into()
    } else if f.include_revoked {
        String::new()
    } else {
        format!(" AND (h.revoked = 0 OR {REVOKED_LISTED_SQL})")
    }
}

/// Whether an agent last seen at `last_seen` (Unix ms), reporting every `heartbeat_ms`
/// (its default when unknown, clamped to [`MAX_HEARTBEAT_MS`]: the server never trusts a
/// longer interval than its own maximum), is offline at `now`: silent for more than
/// [`OFFLINE_AFTER_HEARTBEATS`] intervals, or never seen. Pure; the server derives it when
/// it answers, never stores it.
pub fn offline(last_seen: Option<i64>, heartbeat_ms: Option<i64>, now: i64) -> bool {
    let beat = heartbeat_ms
        .filter(|b| *b > 0)
        .unwrap_or(DEFAULT_HEARTBEAT_MS as i64)
        .min(MAX_HEARTBEAT_MS as i64);
    match last_seen {
        Some(seen) => now.saturating_sub(seen) > beat.saturating_mul(OFFLINE_AFTER_HEARTBEATS as i64),
        None => true,
    }
}

pub(crate) fn host_from_row(row: &AnyRow, labels: Vec<String>) -> Result<Host, StoreError> {
    let state_text = get_str(row, "state")?;
    let state = HostState::parse(&state_text).ok_or_else(|| StoreError::Corrupt {
        what: format!("host state {state_text:?}"),
        source: None,
    })?;
    let claims_text = get_str(row, "claims")?;
    let claims: Vec<ClaimInfo> = serde_json::from_str(&claims_text).map_err(|e| StoreError::Corrupt {
        what: "host claims".into(),
        source: Some(e),
    })?;
    let last_seen = get_opt_i64(row, "last_seen")?;
    let heartbeat_ms = get_opt_i64(row, "heartbeat_ms")?;
    Ok(Host {
        id: get_str(row, "id")?,
        hostname: get_str(row, "hostname")?,
        os: get_opt_str(row, "os")?,
        // Stored as validated canonical text; a row that is not an address (written by
        // hand) is left out rather than failing the whole host.
        addresses: json_list(&get_str(row, "addresses")?)
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect(),
        labels,
        agent_version: get_opt_str(row, "agent_version")?,
        last_seen: last_seen.map(Timestamp::from_unix_ms_clamped),
        enrolled_at: Timestamp::from_unix_ms_clamped(get_i64(row, "enrolled_at")?),
        desired: desired_from_row(row)?,
        state,
        state_reason: get_opt_str(row, "state_reason")?,
        state_since: Timestamp::from_unix_ms_clamped(get_i64(row, "state_since")?),
        applied_revision: get_i64(row, "applied_revision")?,
        digest: get_opt_str(row, "digest")?,
        // Kept as stored: a replica of a newer version may have written a backend this
        // one does not know (`Backend::Other`).
        backend: get_opt_str(row, "backend")?.map(cordon_proto::Backend::from),
        revoked: get_i64(row, "revoked")? != 0,
        degraded: json_list(&get_str(row, "degraded")?),
        enforcing: get_i64(row, "enforcing")? != 0,
        heartbeat_ms: heartbeat_ms.and_then(|b| u64::try_from(b).ok()),
        offline: offline(last_seen, heartbeat_ms, now_ms()),
        claims,
        flags: Vec::new(),
    })
}

/// The desired state in a `hosts` row (columns `revision, quarantined, allow_json,
/// message, comment, actor, actor_token_id, expires_at, release_previous`); `actor_token_name` is read
/// from the token table when the server answers ([`annotate`]).
pub(crate) fn desired_from_row(row: &AnyRow) -> Result<DesiredState, StoreError> {
    Ok(DesiredState {
        revision: get_i64(row, "revision")?,
        quarantined: get_i64(row, "quarantined")? != 0,
        allow: json_list(&get_str(row, "allow_json")?),
        message: get_opt_str(row, "message")?,
        comment: get_opt_str(row, "comment")?,
        actor: get_opt_str(row, "actor")?,
        actor_token_id: get_opt_i64(row, "actor_token_id")?,
        actor_token_name: None,
        expires_at: get_opt_i64(row, "expires_at")?.map(Timestamp::from_unix_ms_clamped),
        release_previous: json_list(&get_str(row, "release_previous")?),
    })
}

/// `$1, $2, …` for `n` parameters starting at `$from`.
pub(crate) fn marks(from: usize, n: usize) -> String {
    (from..from + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// Sets each host's `flags`: a hostname (compared as [`hostname_key`]: NFKC, invisible
/// characters dropped, case-folded, trailing dots dropped) or an address another
/// non-revoked host also has. Two indexed queries per call, whatever the page size.
///
/// [`hostname_key`]: crate::service::validate::hostname_key
pub(crate) async fn set_flags<'e, E>(exec: E, hosts: &mut [Host]) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any> + Copy,
{
    if hosts.is_empty() {
        return Ok(());
    }
    let key = crate::service::validate::hostname_key;
    let mut keys: Vec<String> = hosts.iter().map(|h| key(&h.hostname)).collect();
    keys.sort();
    keys.dedup();
    let sql = format!(
        "SELECT id, hostname_key AS k FROM hosts WHERE revoked = 0 AND hostname_key IN ({})",
        marks(1, keys.len())
    );
    let mut q = sqlx::query(&sql);
    for k in &keys {
        q = q.bind(k.clone());
    }
    let mut by_name: HashMap<String, Vec<String>> = HashMap::new();
    for r in q.fetch_all(exec).await? {
        by_name.entry(get_str(&r, "k")?).or_default().push(get_str(&r, "id")?);
    }
    let ids: Vec<String> = hosts.iter().map(|h| h.id.clone()).collect();
    let sql = format!(
        "SELECT a.address AS address, a.host_id AS host_id FROM host_addresses a JOIN hosts h ON h.id = a.host_id \
         WHERE h.revoked = 0 AND a.address IN (SELECT address FROM host_addresses WHERE host_id IN ({}))",
        marks(1, ids.len())
    );
    let mut q = sqlx::query(&sql);
    for id in &ids {
        q = q.bind(id.clone());
    }
    let mut by_addr: HashMap<String, Vec<String>> = HashMap::new();
    for r in q.fetch_all(exec).await? {
        by_addr
            .entry(get_str(&r, "address")?)
            .or_default()
            .push(get_str(&r, "host_id")?);
    }
    for h in hosts.iter_mut() {
        h.flags.clear();
        let others = |all: Option<&Vec<String>>| -> Vec<String> {
            let mut o: Vec<String> = all.into_iter().flatten().filter(|i| **i != h.id).cloned().collect();
            o.sort();
            o
        };
        let o = others(by_name.get(&key(&h.hostname)));
        if !o.is_empty() {
            h.flags.push(HostFlag {
                kind: cordon_proto::HostFlagKind::DuplicateHostname,
                value: h.hostname.clone(),
                other_hosts: o,
            });
        }
        for a in &h.addresses {
            let o = others(by_addr.get(&a.to_string()));
            if !o.is_empty() {
                h.flags.push(HostFlag {
                    kind: cordon_proto::HostFlagKind::DuplicateAddress,
                    value: a.to_string(),
                    other_hosts: o,
                });
            }
        }
    }
    set_hostname_rule_flags(exec, hosts).await
}

/// What a hostname that breaks the hostname rule reads as: the address, or the start of
/// a host id (lower case, hyphenated), if any.
enum Reading {
    Address(String),
    IdPrefix(String),
    Nothing,
}

/// `name`'s [`Reading`]s (after [`crate::service::validate::hostname_rule`] refused it):
/// usually one; two when a name reads as an address and as the start of a host id alike
/// (`32021475`: an inet_aton number and an all-digit short id — one host id in about 43
/// starts with eight decimal digits).
fn readings(name: &str) -> Vec<Reading> {
    use cordon_proto::hostname::HostnameProblem as P;
    let t = crate::service::validate::hostname_id_reading(name);
    let id_reading = |t: &str| {
        // The 32-digit form names the hyphenated id.
        if t.len() == 32 && !t.contains('-') {
            Reading::IdPrefix(format!(
                "{}-{}-{}-{}-{}",
                &t[..8],
                &t[8..12],
                &t[12..16],
                &t[16..20],
                &t[20..]
            ))
        } else {
            Reading::IdPrefix(t.to_string())
        }
    };
    let also_id = |first: Reading| {
        if cordon_proto::hostname::looks_like_host_id(&t) {
            vec![first, id_reading(&t)]
        } else {
            vec![first]
        }
    };
    match crate::service::validate::hostname_rule(name) {
        Err(P::Address(ip)) => also_id(Reading::Address(cordon_proto::addr::ipv4_of(ip).to_string())),
        Err(P::AddressLookAlike(ip)) => also_id(Reading::Address(ip.to_string())),
        Err(P::HostId) => vec![id_reading(&t)],
        _ => vec![Reading::Nothing],
    }
}

/// Flags of the hostname rule (trial18 MED-1, trial19 MED-B/LOW-k): a host enrolled
/// before the rule under a name that breaks it gets `invalid_hostname` naming the hosts
/// whose address or id the name reads as; each of those gets `named_after` naming it.
/// New enrollments cannot have such a name ([`crate::service::validate::hostname`]).
/// One query for the reverse direction, one per refused name on the page (rare).
async fn set_hostname_rule_flags<'e, E>(exec: E, hosts: &mut [Host]) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any> + Copy,
{
    let key = crate::service::validate::hostname_key;
    // Reverse: hosts named after an address, the id or the short id of a host of the page.
    let mut keys: Vec<String> = Vec::new();
    for h in hosts.iter() {
        keys.extend(h.addresses.iter().map(|a| key(&a.to_string())));
        keys.push(key(&h.id));
        keys.push(key(short_id(&h.id)));
    }
    keys.sort();
    keys.dedup();
    let sql = format!(
        "SELECT id, hostname FROM hosts WHERE revoked = 0 AND hostname_key IN ({})",
        marks(1, keys.len())
    );
    let mut q = sqlx::query(&sql);
    for k in &keys {
        q = q.bind(k.clone());
    }
    let mut named: Vec<(String, String)> = Vec::new();
    for r in q.fetch_all(exec).await? {
        let (id, name) = (get_str(&r, "id")?, get_str(&r, "hostname")?);
        if crate::service::validate::hostname_rule(&name).is_err() {
            named.push((id, name));
        }
    }
    for h in hosts.iter_mut() {
        let own_id = h.id.to_ascii_lowercase();
        let addresses: Vec<String> = h.addresses.iter().map(ToString::to_string).collect();
        for (id, name) in &named {
            let hit = id != &h.id
                && readings(name).into_iter().any(|r| match r {
                    Reading::Address(a) => addresses.contains(&a),
                    Reading::IdPrefix(p) => own_id.starts_with(&p),
                    Reading::Nothing => false,
                });
            if hit {
                h.flags.push(HostFlag {
                    kind: cordon_proto::HostFlagKind::NamedAfter,
                    value: name.clone(),
                    other_hosts: vec![id.clone()],
                });
            }
        }
        if crate::service::validate::hostname_rule(&h.hostname).is_err() {
            let mut rows = Vec::new();
            for r in readings(&h.hostname) {
                rows.extend(match r {
                    Reading::Address(a) => {
                        sqlx::query(
                            "SELECT h.id AS id FROM host_addresses a JOIN hosts h ON h.id = a.host_id \
                         WHERE h.revoked = 0 AND a.address = $1 AND h.id <> $2",
                        )
                        .bind(a)
                        .bind(h.id.clone())
                        .fetch_all(exec)
                        .await?
                    }
                    Reading::IdPrefix(p) => {
                        sqlx::query(
                            "SELECT id FROM hosts WHERE revoked = 0 AND LOWER(id) LIKE $1 ESCAPE '\\' AND id <> $2",
                        )
                        .bind(format!("{}%", like_pattern(&p).trim_matches('%')))
                        .bind(h.id.clone())
                        .fetch_all(exec)
                        .await?
                    }
                    Reading::Nothing => Vec::new(),
                });
            }
            let mut other_hosts = rows.iter().map(|r| get_str(r, "id")).collect::<Result<Vec<_>, _>>()?;
            other_hosts.sort();
            other_hosts.dedup();
            h.flags.push(HostFlag {
                kind: cordon_proto::HostFlagKind::InvalidHostname,
                value: h.hostname.clone(),
                other_hosts,
            });
        }
    }
    Ok(())
}

use cordon_proto::api::short_id;

/// Everything the server derives about hosts when it answers: their [`set_flags`] and the
/// current name of the token that asked for each desired state
/// ([`set_actor_token_names`]).
pub(crate) async fn annotate<'e, E>(exec: E, hosts: &mut [Host]) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any> + Copy,
{
    set_flags(exec, hosts).await?;
    set_actor_token_names(exec, hosts).await
}

/// Sets `desired.actor_token_name` of each host whose desired state a token asked for:
/// that token's name in the token table now (issue 17: the stored `actor` is only the
/// name the token had when it acted; an answer shows both, so a token renamed since, by
/// a direct database edit, reads as such). Left `None` when no token has that id. One
/// indexed query per call.
pub(crate) async fn set_actor_token_names<'e, E>(exec: E, hosts: &mut [Host]) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let mut ids: Vec<i64> = hosts.iter().filter_map(|h| h.desired.actor_token_id).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(());
    }
    let sql = format!("SELECT id, name FROM api_tokens WHERE id IN ({})", marks(1, ids.len()));
    let mut q = sqlx::query(&sql);
    for id in &ids {
        q = q.bind(*id);
    }
    let mut names: HashMap<i64, String> = HashMap::new();
    for r in q.fetch_all(exec).await? {
        names.insert(get_i64(&r, "id")?, get_str(&r, "name")?);
    }
    for h in hosts.iter_mut() {
        h.desired.actor_token_name = h.desired.actor_token_id.and_then(|id| names.get(&id).cloned());
    }
    Ok(())
}

/// Replaces the rows of `host_id` in `host_addresses` with `addresses`.
pub(crate) async fn set_addresses_tx(tx: &mut Tx, host_id: &str, addresses: &[String]) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM host_addresses WHERE host_id = $1")
        .bind(host_id.to_string())
        .execute(&mut **tx)
        .await?;
    let mut seen = std::collections::HashSet::new();
    for a in addresses.iter().filter(|a| seen.insert(a.as_str())) {
        sqlx::query("INSERT INTO host_addresses (host_id, address) VALUES ($1, $2)")
            .bind(host_id.to_string())
            .bind(a.clone())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

async fn labels_of_tx(tx: &mut Tx, id: &str) -> Result<Vec<String>, StoreError> {
    let rows = sqlx::query("SELECT label FROM host_labels WHERE host_id = $1 ORDER BY label")
        .bind(id.to_string())
        .fetch_all(&mut **tx)
        .await?;
    rows.iter().map(|r| get_str(r, "label")).collect()
}

/// Loads one host by id inside a transaction.
pub(crate) async fn load_tx(tx: &mut Tx, id: &str) -> Result<Option<Host>, StoreError> {
    let sql = format!("SELECT {HOST_COLUMNS} FROM hosts WHERE id = $1");
    let Some(row) = sqlx::query(&sql).bind(id.to_string()).fetch_optional(&mut **tx).await? else {
        return Ok(None);
    };
    let labels = labels_of_tx(tx, id).await?;
    Ok(Some(host_from_row(&row, labels)?))
}

/// Host ids per `… WHERE id IN (…)` statement of a set-based read or write (bind
/// parameters stay far below SQLite's 32,766 and PostgreSQL's 65,535).
pub(crate) const IDS_PER_STATEMENT: usize = 500;

/// Loads the hosts `ids` names inside a transaction, by id (ids that name no host are
/// absent). Two statements per [`IDS_PER_STATEMENT`] ids, not two per host: what a bulk
/// action or a batch of agent reports reads.
pub(crate) async fn load_many_tx(tx: &mut Tx, ids: &[String]) -> Result<HashMap<String, Host>, StoreError> {
    let mut out = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(IDS_PER_STATEMENT) {
        let sql = format!(
            "SELECT {HOST_COLUMNS} FROM hosts WHERE id IN ({})",
            marks(1, chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(id.clone());
        }
        let rows = q.fetch_all(&mut **tx).await?;
        let sql = format!(
            "SELECT host_id, label FROM host_labels WHERE host_id IN ({}) ORDER BY host_id, label",
            marks(1, chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(id.clone());
        }
        let mut labels: HashMap<String, Vec<String>> = HashMap::new();
        for r in q.fetch_all(&mut **tx).await? {
            labels
                .entry(get_str(&r, "host_id")?)
                .or_default()
                .push(get_str(&r, "label")?);
        }
        for row in &rows {
            let id = get_str(row, "id")?;
            let l = labels.remove(&id).unwrap_or_default();
            out.insert(id, host_from_row(row, l)?);
        }
    }
    Ok(out)
}

/// The start of a host id that `reference` reads as, lower case: 8 to 36 ASCII
/// characters in the id's form (`820cb233`, `820CB233-4f1a`), the short id the tables
/// print being the shortest (trial30 MED-1). `None` for anything else. An all-digit short
/// id (`38433537`) is one too, though it also reads as an IPv4 address (inet_aton): where
/// addresses name hosts as well ([`Store::host_for_history`]) both readings are looked
/// up and a reference that finds hosts both ways is refused as ambiguous.
pub(crate) fn id_prefix(reference: &str) -> Option<String> {
    let r = reference.trim();
    (r.is_ascii() && !r.ends_with('.') && cordon_proto::hostname::looks_like_host_id(r)).then(|| r.to_ascii_lowercase())
}

/// A host a reference found: id, hostname, revoked.
type Found = (String, String, bool);

fn found_of(row: &AnyRow) -> Result<Found, StoreError> {
    Ok((
        get_str(row, "id")?,
        get_str(row, "hostname")?,
        get_i64(row, "revoked")? != 0,
    ))
}

/// The hosts whose id starts with `prefix` (an [`id_prefix`]), revoked ones included, by
/// id. Ids are stored lower case and hyphenated and a prefix holds only hex digits and
/// `-`, so `LIKE` reads the same on SQLite and PostgreSQL.
async fn hosts_with_id_prefix<'e, E>(exec: E, prefix: &str) -> Result<Vec<Found>, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let rows = sqlx::query("SELECT id, hostname, revoked FROM hosts WHERE id LIKE $1 ORDER BY id")
        .bind(format!("{prefix}%"))
        .fetch_all(exec)
        .await?;
    rows.iter().map(found_of).collect()
}

/// `id ("hostname"[, revoked])` of each host, comma-separated: the candidates an
/// ambiguous reference is refused with.
fn candidates(found: &[&Found]) -> String {
    found
        .iter()
        .map(|(id, name, revoked)| format!("{id} ({name:?}{})", if *revoked { ", revoked" } else { "" }))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Resolves references to host ids, failing on the first unknown or ambiguous one:
/// an id (any case or UUID spelling), a hostname that names exactly one host, or the
/// start of an id of 8 characters or more (the short id, [`id_prefix`]) that exactly one
/// host's id has. Revoked hosts are not targets. A hostname is ambiguous when another
/// non-revoked host has it too, compared as [`hostname_key`] (both are flagged
/// `duplicate_hostname`); an id start when several non-revoked hosts' ids begin with it
/// (409 listing them: give more of the id). A reference that reads as an address or an
/// id never names a hostname.
///
/// [`hostname_key`]: crate::service::validate::hostname_key
pub(crate) async fn resolve_refs_tx(tx: &mut Tx, refs: &[String]) -> Result<Vec<String>, StoreError> {
    let mut ids: Vec<String> = Vec::with_capacity(refs.len());
    for r in refs {
        let r = r.trim();
        // A full host id in any case (trial28 LOW-5); ids are stored lower case.
        let canonical = uuid::Uuid::try_parse(r).ok().map(|u| u.hyphenated().to_string());
        let r = canonical.as_deref().unwrap_or(r);
        // A reference that reads as an address or a host id names no hostname (hosts
        // enrolled before the hostname rule may be named `10.9.9.9` or like another
        // host's id): only the id, or its start, matches it.
        let name_key = if super::automation::reads_as_address_or_id(r) {
            None
        } else {
            Some(crate::service::validate::hostname_key(r))
        };
        let rows = sqlx::query("SELECT id, hostname, revoked FROM hosts WHERE id = $1 OR hostname_key = $2")
            .bind(r.to_string())
            .bind(name_key.clone())
            .fetch_all(&mut **tx)
            .await?;
        let mut found = rows.iter().map(found_of).collect::<Result<Vec<_>, _>>()?;
        let prefix = if found.is_empty() { id_prefix(r) } else { None };
        if let Some(p) = &prefix {
            found = hosts_with_id_prefix(&mut **tx, p).await?;
        }
        let exact = found.iter().find(|h| h.0 == r);
        let live: Vec<&Found> = found.iter().filter(|h| !h.2).collect();
        let host = match (exact, live.len(), found.len()) {
            (Some(h), _, _) => h,
            (None, 1, _) => live[0],
            (None, 0, 0) if prefix.is_some() => {
                return Err(StoreError::NotFound(format!(
                    "no host {r:?}: no host's id starts with it (a host is named by its id, the id's first 8 \
                     characters or more, or its hostname)"
                )))
            }
            (None, 0, 0) if name_key.is_none() => {
                return Err(StoreError::NotFound(format!(
                    "no host {r:?}: it reads as an address or a host id, and hosts are named here by id (or its first \
                     8 characters or more) or hostname (a hostname is never an address or an id)"
                )))
            }
            (None, 0, 0) => return Err(StoreError::NotFound(format!("no host {r:?}"))),
            (None, 0, _) => &found[0],
            (None, n, _) if prefix.is_some() => {
                return Err(StoreError::Conflict(format!(
                    "{n} hosts have an id starting with {r:?}: {}; give more of the id",
                    candidates(&live)
                )));
            }
            (None, n, _) => {
                let list: Vec<&str> = live.iter().map(|h| h.0.as_str()).collect();
                return Err(StoreError::Conflict(format!(
                    "{n} hosts are named {r:?} (duplicate hostname: {}); use the host id",
                    list.join(", ")
                )));
            }
        };
        if host.2 {
            // The way forward too (trial36 LOW-C: "is revoked" alone, exit 1).
            return Err(StoreError::Conflict(format!(
                "host {r:?} is revoked: the server no longer reaches its agent, so nothing was done; a quarantine \
                 still in force there is lifted only on the host (cordon release --force)"
            )));
        }
        if !ids.contains(&host.0) {
            ids.push(host.0.clone());
        }
    }
    Ok(ids)
}

pub(crate) async fn ids_with_label_tx(tx: &mut Tx, label: &str) -> Result<Vec<String>, StoreError> {
    let rows = sqlx::query(
        "SELECT h.id AS id FROM hosts h JOIN host_labels l ON l.host_id = h.id WHERE l.label = $1 AND h.revoked = 0 ORDER BY h.id",
    )
    .bind(label.to_string())
    .fetch_all(&mut **tx)
    .await?;
    rows.iter().map(|r| get_str(r, "id")).collect()
}

/// Largest page of hosts or audit records one request returns.
pub const MAX_PAGE: i64 = 1000;

/// Position after the last host of a page (keyset pagination on `(hostname, id)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCursor {
    /// Hostname of the last host of the page.
    pub hostname: String,
    /// Its id.
    pub id: String,
}

impl HostCursor {
    /// The opaque text handed to clients: hex of `hostname NUL id`.
    pub fn encode(&self) -> String {
        hex::encode(format!("{}\0{}", self.hostname, self.id))
    }

    /// # Errors
    /// `Invalid` when `text` is not a cursor this server handed out.
    pub fn decode(text: &str) -> Result<HostCursor, StoreError> {
        let bad = || StoreError::Invalid(format!("cursor {text:?} is not one this server handed out"));
        let bytes = hex::decode(text).map_err(|_| bad())?;
        let s = String::from_utf8(bytes).map_err(|_| bad())?;
        let (hostname, id) = s.split_once('\0').ok_or_else(bad)?;
        Ok(HostCursor {
            hostname: hostname.to_string(),
            id: id.to_string(),
        })
    }
}

/// `%` and `_` are wildcards in LIKE: escape them (and the escape character itself).
pub(crate) fn like_pattern(text: &str) -> String {
    let mut p = String::from("%");
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

impl Store {
    /// Fills `host_addresses` from `hosts.addresses` for hosts with addresses but no rows
    /// (databases written before migration 19); addresses that are not IP addresses are
    /// left out. Runs at start.
    /// Sets `hosts.hostname_key` ([`hostname_key`]) where it is missing (hosts enrolled
    /// before the column existed) or differs from what this version computes (the key's
    /// folding grew: the confusable skeleton, look-alike full stops), at start — so hosts
    /// enrolled before are flagged and addressed like new ones.
    ///
    /// [`hostname_key`]: crate::service::validate::hostname_key
    pub(crate) async fn backfill_hostname_keys(&self) -> Result<(), StoreError> {
        let rows = sqlx::query("SELECT id, hostname, hostname_key FROM hosts")
            .fetch_all(&self.pool)
            .await?;
        let mut stale = Vec::new();
        for r in &rows {
            let key = crate::service::validate::hostname_key(&get_str(r, "hostname")?);
            if get_opt_str(r, "hostname_key")?.as_deref() != Some(key.as_str()) {
                stale.push((get_str(r, "id")?, key));
            }
        }
        if stale.is_empty() {
            return Ok(());
        }
        let (_guard, mut tx) = self.write_tx().await?;
        for (id, key) in &stale {
            sqlx::query("UPDATE hosts SET hostname_key = $1 WHERE id = $2")
                .bind(key)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn backfill_host_addresses(&self) -> Result<(), StoreError> {
        let rows = sqlx::query(
            "SELECT id, addresses FROM hosts WHERE addresses <> '[]' \
             AND NOT EXISTS (SELECT 1 FROM host_addresses a WHERE a.host_id = hosts.id)",
        )
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            return Ok(());
        }
        let (_guard, mut tx) = self.write_tx().await?;
        for r in &rows {
            let valid: Vec<String> = json_list(&get_str(r, "addresses")?)
                .into_iter()
                .filter_map(|a| cordon_proto::addr::parse_host_address(&a).ok())
                .map(|ip| ip.to_string())
                .collect();
            set_addresses_tx(&mut tx, &get_str(r, "id")?, &valid).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// One page of the hosts matching `f`, ordered by hostname then id, starting after
    /// `after`; at most `limit` (capped at [`MAX_PAGE`]). Filtering, ordering and the
    /// page cut all happen in SQL, so memory is bounded by the page. Returns the hosts and
    /// the cursor of the next page (`None` on the last one).
    pub async fn hosts_page(
        &self,
        f: &HostFilter,
        after: Option<&HostCursor>,
        limit: i64,
    ) -> Result<(Vec<Host>, Option<HostCursor>), StoreError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let cols = HOST_COLUMNS
            .split(", ")
            .map(|c| format!("h.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut sql = format!("SELECT {cols} FROM hosts h WHERE 1=1");
        let mut binds: Vec<String> = Vec::new();
        let mut param = |sql: &mut String, frag: &str, value: String| {
            binds.push(value);
            sql.push_str(&frag.replace('?', &format!("${}", binds.len())));
        };
        sql.push_str(&revoked_sql(f));
        if let Some(l) = &f.label {
            param(
                &mut sql,
                " AND EXISTS (SELECT 1 FROM host_labels l WHERE l.host_id = h.id AND l.label = ?)",
                l.clone(),
            );
        }
        if let Some(st) = f.state {
            param(&mut sql, " AND h.state = ?", st.as_str().to_string());
        }
        if let Some(off) = f.offline {
            // The same rule as [`offline`], in SQL; `now` is a literal integer.
            let cond = super::host_views::offline_sql(&now_ms().to_string());
            sql.push_str(&if off {
                format!(" AND {cond}")
            } else {
                format!(" AND NOT {cond}")
            });
        }
        if let Some(t) = f.text.as_deref().filter(|t| !t.is_empty()) {
            let pat = like_pattern(t);
            param(&mut sql, " AND (LOWER(h.id) LIKE ? ESCAPE '\\'", pat.clone());
            param(&mut sql, " OR LOWER(h.hostname) LIKE ? ESCAPE '\\'", pat.clone());
            param(&mut sql, " OR LOWER(h.addresses) LIKE ? ESCAPE '\\')", pat);
        }
        if let Some(c) = after {
            param(&mut sql, " AND (h.hostname > ?", c.hostname.clone());
            param(&mut sql, " OR (h.hostname = ?", c.hostname.clone());
            param(&mut sql, " AND h.id > ?))", c.id.clone());
        }
        sql.push_str(&format!(" ORDER BY h.hostname, h.id LIMIT {}", limit + 1));
        let mut q = sqlx::query(&sql);
        for b in binds {
            q = q.bind(b);
        }
        let mut rows = q.fetch_all(&self.pool).await?;
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let ids: Vec<String> = rows.iter().map(|r| get_str(r, "id")).collect::<Result<_, _>>()?;
        let mut labels: HashMap<String, Vec<String>> = HashMap::new();
        if !ids.is_empty() {
            let marks = (1..=ids.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
            let sql = format!("SELECT host_id, label FROM host_labels WHERE host_id IN ({marks}) ORDER BY label");
            let mut q = sqlx::query(&sql);
            for id in &ids {
                q = q.bind(id.clone());
            }
            for r in q.fetch_all(&self.pool).await? {
                labels
                    .entry(get_str(&r, "host_id")?)
                    .or_default()
                    .push(get_str(&r, "label")?);
            }
        }
        let mut hosts = rows
            .iter()
            .zip(&ids)
            .map(|(row, id)| host_from_row(row, labels.remove(id).unwrap_or_default()))
            .collect::<Result<Vec<_>, _>>()?;
        annotate(&self.pool, &mut hosts).await?;
        let next = match (more, hosts.last()) {
            (true, Some(h)) => Some(HostCursor {
                hostname: h.hostname.clone(),
                id: h.id.clone(),
            }),
            _ => None,
        };
        Ok((hosts, next))
    }

    /// How many non-revoked hosts are in `state` having applied at least revision
    /// `min_applied` (benchmarks poll it; one indexed-free COUNT, no rows loaded).
    pub async fn count_hosts(&self, state: HostState, min_applied: i64) -> Result<i64, StoreError> {
        let row =
            sqlx::query("SELECT COUNT(*) AS n FROM hosts WHERE revoked = 0 AND state = $1 AND applied_revision >= $2")
                .bind(state.as_str().to_string())
                .bind(min_applied)
                .fetch_one(&self.pool)
                .await?;
        get_i64(&row, "n")
    }

    /// One host by id or unique hostname.
    pub async fn host(&self, reference: &str) -> Result<Host, StoreError> {
        let mut tx = self.begin().await?;
        let ids = resolve_any_tx(&mut tx, reference).await?;
        let host = load_tx(&mut tx, &ids)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no host {reference:?}")))?;
        tx.commit().await?;
        let mut one = [host];
        annotate(&self.pool, &mut one).await?;
        let [host] = one;
        Ok(host)
    }

    /// The id of the one host whose history `reference` asks for (the audit's `host`
    /// filter, trial25 F9): its exact id; else every host it names — by hostname,
    /// compared as [`hostname_key`], by the start of an id of 8 characters or more (the
    /// short id, trial30 MED-1), by an address a host reports now — among *all* hosts,
    /// revoked ones included: a revoked twin's records are history too, so it makes the
    /// reference ambiguous as a live twin does. A reference that reads as an address or a
    /// host id names no hostname; an all-digit short id (`38433537`) reads as an address
    /// (inet_aton) and as an id start alike, and both are looked up.
    ///
    /// # Errors
    /// `NotFound` when no host has that id, id start, name or address; `Conflict` listing
    /// every host it names (`id ("hostname"[, revoked])`) when it names more than one: an
    /// auditor's "what happened to web2" never reads as "nothing" or as one host's part
    /// of it.
    ///
    /// [`hostname_key`]: crate::service::validate::hostname_key
    pub async fn host_for_history(&self, reference: &str) -> Result<String, StoreError> {
        let r = reference.trim();
        // A full host id in any case or UUID spelling (trial28 LOW-5: `DE30DC6B-…`, as
        // some tools print UUIDs) is the id; ids are stored lower case, hyphenated.
        let canonical = uuid::Uuid::try_parse(r).ok().map(|u| u.hyphenated().to_string());
        let r = canonical.as_deref().unwrap_or(r);
        let name_key = if super::automation::reads_as_address_or_id(r) {
            None
        } else {
            Some(crate::service::validate::hostname_key(r))
        };
        let rows =
            sqlx::query("SELECT id, hostname, revoked FROM hosts WHERE id = $1 OR hostname_key = $2 ORDER BY id")
                .bind(r.to_string())
                .bind(name_key.clone())
                .fetch_all(&self.pool)
                .await?;
        let mut named = rows.iter().map(found_of).collect::<Result<Vec<_>, _>>()?;
        if let Some(h) = named.iter().find(|h| h.0 == r) {
            return Ok(h.0.clone());
        }
        let mut add = |more: Vec<Found>| {
            for h in more {
                if !named.iter().any(|n| n.0 == h.0) {
                    named.push(h);
                }
            }
        };
        let prefix = id_prefix(r);
        if let Some(p) = &prefix {
            add(hosts_with_id_prefix(&self.pool, p).await?);
        }
        // An address names the hosts that report it now (`/v1/audit?host=192.0.2.10` was
        // a 404): one host is its history, several are refused like a shared name.
        let ip = cordon_proto::addr::parse_reference_address(r);
        if let Some(ip) = ip {
            let rows = sqlx::query(
                "SELECT h.id AS id, h.hostname AS hostname, h.revoked AS revoked FROM host_addresses a \
                 JOIN hosts h ON h.id = a.host_id WHERE a.address = $1 ORDER BY h.id",
            )
            .bind(ip.to_string())
            .fetch_all(&self.pool)
            .await?;
            add(rows.iter().map(found_of).collect::<Result<Vec<_>, _>>()?);
        }
        match (named.len(), ip, prefix) {
            (1, _, _) => Ok(named.swap_remove(0).0),
            (0, Some(ip), Some(_)) => Err(StoreError::NotFound(format!(
                "no host {r:?}: no host's id starts with it and no host reports the address {ip} it also reads as"
            ))),
            (0, Some(ip), None) => Err(StoreError::NotFound(format!(
                "no host reports the address {ip} (from {r:?}): the audit names hosts by id (or its first 8 \
                 characters or more), hostname, and an address only while a host reports it"
            ))),
            (0, None, Some(_)) => Err(StoreError::NotFound(format!(
                "no host {r:?}: no host's id starts with it (the audit names hosts by id, its first 8 characters or \
                 more, hostname or address)"
            ))),
            (0, None, None) if name_key.is_none() => Err(StoreError::NotFound(format!(
                "no host {r:?}: it reads as an address or a host id, and the audit names hosts by id (or its first 8 \
                 characters or more), hostname or address"
            ))),
            (0, None, None) => Err(StoreError::NotFound(format!("no host {r:?} (by id or hostname)"))),
            (n, Some(ip), None) => Err(StoreError::Conflict(format!(
                "{n} hosts report the address {ip}: {}; use the host id",
                candidates(&named.iter().collect::<Vec<_>>())
            ))),
            (n, Some(ip), Some(_)) => Err(StoreError::Conflict(format!(
                "{n} hosts have an id starting with {r:?} or report the address {ip} it also reads as: {}; use the \
                 host id",
                candidates(&named.iter().collect::<Vec<_>>())
            ))),
            (n, None, Some(_)) => Err(StoreError::Conflict(format!(
                "{n} hosts have an id starting with {r:?}: {}; give more of the id",
                candidates(&named.iter().collect::<Vec<_>>())
            ))),
            (n, None, None) => Err(StoreError::Conflict(format!(
                "{n} hosts are named {r:?}: {}; use the host id",
                candidates(&named.iter().collect::<Vec<_>>())
            ))),
        }
    }

    /// Host id → hostname of every host, revoked ones included (for naming hosts in
    /// audit exports and lists).
    pub async fn hostnames(&self) -> Result<std::collections::HashMap<String, String>, StoreError> {
        let rows = sqlx::query("SELECT id, hostname FROM hosts")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((super::get_str(r, "id")?, super::get_str(r, "hostname")?)))
            .collect()
    }

    /// Hosts matching `f`, ordered by hostname.
    pub async fn hosts(&self, f: &HostFilter) -> Result<Vec<Host>, StoreError> {
        let sql = format!("SELECT {HOST_COLUMNS} FROM hosts ORDER BY hostname, id");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        let label_rows = sqlx::query("SELECT host_id, label FROM host_labels ORDER BY label")
            .fetch_all(&self.pool)
            .await?;
        let mut labels: HashMap<String, Vec<String>> = HashMap::new();
        for r in &label_rows {
            labels
                .entry(get_str(r, "host_id")?)
                .or_default()
                .push(get_str(r, "label")?);
        }
        let text = f.text.as_ref().map(|t| t.to_lowercase());
        let mut out = Vec::new();
        for row in &rows {
            let id = get_str(row, "id")?;
            let host = host_from_row(row, labels.remove(&id).unwrap_or_default())?;
            if host.revoked && !f.include_revoked {
                continue;
            }
            if let Some(l) = &f.label {
                if !host.labels.iter().any(|x| x == l) {
                    continue;
                }
            }
            if let Some(s) = f.state {
                if host.state != s {
                    continue;
                }
            }
            if f.offline.is_some_and(|o| o != host.offline) {
                continue;
            }
            if let Some(t) = &text {
                let hit = host.id.to_lowercase().contains(t)
                    || host.hostname.to_lowercase().contains(t)
                    || host.addresses.iter().any(|a| a.to_string().contains(t));
                if !hit {
                    continue;
                }
            }
            out.push(host);
        }
        annotate(&self.pool, &mut out).await?;
        Ok(out)
    }

    /// Whether `id` is enrolled and not revoked (checked on every agent request): `None`
    /// for an unknown host. A revoked host still counts as active while a release
    /// ordered before its revocation is unconfirmed ([`AgentHost::active`]). Read with
    /// the other agent reads under way ([`Store::agent_host`]).
    pub async fn host_active(&self, id: &str) -> Result<Option<bool>, StoreError> {
        Ok(self.agent_host(id).await?.map(|h| h.active()))
    }

    /// The desired state of host `id` (agent sync) and whether it is revoked, `None` if
    /// unknown. Read with the other agent reads under way ([`Store::agent_host`]).
    pub async fn desired(&self, id: &str) -> Result<Option<(DesiredState, bool)>, StoreError> {
        Ok(self.agent_host(id).await?.map(|h| (h.desired, h.revoked)))
    }

    /// What an agent's request reads of host `id` (`None`: no such host), read by a
    /// statement that starts after this call, together with the other such reads under
    /// way (one `SELECT … WHERE id IN (…)` per batch; see `store::agent_reads`).
    ///
    /// # Errors
    /// [`StoreError::HostRead`] (the batch's statement failed, cause shared),
    /// [`StoreError::HostReaderStopped`].
    pub async fn agent_host(&self, id: &str) -> Result<Option<AgentHost>, StoreError> {
        let queue = self
            .host_reads
            .get_or_init(|| super::agent_reads::start(self.pool.clone()));
        super::agent_reads::read(queue, id).await
    }
}

/// Like [`resolve_refs_tx`] for a single reference, but also finds revoked hosts: an id
/// names its host; a hostname, or the start of an id of 8 characters or more
/// ([`id_prefix`]), names the one live (not revoked) host that has it, and only when no
/// live host has it, the one revoked host that had it. Revoked namesakes of a live host
/// (a host re-enrolled under its old name) never make a reference ambiguous; several
/// live (or, with none live, several revoked) hosts do: 409 listing them.
async fn resolve_any_tx(tx: &mut Tx, r: &str) -> Result<String, StoreError> {
    // A full host id in any case (trial28 LOW-5); ids are stored lower case.
    let canonical = uuid::Uuid::try_parse(r.trim()).ok().map(|u| u.hyphenated().to_string());
    let r = canonical.as_deref().unwrap_or(r);
    let rows = sqlx::query("SELECT id, hostname, revoked FROM hosts WHERE id = $1 OR hostname_key = $2")
        .bind(r.to_string())
        .bind(crate::service::validate::hostname_key(r))
        .fetch_all(&mut **tx)
        .await?;
    let mut found = rows.iter().map(found_of).collect::<Result<Vec<_>, _>>()?;
    if let Some(h) = found.iter().find(|h| h.0 == r) {
        return Ok(h.0.clone());
    }
    let by_name = found.len();
    let prefix = id_prefix(r);
    if let Some(p) = &prefix {
        for h in hosts_with_id_prefix(&mut **tx, p).await? {
            if !found.iter().any(|f| f.0 == h.0) {
                found.push(h);
            }
        }
    }
    let live: Vec<&Found> = found.iter().filter(|h| !h.2).collect();
    let (hosts, what) = if live.is_empty() {
        (found.iter().collect::<Vec<_>>(), "revoked hosts")
    } else {
        (live, "hosts")
    };
    match hosts.len() {
        0 if prefix.is_some() => Err(StoreError::NotFound(format!(
            "no host {r:?}: no host's id starts with it and no host is named so"
        ))),
        0 => Err(StoreError::NotFound(format!("no host {r:?}"))),
        1 => Ok(hosts[0].0.clone()),
        n if by_name == found.len() => {
            let ids: Vec<&str> = hosts.iter().map(|h| h.0.as_str()).collect();
            Err(StoreError::Conflict(format!(
                "{n} {what} are named {r:?} ({}); use the host id",
                ids.join(", ")
            )))
        }
        n => Err(StoreError::Conflict(format!(
            "{n} {what} have an id starting with {r:?} or are named so: {}; give more of the id",
            candidates(&hosts)
        ))),
    }
}

#[cfg(test)]
mod reading_tests {
    use super::{readings, Reading};

    /// A legacy hostname of eight decimal digits reads as an inet_aton address and as the
    /// start of a host id alike: both hosts it could name are found (the identities test
    /// failed when a random host id started with eight digits, about one run in 43).
    #[test]
    fn an_all_digit_short_id_reads_as_an_address_and_as_an_id() {
        let r = readings("32021475");
        assert!(r.iter().any(|r| matches!(r, Reading::Address(_))));
        assert!(r.iter().any(|r| matches!(r, Reading::IdPrefix(p) if p == "32021475")));
        let r = readings("10.9.9.9");
        assert_eq!(r.len(), 1);
        assert!(matches!(&r[0], Reading::Address(a) if a == "10.9.9.9"));
        let r = readings("820cb233");
        assert!(matches!(&r[..], [Reading::IdPrefix(p)] if p == "820cb233"));
    }
}
