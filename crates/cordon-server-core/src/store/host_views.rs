//! Host lists for people: pages sorted by any column of the console's hosts list, filtered
//! by what needs attention, with the counts a list page shows (total, position, per state,
//! per attention reason). Sorting, filtering and the page cut all run in SQL with keyset
//! (cursor) pagination, so a page costs the same with ten hosts or a hundred thousand and
//! memory holds one page.
//!
//! What "needs attention" means is defined here once, as SQL, next to the pure
//! [`HostAttention::holds`] that says the same of one [`Host`] (a test checks they agree).

use cordon_proto::{Host, HostState, DEFAULT_HEARTBEAT_MS, MAX_HEARTBEAT_MS, OFFLINE_AFTER_HEARTBEATS};
use sqlx::any::AnyRow;

use super::hosts::{host_from_row, HostFilter, HOST_COLUMNS, MAX_PAGE};
use super::{get_i64, get_str, Store, StoreError};
use crate::timefmt::Timestamp;

/// A quarantine or release pending longer than this (ms) needs attention.
pub const LONG_PENDING_MS: i64 = 5 * 60_000;

/// Why a host needs a person's attention (every reason but
/// [`HostAttention::RevokedQuarantined`] is about non-revoked hosts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HostAttention {
    /// The agent could not apply its desired state.
    Failed,
    /// The rules were altered on the host.
    Tampered,
    /// The agent enforces nothing (`enforce = false`, e.g. the `memory` backend): state
    /// `not_enforcing`, or any state while its last report said `enforcing: false` — a
    /// "normal" host too, since a quarantine asked of it would block nothing (trial19
    /// LOW-n: only hosts asked to be quarantined were counted).
    NotEnforcing,
    /// Quarantine or release pending for more than [`LONG_PENDING_MS`].
    LongPending,
    /// Quarantined (confirmed by the agent: state `quarantined`) and offline: the
    /// server's rule ([`super::offline`]: no report for three of the agent's heartbeat
    /// intervals, or never seen). A quarantine only requested is `long_pending`, never
    /// counted as "offline while quarantined" (trial8).
    Offline,
    /// Quarantine in force, but some of its exceptions are not (a name that does not
    /// resolve, an exception that could not be applied): the agent's `degraded` lines.
    Degraded,
    /// Revoked while desired quarantined (`hosts revoke --force`): its agent is no longer
    /// answered, so no release reaches it — only one on the host (`cordon release
    /// --force`) lifts the quarantine (trial36 LOW-C/LOW-D: in no banner item, and a
    /// label release left it out without a word).
    RevokedQuarantined,
}

impl HostAttention {
    /// Every reason, in banner order.
    pub const ALL: [HostAttention; 7] = [
        HostAttention::Failed,
        HostAttention::Tampered,
        HostAttention::Degraded,
        HostAttention::NotEnforcing,
        HostAttention::LongPending,
        HostAttention::Offline,
        HostAttention::RevokedQuarantined,
    ];

    /// Stable name (`failed`, `tampered`, `not_enforcing`, `long_pending`, `offline`,
    /// `degraded`, `revoked_quarantined`).
    pub fn as_str(self) -> &'static str {
        match self {
            HostAttention::Failed => "failed",
            HostAttention::Tampered => "tampered",
            HostAttention::NotEnforcing => "not_enforcing",
            HostAttention::LongPending => "long_pending",
            HostAttention::Offline => "offline",
            HostAttention::Degraded => "degraded",
            HostAttention::RevokedQuarantined => "revoked_quarantined",
        }
    }

    /// Parses a stable name; `None` for anything else.
    pub fn parse(s: &str) -> Option<HostAttention> {
        HostAttention::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// The condition as SQL over `hosts h`, revoked hosts included or not as the reason
    /// says; `$NOW` stands for the bound time.
    fn sql(self) -> String {
        if self == HostAttention::RevokedQuarantined {
            return "(h.revoked = 1 AND h.quarantined = 1)".into();
        }
        format!("(h.revoked = 0 AND {})", self.live_sql())
    }

    /// The condition of a reason about non-revoked hosts, as SQL over `hosts h`.
    fn live_sql(self) -> String {
        match self {
            HostAttention::Failed => "h.state = 'failed'".into(),
            HostAttention::Tampered => "h.state = 'tampered'".into(),
            HostAttention::NotEnforcing => format!("({NOT_ENFORCING_SQL})"),
            HostAttention::LongPending => format!(
                "(h.state IN ('quarantine_pending', 'release_pending') AND h.state_since < $NOW - {LONG_PENDING_MS})"
            ),
            HostAttention::Offline => format!(
                "(h.quarantined = 1 AND h.state = 'quarantined' AND {})",
                offline_sql("$NOW")
            ),
            HostAttention::Degraded => format!("({DEGRADED_SQL})"),
            HostAttention::RevokedQuarantined => "1=0".into(),
        }
    }

    /// The same condition for one host at `now` (Unix ms), from the fields the server
    /// derived (`state`, `enforcing`, `degraded`; offline by [`super::offline`] at `now`).
    /// A revoked host needs attention only as [`HostAttention::RevokedQuarantined`].
    pub fn holds(self, h: &Host, now: i64) -> bool {
        if h.revoked || self == HostAttention::RevokedQuarantined {
            return h.revoked && self == HostAttention::RevokedQuarantined && h.desired.quarantined;
        }
        match self {
            HostAttention::Failed => h.state == HostState::Failed,
            HostAttention::Tampered => h.state == HostState::Tampered,
            HostAttention::NotEnforcing => h.state == HostState::NotEnforcing || !h.enforcing,
            HostAttention::LongPending => {
                matches!(h.state, HostState::QuarantinePending | HostState::ReleasePending)
                    && h.state_since.unix_ms() < now - LONG_PENDING_MS
            }
            HostAttention::Degraded => h.state == HostState::Quarantined && h.enforcing && !h.degraded.is_empty(),
            HostAttention::RevokedQuarantined => false,
            HostAttention::Offline => {
                h.desired.quarantined
                    && h.state == HostState::Quarantined
                    && super::offline(
                        h.last_seen.map(Timestamp::unix_ms),
                        h.heartbeat_ms.and_then(|b| i64::try_from(b).ok()),
                        now,
                    )
            }
        }
    }
}

/// The server's offline rule ([`super::offline`], the reported interval clamped to
/// [`MAX_HEARTBEAT_MS`]) as SQL over `hosts h` at `now` (an SQL
/// expression: a parameter or a literal).
pub(crate) fn offline_sql(now: &str) -> String {
    format!(
        "(h.last_seen IS NULL OR h.last_seen < {now} - {OFFLINE_AFTER_HEARTBEATS} * \
         (CASE WHEN h.heartbeat_ms > {MAX_HEARTBEAT_MS} THEN {MAX_HEARTBEAT_MS} \
         WHEN h.heartbeat_ms > 0 THEN h.heartbeat_ms ELSE {DEFAULT_HEARTBEAT_MS} END))"
    )
}

/// A cheap summary of what the console's pages show, compared by the live stream every
/// half second: any change of a field means "re-fetch" ([`Store::change_fingerprint`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeFingerprint {
    /// The newest audit record's id (every state change, request and decision writes one).
    pub audit_id: i64,
    /// How many hosts are enrolled (revoked ones included).
    pub hosts: i64,
    /// The newest last-seen time (Unix ms) divided by the step asked for, so busy agents
    /// do not cause constant refreshes and "last seen" still moves.
    pub seen_step: i64,
    /// The sum of the hosts' `report_rev`: moves when an agent report changes anything a
    /// page shows without an audit record — claims, addresses, os, backend — or an
    /// offline agent is heard again (trial24 MED-2).
    pub reports: i64,
    /// How many hosts are offline at the moment of the query ([`super::offline`]'s
    /// rule): moves the moment a silent agent crosses its offline deadline (trial24
    /// MED-1: an open page kept showing silent agents online).
    pub offline: i64,
}

impl Store {
    /// The [`ChangeFingerprint`] now, last-seen times in steps of `seen_step_ms`: two
    /// statements, each one scan of a table's index or rows.
    ///
    /// # Errors
    /// Database errors.
    pub async fn change_fingerprint(&self, seen_step_ms: i64) -> Result<ChangeFingerprint, StoreError> {
        let a = sqlx::query("SELECT COALESCE(MAX(id), 0) AS n FROM audit")
            .fetch_one(&self.pool)
            .await?;
        let sql = format!(
            "SELECT COUNT(*) AS n, COALESCE(MAX(h.last_seen), 0) AS s, \
             CAST(COALESCE(SUM(h.report_rev), 0) AS BIGINT) AS r, \
             CAST(COALESCE(SUM(CASE WHEN {} THEN 1 ELSE 0 END), 0) AS BIGINT) AS o FROM hosts h",
            // `now` as a literal integer, as the host filter writes it.
            offline_sql(&crate::timefmt::now_ms().to_string())
        );
        let h = sqlx::query(&sql).fetch_one(&self.pool).await?;
        Ok(ChangeFingerprint {
            audit_id: get_i64(&a, "n")?,
            hosts: get_i64(&h, "n")?,
            seen_step: get_i64(&h, "s")? / seen_step_ms.max(1),
            reports: get_i64(&h, "r")?,
            offline: get_i64(&h, "o")?,
        })
    }
}

/// A quarantine in force with exceptions missing (the agent's `degraded` list), as SQL
/// over `hosts h`.
const DEGRADED_SQL: &str = "h.state = 'quarantined' AND h.enforcing = 1 AND h.degraded <> '[]'";

/// An agent that enforces nothing ([`HostAttention::NotEnforcing`]): the state the server
/// derived from its report, or any host whose last report said `enforcing: false`, as
/// SQL over `hosts h`.
const NOT_ENFORCING_SQL: &str = "h.state = 'not_enforcing' OR h.enforcing = 0";

/// A quarantine the agent does not enforce, shown as `not_enforcing` rather than
/// `quarantined` in the state counts, as SQL over `hosts h`.
const QUARANTINE_NOT_ENFORCED_SQL: &str = "h.state = 'not_enforcing' OR (h.state = 'quarantined' AND h.enforcing = 0)";

/// The agent has sent no status report since it enrolled ([`Host::never_reported`]), as SQL
/// over `hosts h`.
const NEVER_REPORTED_SQL: &str = "(h.backend IS NULL AND h.applied_revision = 0 AND h.digest IS NULL)";

/// Column a host list is sorted by; ties are broken by hostname, then id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostSort {
    #[default]
    /// Hostname (the default).
    Hostname,
    /// Most urgent first: failed, tampered, not enforcing, degraded, quarantine
    /// requested, release requested, quarantined, normal.
    State,
    /// Since when the state holds.
    Since,
    /// Who asked for the desired state.
    Actor,
    /// When the agent last reported.
    LastSeen,
    /// Firewall backend name.
    Backend,
}

impl HostSort {
    /// Every sort column.
    pub const ALL: [HostSort; 6] = [
        HostSort::Hostname,
        HostSort::State,
        HostSort::Since,
        HostSort::Actor,
        HostSort::LastSeen,
        HostSort::Backend,
    ];

    /// Stable name: `host`, `state`, `since`, `by`, `last_seen`, `backend`.
    pub fn as_str(self) -> &'static str {
        match self {
            HostSort::Hostname => "host",
            HostSort::State => "state",
            HostSort::Since => "since",
            HostSort::Actor => "by",
            HostSort::LastSeen => "last_seen",
            HostSort::Backend => "backend",
        }
    }

    /// Parses a stable name; `None` for anything else.
    pub fn parse(s: &str) -> Option<HostSort> {
        HostSort::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The sort key as SQL over `hosts h`, and whether it is a number.
    fn sql(self) -> (&'static str, bool) {
        match self {
            HostSort::Hostname => ("h.hostname", false),
            HostSort::State => (STATE_RANK_SQL, true),
            HostSort::Since => ("h.state_since", true),
            HostSort::Actor => ("COALESCE(h.actor, '')", false),
            HostSort::LastSeen => ("COALESCE(h.last_seen, 0)", true),
            HostSort::Backend => ("COALESCE(h.backend, '')", false),
        }
    }
}

/// The rank of [`HostSort::State`] (a constant expression: `concat!` keeps it one
/// `&'static str`).
const STATE_RANK_SQL: &str = concat!(
    "(CASE WHEN h.state = 'failed' THEN 0 WHEN h.state = 'tampered' THEN 1 ",
    "WHEN h.state = 'not_enforcing' OR (h.state = 'quarantined' AND h.enforcing = 0) THEN 2 ",
    "WHEN h.state = 'quarantined' AND h.degraded <> '[]' THEN 3 ",
    "WHEN h.state = 'quarantine_pending' THEN 4 WHEN h.state = 'release_pending' THEN 5 ",
    "WHEN h.state = 'quarantined' THEN 6 ELSE 7 END)"
);

/// What a host list shows: the filter, an optional attention reason, the sort.
#[derive(Debug, Clone, Default)]
pub struct HostQuery {
    /// Which hosts.
    pub filter: HostFilter,
    /// Only hosts needing attention for this reason.
    pub attention: Option<HostAttention>,
    /// Sort column.
    pub sort: HostSort,
    /// Descending order.
    pub descending: bool,
    /// The time attention reasons are judged at (Unix ms).
    pub now_ms: i64,
    /// Only hosts whose agent has (`Some(true)`) or has never (`Some(false)`) sent a
    /// status report ([`Host::never_reported`]).
    pub reported: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    Int(i64),
    Text(String),
}

/// A position in a sorted host list: just after (or, for the page before, just before)
/// the host it names. Opaque to clients: [`SortCursor::encode`] / [`SortCursor::decode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortCursor {
    sort: HostSort,
    descending: bool,
    key: Key,
    hostname: String,
    id: String,
}

impl SortCursor {
    /// Hex of `sort NUL dir NUL i|t key NUL hostname NUL id`.
    pub fn encode(&self) -> String {
        let (kind, key) = match &self.key {
            Key::Int(n) => ("i", n.to_string()),
            Key::Text(t) => ("t", t.clone()),
        };
        let dir = if self.descending { "desc" } else { "asc" };
        hex::encode(format!(
            "{}\0{dir}\0{kind}{key}\0{}\0{}",
            self.sort.as_str(),
            self.hostname,
            self.id
        ))
    }

    /// # Errors
    /// `Invalid` when `text` is not a cursor this server handed out for `sort`/`descending`
    /// (a cursor of another sort order would skip or repeat hosts).
    pub fn decode(text: &str, sort: HostSort, descending: bool) -> Result<SortCursor, StoreError> {
        let bad = || {
            StoreError::Invalid(format!(
                "cursor {text:?} is not one this server handed out for this order"
            ))
        };
        let bytes = hex::decode(text).map_err(|_| bad())?;
        let s = String::from_utf8(bytes).map_err(|_| bad())?;
        let parts: Vec<&str> = s.splitn(5, '\0').collect();
        let [sort_s, dir, key, hostname, id] = parts[..] else {
            return Err(bad());
        };
        if sort_s != sort.as_str() || dir != if descending { "desc" } else { "asc" } {
            return Err(bad());
        }
        let key = match (key.get(..1), key.get(1..)) {
            (Some("i"), Some(n)) if sort.sql().1 => Key::Int(n.parse().map_err(|_| bad())?),
            (Some("t"), Some(t)) if !sort.sql().1 => Key::Text(t.to_string()),
            _ => return Err(bad()),
        };
        Ok(SortCursor {
            sort,
            descending,
            key,
            hostname: hostname.to_string(),
            id: id.to_string(),
        })
    }
}

/// Where a page starts.
#[derive(Debug, Clone, Default)]
pub enum PageAt {
    /// The first page.
    #[default]
    First,
    /// The hosts after this one.
    After(SortCursor),
    /// The hosts before this one (the page before).
    Before(SortCursor),
}

/// One page of a sorted host list.
#[derive(Debug, Clone)]
pub struct SortedPage {
    /// The hosts, in order.
    pub hosts: Vec<Host>,
    /// Continue after the last host (`None` on the last page).
    pub next: Option<SortCursor>,
    /// The page before the first host (`None` on the first page).
    pub prev: Option<SortCursor>,
}

/// A value bound to a query.
enum Val {
    I(i64),
    S(String),
    /// The time of the query ([`HostQuery::now_ms`]).
    Now,
}

/// The WHERE clause (without keyset condition) of `q`, and its values.
fn where_clause(q: &HostQuery, vals: &mut Vec<Val>) -> String {
    let mut sql = String::from(" WHERE 1=1");
    let mut param = |sql: &mut String, frag: &str, v: Val| {
        vals.push(v);
        sql.push_str(&frag.replace('?', &format!("${}", vals.len())));
    };
    let f = &q.filter;
    sql.push_str(&super::hosts::revoked_sql(f));
    if let Some(l) = &f.label {
        param(
            &mut sql,
            " AND EXISTS (SELECT 1 FROM host_labels l WHERE l.host_id = h.id AND l.label = ?)",
            Val::S(l.clone()),
        );
    }
    if let Some(st) = f.state {
        param(&mut sql, " AND h.state = ?", Val::S(st.as_str().to_string()));
    }
    if let Some(off) = f.offline {
        let not = if off { "" } else { "NOT " };
        param(&mut sql, &format!(" AND {not}{}", offline_sql("?")), Val::Now);
    }
    if let Some(t) = f.text.as_deref().filter(|t| !t.is_empty()) {
        let pat = super::hosts::like_pattern(t);
        param(&mut sql, " AND (LOWER(h.id) LIKE ? ESCAPE '\\'", Val::S(pat.clone()));
        param(
            &mut sql,
            " OR LOWER(h.hostname) LIKE ? ESCAPE '\\'",
            Val::S(pat.clone()),
        );
        param(&mut sql, " OR LOWER(h.addresses) LIKE ? ESCAPE '\\')", Val::S(pat));
    }
    match q.reported {
        Some(true) => sql.push_str(&format!(" AND NOT {NEVER_REPORTED_SQL}")),
        Some(false) => sql.push_str(&format!(" AND {NEVER_REPORTED_SQL}")),
        None => {}
    }
    if let Some(a) = q.attention {
        let frag = attention_sql(a, vals);
        sql.push_str(&format!(" AND {frag}"));
    }
    sql
}

fn attention_sql(a: HostAttention, vals: &mut Vec<Val>) -> String {
    let cond = a.sql();
    if cond.contains("$NOW") {
        // The time is bound once per condition.
        vals.push(Val::Now);
        let n = vals.len();
        cond.replace("$NOW", &format!("${n}"))
    } else {
        cond
    }
}

fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    vals: Vec<Val>,
    now: i64,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for v in vals {
        q = match v {
            Val::Now => q.bind(now),
            Val::I(n) => q.bind(n),
            Val::S(s) => q.bind(s),
        };
    }
    q
}

/// `(key, hostname, id) > (…)` (or `<`), with the cursor's values.
fn keyset(c: &SortCursor, greater: bool, vals: &mut Vec<Val>) -> String {
    let (expr, _) = c.sort.sql();
    vals.push(match &c.key {
        Key::Int(n) => Val::I(*n),
        Key::Text(t) => Val::S(t.clone()),
    });
    let k = vals.len();
    vals.push(Val::S(c.hostname.clone()));
    vals.push(Val::S(c.id.clone()));
    let op = if greater { ">" } else { "<" };
    format!(" AND ({expr}, h.hostname, h.id) {op} (${k}, ${}, ${})", k + 1, k + 2)
}

impl Store {
    /// One page of at most `limit` hosts (capped at [`MAX_PAGE`]) of the list `q`
    /// describes, at `at`. Everything runs in SQL.
    ///
    /// # Errors
    /// `Invalid` for a cursor of another sort order; database errors.
    pub async fn hosts_sorted_page(&self, q: &HostQuery, at: &PageAt, limit: i64) -> Result<SortedPage, StoreError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let cols = HOST_COLUMNS
            .split(", ")
            .map(|c| format!("h.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let (expr, numeric) = q.sort.sql();
        let mut vals = Vec::new();
        let mut sql = format!("SELECT {cols}, {expr} AS sort_key FROM hosts h");
        sql.push_str(&where_clause(q, &mut vals));
        // Going backwards reads the list the other way round, then turns the page over.
        let backwards = matches!(at, PageAt::Before(_));
        let reading_desc = q.descending != backwards;
        match at {
            PageAt::First => {}
            PageAt::After(c) | PageAt::Before(c) => {
                if c.sort != q.sort || c.descending != q.descending {
                    return Err(StoreError::Invalid(
                        "cursor is not one this server handed out for this order".into(),
                    ));
                }
                sql.push_str(&keyset(c, !reading_desc, &mut vals));
            }
        }
        let dir = if reading_desc { "DESC" } else { "ASC" };
        sql.push_str(&format!(
            " ORDER BY sort_key {dir}, h.hostname {dir}, h.id {dir} LIMIT {}",
            limit + 1
        ));
        let rows = bind_all(sqlx::query(&sql), vals, q.now_ms)
            .fetch_all(&self.pool)
            .await?;
        let more = rows.len() as i64 > limit;
        let mut rows: Vec<&AnyRow> = rows.iter().take(limit as usize).collect();
        if backwards {
            rows.reverse();
        }
        let ids: Vec<String> = rows.iter().map(|r| get_str(r, "id")).collect::<Result<_, _>>()?;
        let mut labels = self.labels_of(&ids).await?;
        let mut hosts = Vec::with_capacity(rows.len());
        let mut keys = Vec::with_capacity(rows.len());
        for (row, id) in rows.iter().zip(&ids) {
            hosts.push(host_from_row(row, labels.remove(id).unwrap_or_default())?);
            keys.push(if numeric {
                Key::Int(get_i64(row, "sort_key")?)
            } else {
                Key::Text(get_str(row, "sort_key")?)
            });
        }
        // Duplicate hostnames and shared addresses, the acting token's name now (issue 17),
        // for the console to show.
        super::hosts::annotate(&self.pool, &mut hosts).await?;
        let cursor = |i: usize| {
            hosts.get(i).zip(keys.get(i)).map(|(h, k)| SortCursor {
                sort: q.sort,
                descending: q.descending,
                key: k.clone(),
                hostname: h.hostname.clone(),
                id: h.id.clone(),
            })
        };
        let last = hosts.len().checked_sub(1);
        let (next, prev) = match at {
            PageAt::First => (if more { last.and_then(cursor) } else { None }, None),
            PageAt::After(_) => (if more { last.and_then(cursor) } else { None }, cursor(0)),
            PageAt::Before(_) => (last.and_then(cursor), if more { cursor(0) } else { None }),
        };
        Ok(SortedPage { hosts, next, prev })
    }

    /// How many hosts `q` lists, and how many of them come before `first` (the first host
    /// of a page) in its order: "hosts 101–200 of 1,000".
    pub async fn hosts_sorted_count(
        &self,
        q: &HostQuery,
        first: Option<&SortCursor>,
    ) -> Result<(i64, i64), StoreError> {
        let mut vals = Vec::new();
        let mut sql = String::from("SELECT COUNT(*) AS n FROM hosts h");
        sql.push_str(&where_clause(q, &mut vals));
        let total = get_i64(
            &bind_all(sqlx::query(&sql), vals, q.now_ms)
                .fetch_one(&self.pool)
                .await?,
            "n",
        )?;
        let before = match first {
            None => 0,
            Some(c) => {
                let mut vals = Vec::new();
                let mut sql = String::from("SELECT COUNT(*) AS n FROM hosts h");
                sql.push_str(&where_clause(q, &mut vals));
                sql.push_str(&keyset(c, q.descending, &mut vals));
                get_i64(
                    &bind_all(sqlx::query(&sql), vals, q.now_ms)
                        .fetch_one(&self.pool)
                        .await?,
                    "n",
                )?
            }
        };
        Ok((total, before))
    }

    /// How many hosts need attention at `now` (Unix ms), per reason (a host can count
    /// under several; only [`HostAttention::RevokedQuarantined`] counts revoked hosts), in
    /// [`HostAttention::ALL`] order. One query.
    pub async fn attention_counts(&self, now: i64) -> Result<Vec<(HostAttention, i64)>, StoreError> {
        let mut vals = Vec::new();
        let cols: Vec<String> = HostAttention::ALL
            .iter()
            .map(|a| {
                format!(
                    "COUNT(CASE WHEN {} THEN 1 END) AS {}",
                    attention_sql(*a, &mut vals),
                    a.as_str()
                )
            })
            .collect();
        let sql = format!("SELECT {} FROM hosts h", cols.join(", "));
        let row = bind_all(sqlx::query(&sql), vals, now).fetch_one(&self.pool).await?;
        HostAttention::ALL
            .iter()
            .map(|a| Ok((*a, get_i64(&row, a.as_str())?)))
            .collect()
    }

    /// How many hosts `q` lists per state, with `not_enforcing` and `degraded` counted
    /// apart from `quarantined` (a quarantine an agent does not enforce is not one; a
    /// degraded one lacks exceptions), and `never_reported` apart from `normal` (nobody
    /// confirmed that state: [`Host::never_reported`]).
    pub async fn hosts_state_counts(&self, q: &HostQuery) -> Result<Vec<(String, i64)>, StoreError> {
        let mut vals = Vec::new();
        let mut sql = format!(
            "SELECT CASE WHEN ({QUARANTINE_NOT_ENFORCED_SQL}) THEN 'not_enforcing' WHEN ({DEGRADED_SQL}) THEN 'degraded' \
             WHEN h.state = 'normal' AND {NEVER_REPORTED_SQL} THEN 'never_reported' \
             ELSE h.state END AS shown, COUNT(*) AS n FROM hosts h"
        );
        sql.push_str(&where_clause(q, &mut vals));
        sql.push_str(" GROUP BY shown ORDER BY shown");
        let rows = bind_all(sqlx::query(&sql), vals, q.now_ms)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((get_str(r, "shown")?, get_i64(r, "n")?)))
            .collect()
    }

    /// Every label a non-revoked host carries, sorted.
    pub async fn host_labels(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT l.label AS label FROM host_labels l JOIN hosts h ON h.id = l.host_id \
             WHERE h.revoked = 0 ORDER BY l.label",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| get_str(r, "label")).collect()
    }

    async fn labels_of(&self, ids: &[String]) -> Result<std::collections::HashMap<String, Vec<String>>, StoreError> {
        let mut labels: std::collections::HashMap<String, Vec<String>> = Default::default();
        if ids.is_empty() {
            return Ok(labels);
        }
        let marks = (1..=ids.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
        let sql = format!("SELECT host_id, label FROM host_labels WHERE host_id IN ({marks}) ORDER BY label");
        let mut q = sqlx::query(&sql);
        for id in ids {
            q = q.bind(id.clone());
        }
        for r in q.fetch_all(&self.pool).await? {
            labels
                .entry(get_str(&r, "host_id")?)
                .or_default()
                .push(get_str(&r, "label")?);
        }
        Ok(labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_another_order() {
        let c = SortCursor {
            sort: HostSort::Since,
            descending: true,
            key: Key::Int(42),
            hostname: "web".into(),
            id: "h1".into(),
        };
        assert_eq!(SortCursor::decode(&c.encode(), HostSort::Since, true).unwrap(), c);
        assert!(SortCursor::decode(&c.encode(), HostSort::Since, false).is_err());
        assert!(SortCursor::decode(&c.encode(), HostSort::Hostname, true).is_err());
        assert!(SortCursor::decode("zz", HostSort::Since, true).is_err());
        assert!(SortCursor::decode(&hex::encode("since\0desc\0tabc\0a\0b"), HostSort::Since, true).is_err());
        for s in HostSort::ALL {
            assert_eq!(HostSort::parse(s.as_str()), Some(s));
        }
        for a in HostAttention::ALL {
            assert_eq!(HostAttention::parse(a.as_str()), Some(a));
        }
    }
}
