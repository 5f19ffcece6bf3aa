//! Ownership claims: who wants this host quarantined (issue #19 item 9).
//!
//! Wazuh active response, the Velociraptor artifact, the Cordon agent and a local
//! operator share one firewall table and state directory. Each of them holds its own
//! claim (a [`ClaimSource`] and the request it made); the host stays quarantined while
//! any claim stands, with the union of every claim's exceptions (each manager keeps its
//! own server reachable); a release removes only the releasing source's claim, unless it
//! is forced. The claims live next to the state file in `<table>.claims.json` (written
//! atomically like the state), guarded by their own lock taken before the state lock.
//!
//! A quarantine recorded before claims existed (a state file without a claims file)
//! is listed as one `local` claim, and any source's release removes it (its owner is
//! unknown).
//!
//! # The enrolled agent's management paths
//!
//! An enrolled Cordon agent must reach its server whoever quarantines the host: a Wazuh
//! or Velociraptor quarantine that only allows *its* manager would cut the agent off
//! (no reports, no remote quarantine or release). So the agent records its management
//! paths — every server's and its proxy's resolved address:port, and whether it needs DNS
//! to find them — in `<table>.agent-paths.json` next to the claims, at start and whenever
//! they change ([`Engine::set_management_paths`]). Every merge of standing claims
//! ([`merge_with_paths`]) includes them, whoever applies the claim (`cordon wazuh-ar`,
//! `cordon isolate --source …`, the agent); when the paths change while claims stand,
//! the merged quarantine is re-applied at once. The file stays after the agent stops (an
//! enrolled agent that is down still has to be able to come back); delete it when the
//! agent is removed from the host.

use std::fmt;
use std::fs::{self, File};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use cordon_policy::{AllowSpec, TableName};
use serde::{Deserialize, Serialize};

use crate::home;
use crate::{state, Engine, EngineError, IsolateOutcome, IsolateRequest, ReleaseOutcome};

/// Version of the claims file format.
pub const CLAIMS_VERSION: u32 = 1;

/// Who holds a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClaimSource {
    /// `cordon wazuh-ar` (Wazuh active response).
    Wazuh,
    /// The `Custom.Cordon.Quarantine` Velociraptor artifact.
    Velociraptor,
    /// The enrolled Cordon agent, on the server's orders.
    Agent,
    /// An operator on the host (`cordon isolate` without `--source`).
    Local,
}

impl ClaimSource {
    /// Every source, in the order claims are listed.
    pub const ALL: [ClaimSource; 4] = [
        ClaimSource::Wazuh,
        ClaimSource::Velociraptor,
        ClaimSource::Agent,
        ClaimSource::Local,
    ];

    /// The lowercase name used in the claims file, JSON and `--source`.
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimSource::Wazuh => "wazuh",
            ClaimSource::Velociraptor => "velociraptor",
            ClaimSource::Agent => "agent",
            ClaimSource::Local => "local",
        }
    }
}

impl fmt::Display for ClaimSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ClaimSource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ClaimSource::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("{s:?} is not a claim source (wazuh, velociraptor, agent, local)"))
    }
}

/// One source's standing request to keep the host quarantined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// Who holds the claim.
    pub source: ClaimSource,
    /// What that source asked for; the policy in force is the union of all claims.
    pub request: IsolateRequest,
    /// RFC 3339, when this source's claim began: kept while the same source isolates
    /// again (a re-apply, a repair, a new revision or another Wazuh alert), so it says
    /// since when the source has held the host ([`record_claim`]).
    pub claimed_at: String,
    /// Which holder of `source` made the claim: the enrolled agent's host id for an
    /// `agent` claim (trial20 HIGH-C: after a re-enrollment, the new enrollment's
    /// quarantine adopted the previous one's claim and its release lifted it). A claim
    /// belongs to one enrollment: an agent records and releases only its own
    /// ([`Engine::owned_by`]). `None`: not known (other sources; claims written before
    /// owners were recorded, which any holder of the source may release).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The claim was never recorded by its holder but read from the kernel's record of
    /// the quarantine in force (the tables' comment named the holder, no claims file
    /// did: applied while the state directory could not be written; issue 14 MED-4) and
    /// recorded by the next claim change ([`Claim::from_kernel`]). Its request is not
    /// known: it adds no exception (fail closed), and `claimed_at` is empty (not known).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub from_kernel: bool,
}

impl Claim {
    /// The claim of a holder the tables' comment names (`token`: `wazuh`,
    /// `agent:HOSTID`, as [`Claim::holder_token`] writes them) that no claims file holds:
    /// the kernel's record says this holder's quarantine is in force, so it stands until
    /// that holder releases it (issue 14 MED-4: an agent's apply rewrote the comment and
    /// the server's release opened a host Wazuh never released). What it asked for is not
    /// known: the request adds no exception, no DNS and no DHCP (fail closed, as a claims
    /// file that cannot be read). `None` when `token` names no [`ClaimSource`].
    pub fn from_kernel(token: &str) -> Option<Claim> {
        let (src, owner) = match token.split_once(':') {
            Some((s, o)) => (s, Some(o.to_string())),
            None => (token, None),
        };
        let source = src.parse::<ClaimSource>().ok()?;
        Some(Claim {
            source,
            request: IsolateRequest {
                allow: vec![],
                servers: vec![],
                resolvers: Some(vec![]),
                dns: false,
                dhcp: false,
                dhcp_servers: Some(vec![]),
                allow_no_isolation: false,
                message: None,
                verify: None,
                verify_timeout: crate::DEFAULT_VERIFY_TIMEOUT,
            },
            claimed_at: String::new(),
            owner,
            from_kernel: true,
        })
    }

    /// Whether this claim is the one the tables' comment names with `token`
    /// ([`Claim::holder_token`]): the same source, and the same owner when the token
    /// carries one (a token without owner — an owner too long for the comment, or none —
    /// is any claim of the source). A claim without owner never accounts for a token
    /// naming one: that holder is another (fail closed: it is kept as a claim of its own).
    pub fn accounts_for(&self, token: &str) -> bool {
        let (src, owner) = match token.split_once(':') {
            Some((s, o)) => (s, Some(o)),
            None => (token, None),
        };
        src.parse::<ClaimSource>().is_ok_and(|s| s == self.source)
            && match (owner, self.owner.as_deref()) {
                (None, _) => true,
                (Some(t), Some(o)) => t.eq_ignore_ascii_case(o),
                (Some(_), None) => false,
            }
    }

    /// The claim's holder as the tables' comment names it
    /// ([`cordon_policy::Policy::claimed_by`]): `source`, or `source:owner` when the owner
    /// can be carried ([`cordon_policy::render::claim_token_fits`]).
    pub fn holder_token(&self) -> String {
        match &self.owner {
            Some(o) => {
                let t = format!("{}:{}", self.source, o.to_ascii_lowercase());
                if cordon_policy::render::claim_token_fits(&t) {
                    t
                } else {
                    self.source.to_string()
                }
            }
            None => self.source.to_string(),
        }
    }
}

/// Whether a claim of `claim_source` by `claim_owner` is one that `source` released by
/// `owner` may drop: the same source, and the same owner when both are known (a claim
/// without owner predates owners; a release on the host naming only the source is the
/// operator's, for any owner).
pub fn held_by(claim_source: ClaimSource, claim_owner: Option<&str>, source: ClaimSource, owner: Option<&str>) -> bool {
    claim_source == source
        && match (claim_owner, owner) {
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            _ => true,
        }
}

/// [`held_by`] for a holder token of the tables' comment (`agent:HOSTID`, `wazuh`; see
/// [`Claim::holder_token`]).
pub fn token_held_by(token: &str, source: ClaimSource, owner: Option<&str>) -> bool {
    let (src, tok_owner) = match token.split_once(':') {
        Some((s, o)) => (s, Some(o)),
        None => (token, None),
    };
    src.parse::<ClaimSource>()
        .is_ok_and(|s| held_by(s, tok_owner, source, owner))
}

/// The holders `kernel` (the tables' comment, [`Engine::kernel_claimants`]) names that no
/// claim in `claims` accounts for ([`Claim::accounts_for`]), in the comment's order. Pure.
pub fn kernel_only_holders<'a>(claims: &[Claim], kernel: &'a [String]) -> Vec<&'a str> {
    kernel
        .iter()
        .map(String::as_str)
        .filter(|t| !claims.iter().any(|c| c.accounts_for(t)))
        .collect()
}

/// The holder tokens of the claims recorded in `dir` for `table` (empty when none can be
/// read): what an apply that was not given its claims names in the tables' comment.
pub(crate) fn recorded_claimants(dir: &Path, table: &TableName) -> Vec<String> {
    load_file(dir, table)
        .ok()
        .flatten()
        .unwrap_or_default()
        .iter()
        .map(Claim::holder_token)
        .collect()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ClaimsFile {
    version: u32,
    claims: Vec<Claim>,
}

/// What `isolate_as` did.
#[derive(Debug, Clone, Serialize)]
pub struct ClaimIsolateOutcome {
    /// The isolate itself (flattened into the same JSON object).
    #[serde(flatten)]
    pub outcome: IsolateOutcome,
    /// The source whose claim was recorded.
    pub source: ClaimSource,
    /// Every claim now standing (this one included).
    pub claims: Vec<ClaimSource>,
}

/// What `release_as` did.
#[derive(Debug, Clone, Serialize)]
pub struct ClaimReleaseOutcome {
    /// `released` (no claim left, rules removed) or `isolated` (other claims stand).
    pub state: &'static str,
    /// The source whose claim was dropped.
    pub source: ClaimSource,
    /// False when `source` held no claim (nothing changed).
    pub released_claim: bool,
    /// `--force`: every claim was dropped and the rules removed regardless.
    pub forced: bool,
    /// Claims still standing.
    pub claims: Vec<ClaimSource>,
    /// Set when the rules were removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<ReleaseOutcome>,
    /// Why the remaining claims' exceptions could not be recomputed (the rules in force
    /// are unchanged and still a quarantine), or that an unresponsive holder of the tables
    /// was stopped so the release could proceed (`stopped unresponsive holder pid N …`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// Records set aside or read from a backup that are still there (a state file set
    /// aside as unusable when a quarantine was applied over it, …; one sentence each,
    /// naming the file): the operator inspects and deletes them (issue 14 item 4).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub record_problems: Vec<String>,
}

/// Records the claim of `source` held by `owner` for `req` in `claims`: a new claim
/// claimed `now`, or that holder's standing claim with its request replaced and its
/// original `claimed_at` kept (re-applying, repairing or re-isolating does not restart a
/// claim). Another owner's claim of the same source (a previous enrollment's `agent`
/// claim, trial20 HIGH-C) is never taken over: it stays a claim of its own.
pub fn record_claim(
    claims: &mut Vec<Claim>,
    source: ClaimSource,
    owner: Option<&str>,
    req: &IsolateRequest,
    now: String,
) {
    let same = |c: &Claim| {
        c.source == source
            && match (c.owner.as_deref(), owner) {
                (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                (a, b) => a == b,
            }
    };
    // A claim read from the kernel has no known start: the recorded one starts now.
    let since = claims
        .iter()
        .find(|c| same(c) && !c.claimed_at.is_empty())
        .map(|c| c.claimed_at.clone())
        .unwrap_or(now);
    claims.retain(|c| !same(c));
    claims.push(Claim {
        source,
        request: req.clone(),
        claimed_at: since,
        owner: owner.map(str::to_string),
        from_kernel: false,
    });
}

/// The request that serves every claim: newest first; exceptions, servers and resolvers
/// united (DHCP servers too; discovery if any claim relies on it); DNS/DHCP kept if any
/// claim keeps them; message and verification from the
/// newest claim. Empty input gives `None`.
pub fn merge(claims: &[Claim]) -> Option<IsolateRequest> {
    let mut ordered: Vec<&Claim> = claims.iter().collect();
    ordered.sort_by(|a, b| b.claimed_at.cmp(&a.claimed_at));
    let newest = ordered.first()?;
    let mut out = IsolateRequest {
        allow: vec![],
        servers: vec![],
        resolvers: Some(vec![]),
        dns: false,
        dhcp: false,
        message: newest.request.message.clone(),
        verify: newest.request.verify.clone(),
        verify_timeout: newest.request.verify_timeout,
        dhcp_servers: Some(vec![]),
        allow_no_isolation: false,
    };
    for c in &ordered {
        let r = &c.request;
        add_missing(&mut out.allow, &r.allow);
        add_missing(&mut out.servers, &r.servers);
        // One claim relies on discovery (resolv.conf, the lease files): discover.
        out.resolvers = union_known(out.resolvers.take(), r.resolvers.as_deref());
        out.dhcp_servers = union_known(out.dhcp_servers.take(), r.dhcp_servers.as_deref());
        out.dns |= r.dns;
        out.dhcp |= r.dhcp;
        // A claim that accepted a policy isolating nothing keeps that consent; status
        // still marks such a policy loudly.
        out.allow_no_isolation |= r.allow_no_isolation;
    }
    Some(out)
}

/// What the quarantine in force (`policy`, the union of every claim) fails to isolate,
/// one sentence per address family it leaves fully open (trial15 HIGH-4: the server said
/// `quarantined` while another source's claim with `--allow 0.0.0.0/0
/// --allow-no-isolation` opened every IPv4 destination). Each sentence starts with `NOT
/// ISOLATED:` and names the claims whose whole-network exceptions of that family widen the
/// union (their source, since when, the networks, and whether they gave
/// `--allow-no-isolation`). Empty when the policy isolates both families. Pure: the policy
/// as recorded, the claims as read.
pub fn not_isolated_words(policy: &cordon_policy::Policy, claims: &[Claim]) -> Vec<String> {
    use cordon_policy::model::Family;
    use cordon_policy::{Target, Transport};
    policy
        .fully_open_families()
        .into_iter()
        .map(|family| {
            let fam = match family {
                Family::V4 => "IPv4",
                Family::V6 => "IPv6",
            };
            // Each claim's networks of this family (every protocol); a claim with a whole
            // family (`0.0.0.0/0`) is named alone, else every claim whose pieces add up.
            // (prefix length, the network as written)
            let nets_of = |c: &Claim| -> Vec<(u8, String)> {
                c.request
                    .allow
                    .iter()
                    .filter(|a| a.transport == Transport::Any)
                    .filter_map(|a| match &a.target {
                        Target::Net(n) if Family::of(&n.addr()) == family => Some((n.prefix_len(), n.to_string())),
                        _ => None,
                    })
                    .collect()
            };
            let whole = claims.iter().any(|c| nets_of(c).iter().any(|(len, _)| *len == 0));
            let widening: Vec<String> = claims
                .iter()
                .filter_map(|c| {
                    let nets = nets_of(c);
                    let named = if whole {
                        nets.iter().any(|(len, _)| *len == 0)
                    } else {
                        !nets.is_empty()
                    };
                    let nets: Vec<String> = nets.into_iter().map(|(_, n)| n).collect();
                    named.then(|| {
                        format!(
                            "claim `{}` (since {}) allows {}{}",
                            c.source,
                            c.claimed_at,
                            nets.join(", "),
                            if c.request.allow_no_isolation {
                                " with --allow-no-isolation"
                            } else {
                                ""
                            }
                        )
                    })
                })
                .collect();
            let why = if widening.is_empty() {
                let all: Vec<&str> = claims.iter().map(|c| c.source.as_str()).collect();
                format!("the claims in force ({}) together allow it", all.join(", "))
            } else {
                widening.join("; ")
            };
            format!(
                "NOT ISOLATED: the quarantine in force allows every {fam} destination: {why}; every claim on this host is merged into one quarantine, so a claim that isolates nothing opens the host for all of them (`cordon release --source SOURCE` on the host drops that claim)"
            )
        })
        .collect()
}

/// The enrolled agent's management paths: what every quarantine on this host must keep
/// open so the agent can reach its server (see the module comment).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagementPaths {
    /// TCP destinations: every server URL's and the proxy's resolved `IP:port` (as
    /// server exceptions: the connection the agent opens, and its answers).
    pub servers: Vec<AllowSpec>,
    /// The agent finds its server or proxy by name: keep DNS to the host's resolvers.
    #[serde(default)]
    pub dns: bool,
    /// Explicit resolvers the agent uses; `None`: the host's own (discovered from
    /// resolv.conf, as a claim without `--resolver` does).
    #[serde(default)]
    pub resolvers: Option<Vec<IpAddr>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PathsFile {
    version: u32,
    /// RFC 3339, when the agent recorded these paths.
    recorded_at: String,
    #[serde(flatten)]
    paths: ManagementPaths,
}

/// [`merge`] plus the enrolled agent's management `paths` (servers united, DNS kept when
/// the agent needs it, its resolvers). `None` when no claim stands: paths alone never
/// quarantine a host.
pub fn merge_with_paths(claims: &[Claim], paths: Option<&ManagementPaths>) -> Option<IsolateRequest> {
    let mut out = merge(claims)?;
    let Some(p) = paths else { return Some(out) };
    add_missing(&mut out.servers, &p.servers);
    if p.dns {
        out.dns = true;
        out.resolvers = union_known(out.resolvers.take(), p.resolvers.as_deref());
    }
    Some(out)
}

/// What the enrolled agent's management `paths` open on top of what `req` (one source's
/// request) asked for, as a sentence, or `None` when they add nothing: the servers `req`
/// names neither as a server nor as an exception, and DNS when `req` said `--no-dns`
/// (trial34 H1: both were opened without a word). These paths are kept open, never
/// verified, for this source.
pub fn paths_added_words(req: &IsolateRequest, paths: &ManagementPaths) -> Option<String> {
    let extra: Vec<String> = paths
        .servers
        .iter()
        .filter(|s| !req.servers.contains(s) && !req.allow.contains(s))
        .map(|s| s.to_string())
        .collect();
    let dns_over = paths.dns && !req.dns;
    if extra.is_empty() && !dns_over {
        return None;
    }
    let mut parts = vec![];
    if !extra.is_empty() {
        parts.push(extra.join(", "));
    }
    if dns_over {
        parts.push(match &paths.resolvers {
            Some(r) if !r.is_empty() => format!(
                "DNS to {} although --no-dns was given (the agent finds its server by name)",
                r.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ")
            ),
            _ => "DNS to the host's resolvers although --no-dns was given (the agent finds its server by name)"
                .to_string(),
        });
    }
    Some(format!(
        "also kept open for the enrolled agent (its management paths, agent-paths.json; kept open, not verified): {}. If no agent runs on this host any more, delete agent-paths.json from the state directory",
        parts.join("; ")
    ))
}

/// The enrolled agent's management `paths` as `status` prints them (kept open with every
/// claim, not a claim themselves): `tcp://192.0.2.1:8443; DNS`; `None` when they keep
/// nothing open.
pub fn paths_words(paths: &ManagementPaths) -> Option<String> {
    let mut parts: Vec<String> = paths.servers.iter().map(|s| s.to_string()).collect();
    if paths.dns {
        parts.push(match &paths.resolvers {
            Some(r) if !r.is_empty() => format!(
                "DNS to {}",
                r.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ")
            ),
            _ => "DNS to the host's resolvers".to_string(),
        });
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// Appends the items of `more` that `have` lacks, keeping `have`'s order.
fn add_missing<T: PartialEq + Clone>(have: &mut Vec<T>, more: &[T]) {
    for x in more {
        if !have.contains(x) {
            have.push(x.clone());
        }
    }
}

/// The union of two explicit lists; `None` (discover them on the host) when either side
/// relies on discovery, since a merged quarantine must keep whatever either one keeps.
fn union_known<T: PartialEq + Clone>(have: Option<Vec<T>>, more: Option<&[T]>) -> Option<Vec<T>> {
    let (mut have, more) = (have?, more?);
    add_missing(&mut have, more);
    Some(have)
}

fn path(dir: &Path, table: &TableName) -> PathBuf {
    dir.join(format!("{}.claims.json", table.as_str()))
}

/// `<state_dir>/agent-paths.json`: one per state directory whatever the agent's `table`
/// (trial6 HIGH 3: a per-table file was missed by every merge of another table, e.g. the
/// Wazuh wrapper's default table under an agent with `table = "corp"`). Not a table name,
/// so [`state::recorded_tables`] skips it.
pub fn paths_path(dir: &Path) -> PathBuf {
    dir.join("agent-paths.json")
}

/// The per-table file earlier versions wrote (`<table>.agent-paths.json`); never read
/// (a stale one was used instead of the agent's current paths), removed when the agent
/// records its paths.
fn legacy_paths_path(dir: &Path, table: &TableName) -> PathBuf {
    dir.join(format!("{}.agent-paths.json", table.as_str()))
}

fn read_paths_file(p: &Path) -> Result<Option<ManagementPaths>, EngineError> {
    Ok(read_versioned::<PathsFile>(p, |f| f.version)?.map(|f| f.paths))
}

/// The agent's management paths every merge in `dir` must keep open: the paths file in
/// `dir`, united with the one the agent of this network namespace registered wherever its
/// own state directory is (`crate::home`), so a claim recorded in another state directory
/// keeps the agent's paths too. A registered file that cannot be read is skipped.
fn load_paths(dir: &Path, _table: &TableName) -> Result<Option<ManagementPaths>, EngineError> {
    let own = paths_path(dir);
    let mut out = read_paths_file(&own)?;
    if let Some(reg) = crate::home::agent_paths() {
        if reg != crate::home::absolute(&own) {
            if let Ok(Some(more)) = read_paths_file(&reg) {
                out = Some(match out {
                    None => more,
                    Some(mut have) => {
                        for s in more.servers {
                            if !have.servers.contains(&s) {
                                have.servers.push(s);
                            }
                        }
                        if more.dns {
                            have.resolvers = match (have.resolvers.take(), more.resolvers) {
                                (Some(mut a), Some(b)) if have.dns => {
                                    for ip in b {
                                        if !a.contains(&ip) {
                                            a.push(ip);
                                        }
                                    }
                                    Some(a)
                                }
                                (_, b) if !have.dns => b,
                                _ => None,
                            };
                            have.dns = true;
                        }
                        have
                    }
                });
            }
        }
    }
    Ok(out)
}

/// `<table>.claims.backup`: a second copy of the claims file, written with it (trial15
/// LOW-A/HIGH-2b, trial17 MED-1). A claims file that was deleted or corrupted is read
/// from it, so a claim is never re-labelled (a state file without claims reads as one
/// `local` claim) and an unreadable file does not lose the other sources' claims. Not a
/// `.json` name, so [`state::recorded_tables`] skips it.
pub fn backup_path(dir: &Path, table: &TableName) -> PathBuf {
    dir.join(format!("{}.claims.backup", table.as_str()))
}

/// Where a claims file that could be read neither itself nor from its backup is moved
/// when a quarantine is applied over it (`<table>.claims.json.corrupt`): kept for the
/// operator, named in `status` and the agent's report until deleted.
pub fn set_aside_path(dir: &Path, table: &TableName) -> PathBuf {
    dir.join(format!("{}.claims.json.corrupt", table.as_str()))
}

/// Where an unusable state file is moved when a quarantine is applied over it
/// (`<table>.json.corrupt`; not a `.json` name, so never read as a table's record).
pub fn state_set_aside_path(dir: &Path, table: &TableName) -> PathBuf {
    dir.join(format!("{}.json.corrupt", table.as_str()))
}

/// Moves the unusable record `bad` to `preferred` (or, when something that cannot be
/// replaced stands there, to the next free [`crate::record::aside_name`]); returns where.
fn set_aside_file(bad: &Path, preferred: &Path) -> std::io::Result<PathBuf> {
    match fs::rename(bad, preferred) {
        Ok(()) => Ok(preferred.to_path_buf()),
        Err(first) => {
            let other = crate::record::aside_name(bad);
            fs::rename(bad, &other).map(|()| other).map_err(|_| first)
        }
    }
}

fn read_backup(dir: &Path, table: &TableName) -> Option<Vec<Claim>> {
    read_versioned::<ClaimsFile>(&backup_path(dir, table), |f| f.version)
        .ok()
        .flatten()
        .map(|f| f.claims)
}

/// The claims recorded in `dir` for `table`: the claims file, or its backup when the
/// file is missing (deleted: a cleared claims list removes both) or unreadable. `None`:
/// no claims recorded.
///
/// # Errors
/// The claims file cannot be read and has no readable backup.
fn load_file(dir: &Path, table: &TableName) -> Result<Option<Vec<Claim>>, EngineError> {
    match read_versioned::<ClaimsFile>(&path(dir, table), |f| f.version) {
        Ok(Some(f)) => Ok(Some(f.claims)),
        Ok(None) => Ok(read_backup(dir, table)),
        Err(e) => match read_backup(dir, table) {
            Some(c) => Ok(Some(c)),
            None => Err(e),
        },
    }
}

/// What is wrong with `dir`'s records of `table`, one sentence each, for `status`,
/// `release` and the agent's report: a claims file read from its backup (missing or
/// unreadable), a claims file set aside as unreadable ([`set_aside_path`]) and a state
/// file set aside as unusable ([`state_set_aside_path`]). Empty when all is well.
pub(crate) fn record_problems(dir: &Path, table: &TableName) -> Vec<String> {
    let mut out = vec![];
    let p = path(dir, table);
    let primary = read_versioned::<ClaimsFile>(&p, |f| f.version);
    if let Some(backup) = read_backup(dir, table).filter(|b| !b.is_empty()) {
        let names: Vec<&str> = backup.iter().map(|c| c.source.as_str()).collect();
        match primary {
            Ok(None) => out.push(format!(
                "claims file {} is missing; the claims ({}) were read from its backup {}",
                p.display(),
                names.join(", "),
                backup_path(dir, table).display()
            )),
            Err(e) => out.push(format!(
                "claims file {} is unreadable ({}); the claims ({}) were read from its backup {}",
                p.display(),
                crate::error::chain(&e),
                names.join(", "),
                backup_path(dir, table).display()
            )),
            Ok(Some(_)) => {}
        }
    }
    let state_aside = state_set_aside_path(dir, table);
    if fs::symlink_metadata(&state_aside).is_ok() {
        out.push(format!(
            "state file {} was unusable and was set aside as {} when a quarantine was applied over it; inspect it, then delete it",
            state::path(dir, table).display(),
            state_aside.display()
        ));
    }
    for aside in set_aside_files(dir, table) {
        out.push(format!(
            "claims file {} was unreadable and was set aside as {} when a quarantine was applied over it: claims recorded only there are neither in force nor known to a release; inspect it, then delete it",
            p.display(),
            aside.display()
        ));
    }
    out
}

/// Every claims file of `table` set aside as unreadable in `dir`, sorted: the
/// [`set_aside_path`] and the `.corrupt.N` names [`crate::record::aside_name`] picks when
/// that one is taken (issue 14 LOW: `status` named `.corrupt` for a file that went to
/// `.corrupt.1`).
fn set_aside_files(dir: &Path, table: &TableName) -> Vec<PathBuf> {
    let first = format!("{}.claims.json.corrupt", table.as_str());
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let Some(name) = name.to_str() else { return false };
            name == first
                || name
                    .strip_prefix(&first)
                    .and_then(|rest| rest.strip_prefix('.'))
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// Reads the JSON file `p` written with [`CLAIMS_VERSION`]: `None` when it does not exist.
///
/// # Errors
/// `StateIo` when it cannot be read, `StateUnusable` when it is not a regular file or
/// too large ([`crate::record`]), `StateCorrupt` when it is not that JSON,
/// `StateVersion` when `version` of it is not [`CLAIMS_VERSION`].
fn read_versioned<F: serde::de::DeserializeOwned>(
    p: &Path,
    version: impl Fn(&F) -> u32,
) -> Result<Option<F>, EngineError> {
    let text = match crate::record::read(p) {
        Ok(Some(t)) => t,
        Ok(None) => return Ok(None),
        Err(e) => return Err(EngineError::record(p, e)),
    };
    let file: F = serde_json::from_slice(&text).map_err(|source| EngineError::StateCorrupt {
        path: p.to_path_buf(),
        source,
    })?;
    if version(&file) != CLAIMS_VERSION {
        return Err(EngineError::StateVersion {
            path: p.to_path_buf(),
            found: version(&file),
            expected: CLAIMS_VERSION,
        });
    }
    Ok(Some(file))
}

/// Writes the claims file and its backup ([`backup_path`], first); an empty list removes
/// both (the backup first, so a backup never stands for a cleared list). One directory
/// fsync makes both renames durable.
fn save_file(dir: &Path, table: &TableName, claims: &[Claim]) -> Result<(), EngineError> {
    save_file_with(dir, table, claims, true)
}

/// [`save_file`]; without `sync_dir` the renames are made durable by the caller's next
/// directory fsync (`claim_and_apply`: one for the claims, their backup and the state).
fn save_file_with(dir: &Path, table: &TableName, claims: &[Claim], sync_dir: bool) -> Result<(), EngineError> {
    let p = path(dir, table);
    let b = backup_path(dir, table);
    // An absent file is removed even on a read-only file system (issue 14 LOW).
    let remove = |f: &Path| match crate::state::remove_if_present(f) {
        Ok(_) => Ok(()),
        Err(e) => Err(EngineError::state_io("remove", f, e)),
    };
    if claims.is_empty() {
        remove(&b)?;
        return remove(&p);
    }
    let json = serde_json::to_vec_pretty(&ClaimsFile {
        version: CLAIMS_VERSION,
        claims: claims.to_vec(),
    })
    .map_err(EngineError::StateEncode)?;
    write_atomic_with(dir, &b, &json, false)?;
    write_atomic_with(dir, &p, &json, sync_dir)
}

/// Creates `dir` (and missing parents) 0700 when missing, as the agent does for its state
/// directory (it holds the analyst's comment); an existing directory keeps its mode.
fn create_private_dir(dir: &Path) -> Result<(), EngineError> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
        .map_err(|e| EngineError::state_io("create the state directory", dir, e))
}

/// Writes `json` to `p` in `dir` atomically (0600, temp file, fsync, rename, dir fsync).
fn write_atomic(dir: &Path, p: &Path, json: &[u8]) -> Result<(), EngineError> {
    write_atomic_with(dir, p, json, true)
}

/// [`write_atomic`]; without `sync_dir` the rename is made durable by the caller's next
/// directory fsync of `dir`.
fn write_atomic_with(dir: &Path, p: &Path, json: &[u8], sync_dir: bool) -> Result<(), EngineError> {
    create_private_dir(dir)?;
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    crate::record::replace(&tmp, p, json).map_err(|e| EngineError::state_io("write", p, e.source))?;
    if sync_dir {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// The claims lock (`.claims.lock`): one claim change at a time; taken before the
/// state lock that `isolate`/`release` take.
pub(crate) struct ClaimsLock {
    _file: File,
}

impl ClaimsLock {
    /// Takes the claims lock, waiting at most [`crate::DEFAULT_LOCK_TIMEOUT`].
    #[cfg(test)]
    pub(crate) fn acquire(dir: &Path) -> Result<Self, EngineError> {
        Self::acquire_within(dir, crate::DEFAULT_LOCK_TIMEOUT)
    }

    /// [`ClaimsLock::acquire_within`], giving up after `foreign_wait` while the holder is
    /// a process that is not Cordon ([`crate::Engine::foreign_wait`]).
    pub(crate) fn acquire_ordered(
        dir: &Path,
        timeout: std::time::Duration,
        foreign_wait: std::time::Duration,
    ) -> Result<Self, EngineError> {
        create_private_dir(dir)?;
        let p = dir.join(".claims.lock");
        let mut file = crate::lock::open_lock_file(&p)?;
        crate::lock::flock_within(&mut file, &p, timeout, false, foreign_wait)?;
        Ok(ClaimsLock { _file: file })
    }

    /// Takes the claims lock, waiting at most `timeout` (trial20: a foreign process
    /// holding `.claims.lock` blocked every claim change for ever). The lock file is
    /// opened as every lock is ([`crate::lock::open_lock_file`]).
    ///
    /// # Errors
    /// The state directory or the lock file cannot be made or opened, or the wait ran out
    /// ([`EngineError::LockTimeout`], naming the holder).
    pub(crate) fn acquire_within(dir: &Path, timeout: std::time::Duration) -> Result<Self, EngineError> {
        Self::acquire_ordered(dir, timeout, timeout)
    }

    /// The claims lock taken only to let a claim change in progress finish before a
    /// look (a status): waits at most `timeout`, and not at all while a process that is
    /// not Cordon holds it ([`crate::lock::settle_within`]). `None`: not taken (look as
    /// found).
    pub(crate) fn settle(dir: &Path, timeout: std::time::Duration) -> Option<Self> {
        create_private_dir(dir).ok()?;
        let p = dir.join(".claims.lock");
        let file = crate::lock::open_lock_file(&p).ok()?;
        #[cfg(unix)]
        if !crate::lock::settle_within(&file, timeout, false, &|| crate::lock::foreign_holds_state_lock(dir)) {
            return None;
        }
        #[cfg(not(unix))]
        let _ = timeout;
        Some(ClaimsLock { _file: file })
    }
}

/// The claims in `dir`'s claims file of `table` (empty when it does not exist): what the
/// holder of the tables applies on a reload (`crate::watch::holder`).
pub(crate) fn claims_in_file(dir: &Path, table: &TableName) -> Result<Vec<Claim>, EngineError> {
    Ok(load_file(dir, table)?.unwrap_or_default())
}

/// The quarantine the holder of the tables applies for `claims` (with the agent's
/// management paths; no verification, no message), `None` when no claim stands. The
/// requester waits until the record shows exactly this request.
pub(crate) fn merged_for_holder(
    dir: &Path,
    table: &TableName,
    claims: &[Claim],
) -> Result<Option<IsolateRequest>, EngineError> {
    let paths = load_paths(dir, table)?;
    Ok(merge_with_paths(claims, paths.as_ref()).map(|mut m| {
        m.verify = None;
        m.message = None;
        m
    }))
}

/// The sentence saying that `c`, a claim read from the kernel's record
/// ([`Claim::from_kernel`]), stands and how it ends.
fn kernel_holder_words(c: &Claim, dir: &Path) -> String {
    format!(
        "the quarantine in force is also claimed by {} (the kernel's record of it, the table comment, names that holder; no claims file in {} did: it was applied while the state directory could not be written): its claim stands until it releases (`cordon release --source {}` on the host), with its exceptions unknown (none in force)",
        c.holder_token(),
        dir.display(),
        c.source
    )
}

/// Whether the kernel refused because another running cordon process holds the tables.
fn is_held(e: &EngineError) -> bool {
    match e {
        EngineError::HeldByAnotherProcess(_) => true,
        EngineError::Rejected(f) | EngineError::Firewall(f) => f.is_held_by_another_process(),
        _ => false,
    }
}

/// How long a requester waits for the holder of the tables to apply its claims.
pub const HAND_OFF_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl Engine {
    /// Every standing claim (a recorded quarantine without a claims file is one `local`
    /// claim).
    ///
    /// # Errors
    /// [`EngineError::StateIo`] / [`EngineError::StateCorrupt`] when the claims file or the
    /// state file cannot be read or is not valid.
    pub fn claims(&self) -> Result<Vec<Claim>, EngineError> {
        if let Some(h) = self.elsewhere() {
            return h.claims();
        }
        if let Some(c) = load_file(&self.state_dir, &self.table)? {
            return Ok(c);
        }
        Ok(state::load(&self.state_dir, &self.table)?
            .map(|s| {
                vec![Claim {
                    source: ClaimSource::Local,
                    request: s.request,
                    claimed_at: s.applied_at,
                    owner: None,
                    from_kernel: false,
                }]
            })
            .unwrap_or_default())
    }

    /// Every claim standing on the quarantine in force: the recorded ones
    /// ([`Engine::claims`]) and a [`Claim::from_kernel`] for each holder the kernel's
    /// record of the quarantine (the tables' comment) names that none of them accounts
    /// for (issue 14 MED-4: a quarantine applied while its claim could not be written is
    /// still its holder's). Reads only.
    ///
    /// # Errors
    /// As [`Engine::claims`].
    pub fn claims_in_force(&self) -> Result<Vec<Claim>, EngineError> {
        if let Some(h) = self.elsewhere() {
            return h.claims_in_force();
        }
        let mut claims = self.claims()?;
        if let Some(kernel) = self.kernel_claimants() {
            let more: Vec<Claim> = self
                .kernel_only_standing(&claims, &kernel)
                .into_iter()
                .filter_map(Claim::from_kernel)
                .collect();
            claims.extend(more);
        }
        Ok(claims)
    }

    /// The holders `kernel` (the tables' comment) names that no claim in `claims`
    /// accounts for ([`kernel_only_holders`]), less those a release removed while its
    /// re-apply could not rewrite the comment (`home::ReleasedNote`, issue 14 item 5: such
    /// a stale comment made the released holder a holder again).
    fn kernel_only_standing<'a>(&self, claims: &[Claim], kernel: &'a [String]) -> Vec<&'a str> {
        let released = home::released_holders(&self.table, &self.state_dir, kernel);
        kernel_only_holders(claims, kernel)
            .into_iter()
            .filter(|t| !released.iter().any(|r| r == t))
            .collect()
    }

    /// The claims recorded in the claims file when the state file is missing (lost,
    /// deleted): the quarantine they stand for has no record to check the kernel
    /// against or re-apply. Empty when the state file exists or no claim is recorded.
    ///
    /// # Errors
    /// An unreadable or corrupt state or claims file.
    pub fn claims_without_state(&self) -> Result<Vec<Claim>, EngineError> {
        if let Some(h) = self.elsewhere() {
            return h.claims_without_state();
        }
        if state::load(&self.state_dir, &self.table)?.is_some() {
            return Ok(vec![]);
        }
        Ok(load_file(&self.state_dir, &self.table)?.unwrap_or_default())
    }

    /// As [`Engine::claims_without_state`], for a status: a non-empty answer is checked
    /// again under the claims lock, because a release by another source removes the state
    /// file a moment before it clears the claims (under that lock) — a status must not
    /// call that moment "records lost". Without the lock (not root), the first answer.
    ///
    /// # Errors
    /// As [`Engine::claims_without_state`].
    pub fn claims_without_state_settled(&self) -> Result<Vec<Claim>, EngineError> {
        if let Some(h) = self.elsewhere() {
            return h.claims_without_state_settled();
        }
        let first = self.claims_without_state()?;
        if first.is_empty() {
            return Ok(first);
        }
        match ClaimsLock::settle(&self.state_dir, self.lock_timeout) {
            Some(_lock) => self.claims_without_state(),
            None => Ok(first),
        }
    }

    /// Rebuilds a lost state file from the standing claims (issue 14 trial: a lost state
    /// file with claims left was reported `released`): their merged quarantine, with the
    /// agent's management paths, is applied again — names resolved afresh, no verification,
    /// as the agent applies — and recorded. `None` when nothing needed rebuilding.
    ///
    /// # Errors
    /// Not root/admin, unreadable files, or the apply failed.
    pub fn rebuild_from_claims(&self) -> Result<Option<IsolateOutcome>, EngineError> {
        if let Some(h) = self.elsewhere() {
            return h.rebuild_from_claims();
        }
        crate::privilege::require_admin()?;
        // No state directory: no claim recorded to rebuild from (and nothing created).
        if fs::symlink_metadata(&self.state_dir).is_err() {
            return Ok(None);
        }
        // An ordered re-apply never stops at a lock a process that is not Cordon holds
        // (`crate::lock::proceed_without`, issue 14 HIGH-E).
        let (_lock, lock_note) =
            match ClaimsLock::acquire_ordered(&self.state_dir, self.lock_timeout, self.foreign_wait()) {
                Ok(l) => (Some(l), None),
                Err(e) => match crate::lock::proceed_without(&e).filter(|_| self.keep_unrecorded) {
                    Some(note) => {
                        tracing::warn!("{note}");
                        (None, Some(note))
                    }
                    None => return Err(e),
                },
            };
        let mut claims = self.claims_without_state()?;
        if claims.is_empty() {
            return Ok(None);
        }
        // The rebuilt quarantine keeps every holder the kernel's record names (issue 14
        // MED-4), recorded with the claims.
        let adopted = self.adopt_kernel_holders(&mut claims);
        if !adopted.is_empty() {
            save_file(&self.state_dir, &self.table, &claims)?;
        }
        let paths = load_paths(&self.state_dir, &self.table)?;
        let Some(mut merged) = merge_with_paths(&claims, paths.as_ref()) else {
            return Ok(None);
        };
        merged.verify = None;
        merged.message = None;
        let mut outcome = self.isolate_unverified(&merged, false)?;
        outcome.warnings.extend(adopted);
        outcome.warnings.extend(lock_note.clone());
        outcome.lock_skipped.extend(lock_note);
        Ok(Some(outcome))
    }

    /// The claim holders the comment of this engine's table in the kernel names
    /// (`agent:HOSTID`, `wazuh`, …; [`cordon_policy::Policy::claimed_by`]): the kernel's
    /// own record of whose quarantine is in force. `None` when the table is not in force,
    /// names none, or the kernel cannot be asked (not Linux, not root; the iptables
    /// backend's jump comments carry the holders too but are not read here).
    pub fn kernel_claimants(&self) -> Option<Vec<String>> {
        #[cfg(target_os = "linux")]
        {
            cordon_firewall::netlink::marked_tables_with_comments()
                .ok()?
                .into_iter()
                .filter(|(t, _)| t == &self.table)
                .find_map(|(_, c)| c.as_deref().and_then(cordon_policy::render::claimants_of_comment))
        }
        #[cfg(not(target_os = "linux"))]
        {
            None
        }
    }

    /// Adds to `claims` (the recorded ones) a claim for every holder the kernel's record
    /// of the quarantine in force names that none of them accounts for
    /// ([`kernel_only_holders`], [`Claim::from_kernel`]): the tables' comment is a source
    /// of truth the records are merged with, never overwritten (issue 14 MED-4: a
    /// quarantine `wazuh-ar` applied while the state directory was full was recorded
    /// only there; the agent's next apply rewrote the comment to itself and the server's
    /// release opened the host Wazuh never released). Returns one sentence per holder
    /// added, for the outcome. Nothing is added when no table is in force or the kernel
    /// cannot be asked.
    fn adopt_kernel_holders(&self, claims: &mut Vec<Claim>) -> Vec<String> {
        let Some(kernel) = self.kernel_claimants() else {
            return vec![];
        };
        let mut notes = vec![];
        for token in self.kernel_only_standing(claims, &kernel) {
            let Some(c) = Claim::from_kernel(token) else {
                continue;
            };
            tracing::warn!(
                holder = token,
                "the kernel's record names a claim holder no claims file holds; keeping its claim"
            );
            notes.push(kernel_holder_words(&c, &self.state_dir));
            claims.push(c);
        }
        notes
    }

    /// Drops every claim (after a forced release removed the rules).
    ///
    /// # Errors
    /// [`EngineError::StateIo`] naming the claims file when it cannot be removed or
    /// written.
    pub fn clear_claims(&self) -> Result<(), EngineError> {
        if let Some(h) = self.elsewhere() {
            return h.clear_claims();
        }
        // No state directory: no claim to drop, and nothing is created.
        if fs::symlink_metadata(&self.state_dir).is_err() {
            return Ok(());
        }
        let _lock = ClaimsLock::acquire_within(&self.state_dir, self.lock_timeout)?;
        save_file(&self.state_dir, &self.table, &[])?;
        if !crate::home::records(&self.state_dir, &self.table) {
            crate::home::unregister(&self.table, &self.state_dir);
        }
        Ok(())
    }

    /// Isolates on behalf of `source`: records (or replaces) its claim and applies the
    /// union of every claim with [`Engine::isolate`] (verified, rolled back on failure).
    /// Nothing is recorded when applying fails.
    ///
    /// # Errors
    /// As [`Engine::isolate`], and [`EngineError::StateIo`] when the claims file cannot be
    /// written.
    pub fn isolate_as(&self, source: ClaimSource, req: &IsolateRequest) -> Result<ClaimIsolateOutcome, EngineError> {
        if let Some(h) = self.elsewhere() {
            return h.isolate_as(source, req);
        }
        // The state's rename is made durable by the claims file's directory fsync below.
        let own = crate::resolve::own_proof(req);
        self.claim_and_apply(source, req, true, |eng, merged| {
            eng.isolate_durable_as(merged, state::DirSync::Deferred, Some(own))
        })
    }

    /// Like [`Engine::isolate_as`] through [`Engine::isolate_unverified`] (the agent).
    ///
    /// # Errors
    /// As [`Engine::isolate_as`].
    pub fn isolate_unverified_as(
        &self,
        source: ClaimSource,
        req: &IsolateRequest,
        notify_users: bool,
    ) -> Result<ClaimIsolateOutcome, EngineError> {
        if let Some(h) = self.elsewhere() {
            return h.isolate_unverified_as(source, req, notify_users);
        }
        self.claim_and_apply(source, req, false, |eng, merged| {
            eng.isolate_unverified_durable(merged, notify_users, state::DirSync::Deferred)
        })
    }

    fn claim_and_apply(
        &self,
        source: ClaimSource,
        req: &IsolateRequest,
        verify: bool,
        apply: impl FnOnce(&Engine, &IsolateRequest) -> Result<IsolateOutcome, EngineError>,
    ) -> Result<ClaimIsolateOutcome, EngineError> {
        crate::privilege::require_admin()?;
        // An ordered quarantine (the agent, wazuh-ar) never stops at a lock it cannot
        // take (trial20 MED: a read-only state file system, a foreign `flock` holder):
        // it goes on without it, and the outcome says so (`crate::lock::proceed_without`).
        let mut notes: Vec<String> = vec![];
        let mut lock_skipped: Vec<String> = vec![];
        let _lock = match ClaimsLock::acquire_ordered(&self.state_dir, self.lock_timeout, self.foreign_wait()) {
            Ok(l) => Some(l),
            Err(e) => match crate::lock::proceed_without(&e).filter(|_| self.keep_unrecorded) {
                Some(note) => {
                    tracing::warn!("{note}");
                    lock_skipped.push(note);
                    None
                }
                None => return Err(e),
            },
        };
        // A quarantine never stops at an unusable state file (a FIFO, a link to a device,
        // a directory, a huge or corrupt file in place of `<table>.json`): it is set aside
        // like a corrupt claims file, named, and this quarantine is applied as a first one
        // (trial20 HIGH-A for the agent and wazuh-ar; issue 14 item 4 for the standalone
        // CLI, which refused: the user asked to isolate). Where it cannot be moved (a
        // read-only directory) an ordered quarantine goes on and says so; the CLI keeps the
        // error naming the file and the way out.
        let sp = state::path(&self.state_dir, &self.table);
        if let Err(e) = state::load(&self.state_dir, &self.table) {
            if e.is_bad_record_at(&sp) {
                let why = crate::error::chain(&e);
                match set_aside_file(&sp, &state_set_aside_path(&self.state_dir, &self.table)) {
                    Ok(aside) => {
                        tracing::warn!(file = %sp.display(), set_aside = %aside.display(), error = %why, "unusable state file set aside; applying the quarantine");
                        notes.push(format!(
                            "state file {} was unusable ({why}) and was set aside as {}; the quarantine was applied as a first one (inspect the file, then delete it)",
                            sp.display(),
                            aside.display()
                        ));
                    }
                    // A read-only directory: the file stays; the apply below says why.
                    Err(err) if self.keep_unrecorded => notes.push(format!(
                        "state file {} is unusable ({why}) and could not be set aside ({err})",
                        sp.display()
                    )),
                    Err(_) => return Err(e),
                }
            }
        }
        // An unreadable claims file (with no readable backup) never stops a quarantine
        // (trial15 HIGH-2b: it vetoed the agent's, the host stayed open; trial20 HIGH-A:
        // a FIFO, a link to /dev/zero, a directory or a huge file in its place): it is
        // set aside, this source's claim is applied alone (fail closed: the others'
        // exceptions are not in force), and the outcome, `status` and the agent's report
        // name the file.
        let mut set_aside = None;
        let cp = path(&self.state_dir, &self.table);
        let mut claims = match self.claims() {
            Ok(c) => c,
            Err(e) if e.is_bad_record_at(&cp) => {
                let aside = match set_aside_file(&cp, &set_aside_path(&self.state_dir, &self.table)) {
                    Ok(a) => a,
                    // A read-only state directory: this claim still goes in, alone and
                    // unrecorded (the write below fails and says so).
                    Err(err) if self.keep_unrecorded => {
                        notes.push(format!(
                            "claims file {} is unusable ({}) and could not be set aside ({err}): this claim was applied alone",
                            cp.display(),
                            crate::error::chain(&e)
                        ));
                        cp.clone()
                    }
                    Err(err) => return Err(EngineError::state_io("set aside", &cp, err)),
                };
                tracing::warn!(file = %cp.display(), set_aside = %aside.display(), error = %crate::error::chain(&e), "unreadable claims file set aside; applying this claim alone");
                if aside != cp {
                    set_aside = Some(format!(
                        "claims file {} was unreadable and has no readable backup: set aside as {}; this claim was applied without the claims recorded there (their exceptions are not in force)",
                        cp.display(),
                        aside.display()
                    ));
                }
                vec![]
            }
            Err(e) => return Err(e),
        };
        let before = if set_aside.is_some() {
            vec![]
        } else {
            load_file(&self.state_dir, &self.table)?.unwrap_or_default()
        };
        record_claim(&mut claims, source, self.owner.as_deref(), req, state::now_rfc3339());
        // Every holder the kernel's record names stays a holder (issue 14 MED-4).
        notes.extend(self.adopt_kernel_holders(&mut claims));
        let paths = load_paths(&self.state_dir, &self.table)?;
        // The agent's own claim carries its paths; another source is told what they add.
        if source != ClaimSource::Agent {
            notes.extend(paths.as_ref().and_then(|p| paths_added_words(req, p)));
        }
        let mut merged = merge_with_paths(&claims, paths.as_ref()).unwrap_or_else(|| req.clone());
        // Verify what this source asked to verify (its first TCP server by default; a
        // source with only UDP servers is "not verified (UDP)", see `isolate_as`).
        merged.verify = crate::resolve::own_verify_target(req);
        merged.message = req.message.clone();
        // The claim is recorded before its rules are applied (trial17 MED-1: an agent
        // killed between the two left a state file without claims, read as a `local`
        // claim nobody made, which the server's release could not remove). A crash now
        // leaves claims without a state file: reported, and rebuilt from the claims by
        // `--reapply` and the agent, under the right source. A failed apply puts the
        // claims back as they were.
        // An ordered quarantine goes in even when its claim cannot be written (trial17
        // HIGH-1: a full disk); the outcome says it is not recorded.
        let mut claims_unrecorded = None;
        if let Err(e) = save_file_with(&self.state_dir, &self.table, &claims, false) {
            if !self.keep_unrecorded {
                // Nothing was applied yet: the firewall is as it was (same words as a
                // state file that cannot be written after the apply).
                return Err(EngineError::NotKept {
                    what: "the quarantine could not be recorded in the state directory, so it was not applied",
                    cause: Box::new(e),
                    back_to: crate::error::RolledBackTo::NotApplied,
                    rollback_error: None,
                });
            }
            claims_unrecorded = Some(crate::error::chain(&e));
        }
        // The tables' comment names every claim's holder (this one included), written
        // with the rules: the kernel's record of whose quarantine this is, which survives
        // a claims file that could not be written (trial20 HIGH-B).
        let eng = Engine {
            claimants: Some(claims.iter().map(Claim::holder_token).collect()),
            // One bounded wait in total for processes that are not Cordon: having waited
            // for one on the claims lock, the state and namespace locks do not wait again
            // for such a holder (a Cordon holder is still waited for).
            foreign_lock_waited: self.foreign_lock_waited || !lock_skipped.is_empty(),
            ..self.clone()
        };
        let mut outcome = match apply(&eng, &merged) {
            Ok(o) => o,
            Err(e) if is_held(&e) && claims_unrecorded.is_none() => {
                return self.claim_by_holder(e, source, req, &merged, &claims, &before, verify)
            }
            Err(e) => {
                if claims_unrecorded.is_none() {
                    let _ = save_file(&self.state_dir, &self.table, &before);
                }
                return Err(e);
            }
        };
        // `apply` left the state's rename to this directory fsync (DirSync::Deferred).
        state::sync_dir(&self.state_dir);
        outcome.warnings.extend(set_aside);
        outcome.warnings.extend(notes);
        outcome.warnings.extend(lock_skipped.iter().cloned());
        outcome.lock_skipped.splice(0..0, lock_skipped);
        if let Some(why) = claims_unrecorded {
            outcome.unrecorded = Some(match outcome.unrecorded.take() {
                Some(more) => format!("{why}; {more}"),
                None => why,
            });
        }
        Ok(ClaimIsolateOutcome {
            outcome,
            source,
            claims: claims.iter().map(|c| c.source).collect(),
        })
    }

    /// [`Engine::claim_and_apply`] when the kernel refused because another cordon process
    /// holds the tables: the holder applies the claims; then, for a verified isolate, this
    /// process checks it can reach the source's verification target (else the claim is
    /// withdrawn again and `VerificationFailed` returned).
    #[allow(clippy::too_many_arguments)]
    fn claim_by_holder(
        &self,
        held: EngineError,
        source: ClaimSource,
        req: &IsolateRequest,
        merged: &IsolateRequest,
        claims: &[Claim],
        before: &[Claim],
        verify: bool,
    ) -> Result<ClaimIsolateOutcome, EngineError> {
        let pid = crate::watch::holder::pid(&self.state_dir, &self.table).unwrap_or_default();
        let (stored, stopped) = self.hand_off(held, claims, before)?;
        let stored = stored.ok_or(EngineError::ReadBack)?;
        let note = stopped.unwrap_or_else(|| format!("applied by the cordon process holding the tables (pid {pid})"));
        let mut outcome = self.outcome_of(stored, &note);
        if verify {
            let targets = match crate::resolve::own_proof(req) {
                crate::resolve::OwnProof::Udp => {
                    outcome.verification = crate::Verification::NotVerifiedUdp;
                    vec![]
                }
                // Only what this source named is probed (trial34 H1), never the other
                // claims' servers or the agent's paths.
                crate::resolve::OwnProof::Nothing => vec![],
                crate::resolve::OwnProof::Target => self.resolve(merged)?.verify_targets,
            };
            if !targets.is_empty() {
                match crate::verify::reach_any(&targets, req.verify_timeout) {
                    Ok(a) => {
                        outcome.verified_via = Some(a);
                        outcome.verification = crate::Verification::Verified;
                    }
                    Err(reason) => {
                        let held_again = EngineError::HeldByAnotherProcess(cordon_firewall::FirewallError::Rejected(
                            "verification failed".into(),
                        ));
                        let rollback = self.hand_off(held_again, before, claims).err();
                        return Err(EngineError::VerificationFailed {
                            targets,
                            reason,
                            rollback_error: rollback.map(Box::new),
                        });
                    }
                }
            }
            if let Some(text) = &req.message {
                outcome.message_warning = crate::notify::message_users(text).err().map(|e| crate::error_chain(&e));
            }
        }
        Ok(ClaimIsolateOutcome {
            outcome,
            source,
            claims: claims.iter().map(|c| c.source).collect(),
        })
    }

    /// The kernel refused a change because another cordon process holds the tables
    /// (`held`): `claims` (already decided) are written to the claims file, the holder is
    /// asked to apply them (SIGHUP, see `crate::watch::holder`), and this waits at most
    /// [`HAND_OFF_TIMEOUT`] until the record shows their merge (or, with no claim left,
    /// no quarantine). On failure the claims file is put back to `before` and the error
    /// names the holder. A holder that does not answer within the bound (hung or
    /// stopped) and is a cordon process is stopped and the change applied here
    /// (`crate::watch::holder::stop_unresponsive`). Returns the record now in force
    /// (`None`: released) and, when the holder was stopped, the sentence saying so.
    fn hand_off(
        &self,
        held: EngineError,
        claims: &[Claim],
        before: &[Claim],
    ) -> Result<(Option<state::StoredState>, Option<String>), EngineError> {
        let refuse = |why: String| {
            EngineError::HeldByAnotherProcess(cordon_firewall::FirewallError::Rejected(
                format!("{}; {why}", crate::error::chain(&held)).into(),
            ))
        };
        let pid = crate::watch::holder::pid(&self.state_dir, &self.table).map_err(|why| {
            refuse(format!(
                "the holder could not be asked to apply the change ({why}); stop that process first"
            ))
        })?;
        let expected = merged_for_holder(&self.state_dir, &self.table, claims)?;
        save_file(&self.state_dir, &self.table, claims)?;
        let put_back = |why: String| {
            let _ = save_file(&self.state_dir, &self.table, before);
            let _ = crate::watch::holder::signal(pid);
            refuse(why)
        };
        crate::watch::holder::clear_failure(&self.state_dir, &self.table);
        if let Err(why) = crate::watch::holder::signal(pid) {
            return Err(put_back(why.to_string()));
        }
        let started = std::time::Instant::now();
        loop {
            let stored = state::load(&self.state_dir, &self.table)?;
            match (&expected, stored) {
                (None, None) => return Ok((None, None)),
                (Some(want), Some(s)) if &s.request == want => return Ok((Some(s), None)),
                _ => {}
            }
            // The holder could not apply it: say so now, with its error.
            if let Some(f) = crate::watch::holder::failure_for(&self.state_dir, &self.table, &expected) {
                return Err(put_back(format!(
                    "pid {} holds the tables and was asked to apply the change, but could not: {}; nothing was changed",
                    f.pid, f.error
                )));
            }
            if started.elapsed() >= HAND_OFF_TIMEOUT {
                // A hung holder must not block every other source (trial12 M-3): stop it
                // (only a cordon process, verified again) and apply the change here.
                let note = match crate::watch::holder::stop_unresponsive(&self.state_dir, &self.table, pid) {
                    Ok(note) => note,
                    Err(why) => {
                        return Err(put_back(format!(
                            "pid {pid} holds the tables and was asked to apply the change, but did not within {} s, and it could not be stopped ({why}); nothing was changed",
                            HAND_OFF_TIMEOUT.as_secs()
                        )))
                    }
                };
                tracing::warn!(pid, "{note}; taking the tables over");
                crate::watch::holder::clear_failure(&self.state_dir, &self.table);
                let taken = match &expected {
                    None => self.release().map(|_| None),
                    Some(want) => self
                        .isolate_unverified(want, false)
                        .and_then(|_| state::load(&self.state_dir, &self.table)),
                };
                return match taken {
                    Ok(stored) => Ok((stored, Some(note))),
                    Err(e) => {
                        let _ = save_file(&self.state_dir, &self.table, before);
                        Err(e)
                    }
                };
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
    }

    /// An [`IsolateOutcome`] for a record the holder of the tables applied.
    fn outcome_of(&self, s: state::StoredState, pid_note: &str) -> IsolateOutcome {
        let coverage = self
            .firewall(Some(s.backend))
            .and_then(|f| f.coverage().map_err(EngineError::from))
            .unwrap_or_default();
        let not_isolated = crate::not_isolated_words(&s.policy, &coverage);
        IsolateOutcome {
            state: if not_isolated.is_empty() {
                crate::QuarantineState::Isolated
            } else {
                crate::QuarantineState::NotIsolated
            }
            .as_str(),
            not_isolated,
            backend: s.backend,
            table: self.table.to_string(),
            policy: s.policy,
            digest: s.digest,
            applied_at: s.applied_at,
            verified_via: None,
            verification: crate::Verification::NotChecked,
            message_warning: None,
            warnings: vec![pid_note.to_string()],
            replaced_backends: vec![],
            apply_ms: 0.0,
            coverage,
            impact: crate::impact::Impact::default(),
            unrecorded: None,
            lock_skipped: vec![],
        }
    }

    /// The enrolled agent's recorded management paths, if any.
    ///
    /// # Errors
    /// An unreadable or corrupt `<table>.agent-paths.json`.
    pub fn management_paths(&self) -> Result<Option<ManagementPaths>, EngineError> {
        load_paths(&self.home_dir(), &self.table)
    }

    /// Registers this engine's management paths file (`<state_dir>/agent-paths.json`) as
    /// the agent's in this network namespace's `/run/cordon` registry when the file exists
    /// and the entry does not name it (the registry is a cache: rebuilt when root deleted
    /// it, trial12 N-3), and copies the paths into the home state directory of every
    /// Cordon table in force ([`Engine::copy_paths_to_homes`]). Best effort, no privilege
    /// check.
    pub fn register_management_paths(&self) {
        let p = paths_path(&self.state_dir);
        if p.exists() {
            crate::home::register_agent_paths(&p);
            self.copy_paths_to_homes();
        }
    }

    /// Copies the agent's management paths (this engine's `agent-paths.json`) into the
    /// home state directory of every Cordon table in force or recorded in this network
    /// namespace, when that copy differs (trial15 HIGH-1). Every merge reads the paths file
    /// in the table's home (`load_paths`), so a join by another source keeps the agent's
    /// paths even when `/run/cordon` (whose `agent-paths` entry is the only other pointer
    /// to this file) was deleted: the table's own comment names the home. Best effort: a
    /// directory that cannot be written is skipped (the agent's check repairs what is
    /// missing, see `StatusReport::agent_paths_missing`).
    pub fn copy_paths_to_homes(&self) {
        let own_file = paths_path(&self.state_dir);
        let Ok(Some(paths)) = read_paths_file(&own_file) else {
            return;
        };
        let own_dir = crate::home::absolute(&self.state_dir);
        let mut homes: Vec<PathBuf> = vec![self.home_dir()];
        homes.extend(crate::home::kernel_records().into_iter().map(|(_, d)| d));
        homes.extend(
            crate::home::other_tables(&self.table, &self.state_dir)
                .into_iter()
                .map(|(_, d)| d),
        );
        let mut done: Vec<PathBuf> = vec![];
        for dir in homes {
            let dir = crate::home::absolute(&dir);
            if dir == own_dir || done.contains(&dir) || !dir.is_dir() {
                continue;
            }
            done.push(dir.clone());
            let copy = paths_path(&dir);
            if matches!(read_paths_file(&copy), Ok(Some(p)) if p == paths) {
                continue;
            }
            let Ok(json) = serde_json::to_vec_pretty(&PathsFile {
                version: CLAIMS_VERSION,
                recorded_at: state::now_rfc3339(),
                paths: paths.clone(),
            }) else {
                continue;
            };
            match write_atomic(&dir, &copy, &json) {
                Ok(()) => {
                    tracing::info!(copy = %copy.display(), "the agent's management paths copied to the home of a table in force")
                }
                Err(e) => {
                    tracing::warn!(copy = %copy.display(), error = %crate::error::chain(&e), "cannot copy the agent's management paths")
                }
            }
        }
    }

    /// The agent's management paths (as every merge in this table's home reads them) that
    /// `req`, a recorded quarantine, does not keep open: `IP:port` servers missing from
    /// its servers, and `DNS` when the agent needs it and `req` closes it. Empty when no
    /// paths are recorded or they cannot be read.
    pub(crate) fn paths_not_in(&self, req: &IsolateRequest) -> Vec<String> {
        let Ok(Some(paths)) = load_paths(&self.state_dir, &self.table) else {
            return vec![];
        };
        let mut missing: Vec<String> = paths
            .servers
            .iter()
            .filter(|s| !req.servers.contains(s))
            .map(|s| s.to_string())
            .collect();
        if paths.dns && !req.dns {
            missing.push("DNS".into());
        }
        missing
    }

    /// Re-applies every recorded quarantine of this network namespace whose record lacks
    /// the agent's management paths (the union of its claims with the paths, without
    /// verification or message), as [`Engine::set_management_paths`] does when the paths
    /// change; the agent runs it when its check finds its paths not in force. Returns
    /// whether it re-applied.
    ///
    /// # Errors
    /// Not root/admin, unreadable records, or the re-apply failed (the rules in force are
    /// unchanged).
    pub fn restore_management_paths(&self) -> Result<bool, EngineError> {
        crate::privilege::require_admin()?;
        self.paths_to_every_table()
    }

    /// Records the enrolled agent's management paths (see the module comment). When they
    /// changed and claims stand, the merged quarantine is re-applied at once (without
    /// verification or message) so the agent's paths are open. Returns whether it
    /// re-applied.
    ///
    /// # Errors
    /// Not root/admin, the file cannot be written, or the re-apply failed (the paths
    /// are recorded; the rules in force are unchanged).
    pub fn set_management_paths(&self, paths: &ManagementPaths) -> Result<bool, EngineError> {
        crate::privilege::require_admin()?;
        let p = paths_path(&self.state_dir);
        let old = read_paths_file(&p).ok().flatten();
        let _ = fs::remove_file(legacy_paths_path(&self.state_dir, &self.table));
        crate::home::register_agent_paths(&p);
        if old.as_ref() == Some(paths) {
            return Ok(false);
        }
        {
            let _lock = ClaimsLock::acquire_within(&self.state_dir, self.lock_timeout)?;
            let json = serde_json::to_vec_pretty(&PathsFile {
                version: CLAIMS_VERSION,
                recorded_at: state::now_rfc3339(),
                paths: paths.clone(),
            })
            .map_err(EngineError::StateEncode)?;
            write_atomic(&self.state_dir, &p, &json)?;
        }
        crate::home::register_agent_paths(&p);
        self.paths_to_every_table()
    }

    /// Copies the agent's paths into every table's home and re-applies each table with
    /// standing claims in this namespace (and this engine's own table) with them at once.
    /// Returns whether any table was re-applied.
    fn paths_to_every_table(&self) -> Result<bool, EngineError> {
        self.copy_paths_to_homes();
        let mut reapplied = false;
        let mut tables = state::recorded_tables(&self.home_dir()).unwrap_or_default();
        if !tables.contains(&self.table) {
            tables.push(self.table.clone());
        }
        for table in tables {
            let eng = Engine { table, ..self.clone() };
            reapplied |= eng.reapply_with_paths()?;
        }
        Ok(reapplied)
    }

    /// Re-applies the standing claims' merge with the current management paths when a
    /// quarantine is recorded and the merge differs from the recorded request.
    fn reapply_with_paths(&self) -> Result<bool, EngineError> {
        if let Some(h) = self.elsewhere() {
            return h.reapply_with_paths();
        }
        let _lock = ClaimsLock::acquire_within(&self.state_dir, self.lock_timeout)?;
        let mut claims = self.claims()?;
        let paths = load_paths(&self.state_dir, &self.table)?;
        let Some(stored) = state::load(&self.state_dir, &self.table)? else {
            return Ok(false);
        };
        // Every holder the kernel's record names stays one (issue 14 MED-4): recorded
        // before the re-apply names the claims file's holders in the comment.
        if !self.adopt_kernel_holders(&mut claims).is_empty() {
            save_file(&self.state_dir, &self.table, &claims)?;
        }
        let Some(mut merged) = merge_with_paths(&claims, paths.as_ref()) else {
            return Ok(false);
        };
        merged.verify = None;
        merged.message = None;
        let same = stored.request.servers == merged.servers && stored.request.dns == merged.dns;
        if same {
            return Ok(false);
        }
        self.isolate_unverified(&merged, false)?;
        Ok(true)
    }

    /// Releases `source`'s claim. The rules go only when no claim is left (or `force`,
    /// which drops every claim); otherwise the remaining claims' union is re-applied
    /// (without verification or message) and the host stays quarantined.
    ///
    /// # Errors
    /// [`EngineError`] when the locks cannot be taken, the claims cannot be read or
    /// written, or a backend fails; the claims file is then unchanged.
    pub fn release_as(&self, source: ClaimSource, force: bool) -> Result<ClaimReleaseOutcome, EngineError> {
        if let Some(h) = self.elsewhere() {
            return h.release_as(source, force);
        }
        crate::privilege::require_admin()?;
        // Nothing recorded, nothing in force: said so, and nothing created.
        if self.nothing_here() {
            return Ok(ClaimReleaseOutcome {
                state: "released",
                source,
                released_claim: false,
                forced: force,
                claims: vec![],
                release: Some(self.released_nothing()),
                warning: None,
                record_problems: vec![],
            });
        }
        let _lock = ClaimsLock::acquire_within(&self.state_dir, self.lock_timeout)?;
        let mut claims = self.claims()?;
        // Never release rules whose claims cannot be seen (trial12 N-2): with neither a
        // state nor a claims file here (the table's home, found through the registry and
        // the tables' own comment), rules in force belong to someone unknown.
        // Unless the kernel's own record names them this source's (trial20 HIGH-B: a
        // quarantine applied while its claim could not be written — a full or read-only
        // state disk — was disowned, and only `--force` could lift it): the tables'
        // comment carries every claim's holder, written with the rules. Only when every
        // holder it names is this source (and owner) are the rules this source's to
        // remove; anyone else's stay.
        let mut unrecorded_note = None;
        if !force
            && load_file(&self.state_dir, &self.table)?.is_none()
            && state::load(&self.state_dir, &self.table)?.is_none()
            && self.rules_in_force()
        {
            let kernel = self.kernel_claimants().unwrap_or_default();
            let own = !kernel.is_empty() && kernel.iter().all(|t| token_held_by(t, source, self.owner.as_deref()));
            if !own {
                return Err(EngineError::UnclaimedRules {
                    source_name: source.to_string(),
                    table: self.table.to_string(),
                    state_dir: self.state_dir.clone(),
                    kernel_claims: kernel,
                });
            }
            unrecorded_note = Some(format!(
                "the claim was never recorded on disk in {} (the state directory could not be written when it was applied); the kernel's record of the quarantine (the table comment: claimed by {}) names it {source}'s, so its rules were removed",
                self.state_dir.display(),
                kernel.join(", ")
            ));
        }
        if load_file(&self.state_dir, &self.table)?.is_none() {
            // A quarantine recorded before claims existed has no known owner: whoever
            // releases it owns it (an upgraded agent must be able to release its own).
            for c in &mut claims {
                c.source = source;
            }
        }
        // A holder only the kernel's record names is a holder too: its quarantine stays
        // until it releases (issue 14 MED-4).
        self.adopt_kernel_holders(&mut claims);
        let before = claims.len();
        let owner = self.owner.as_deref();
        claims.retain(|c| !held_by(c.source, c.owner.as_deref(), source, owner));
        let released_claim = claims.len() != before || unrecorded_note.is_some();
        let before = load_file(&self.state_dir, &self.table)?.unwrap_or_default();
        if force || claims.is_empty() {
            let recorded = state::load(&self.state_dir, &self.table)?.map(|s| s.backend);
            let mut stopped = None;
            let release = match self.release() {
                Ok(r) => r,
                Err(e) if is_held(&e) => {
                    stopped = self.hand_off(e, &[], &before)?.1;
                    let backend = recorded.unwrap_or(cordon_firewall::BackendKind::Netlink);
                    ReleaseOutcome {
                        state: crate::QuarantineState::Released.as_str(),
                        backend,
                        table: self.table.to_string(),
                        was_isolated: true,
                        removed_from: vec![backend],
                    }
                }
                Err(e) => return Err(e),
            };
            save_file(&self.state_dir, &self.table, &[])?;
            if !crate::home::records(&self.state_dir, &self.table) {
                crate::home::unregister(&self.table, &self.state_dir);
            }
            return Ok(ClaimReleaseOutcome {
                state: "released",
                source,
                released_claim,
                forced: force,
                claims: vec![],
                release: Some(release),
                warning: match (stopped, unrecorded_note) {
                    (Some(a), Some(b)) => Some(format!("{b}; {a}")),
                    (a, b) => a.or(b),
                },
                record_problems: record_problems(&self.state_dir, &self.table),
            });
        }
        let mut warning = None;
        if released_claim {
            let paths = load_paths(&self.state_dir, &self.table)?;
            if let Some(mut merged) = merge_with_paths(&claims, paths.as_ref()) {
                merged.verify = None;
                merged.message = None;
                // The tables' comment names the claims that remain (the claims file is
                // written after this apply: read from it, the comment kept the claim
                // just released, which the next apply would take for a holder).
                let eng = Engine {
                    claimants: Some(claims.iter().map(Claim::holder_token).collect()),
                    ..self.clone()
                };
                match eng.isolate_unverified(&merged, false) {
                    Ok(_) => {}
                    Err(e) if is_held(&e) => {
                        warning = self.hand_off(e, &claims, &before)?.1;
                    }
                    Err(e) => {
                        let mut w = format!(
                            "the remaining claims' exceptions could not be recomputed, the rules in force stay: {}",
                            crate::error::chain(&e)
                        );
                        // Their comment still names the holder just released: noted on
                        // /run, so no later apply takes it for a holder again.
                        let kernel = self.kernel_claimants().unwrap_or_default();
                        let stale: Vec<String> = kernel_only_holders(&claims, &kernel)
                            .into_iter()
                            .map(String::from)
                            .collect();
                        if !stale.is_empty() {
                            let note = home::ReleasedNote {
                                state_dir: home::absolute(&self.state_dir),
                                comment: kernel.clone(),
                                released: stale.clone(),
                            };
                            if !home::note_released(&self.table, &note) {
                                w.push_str(&format!(
                                    "; the rules' comment still names {} and this could not be noted on /run: the next apply takes it for a holder again (release it again with `cordon release --source`)",
                                    stale.join(", ")
                                ));
                            }
                        }
                        warning = Some(w);
                    }
                }
            }
            save_file(&self.state_dir, &self.table, &claims)?;
        }
        // Say why the host stays quarantined when a holder only the kernel named remains.
        let kept: Vec<String> = claims
            .iter()
            .filter(|c| c.from_kernel)
            .map(|c| kernel_holder_words(c, &self.state_dir))
            .collect();
        if !kept.is_empty() {
            let kept = kept.join("; ");
            warning = Some(match warning {
                Some(w) => format!("{w}; {kept}"),
                None => kept,
            });
        }
        Ok(ClaimReleaseOutcome {
            state: "isolated",
            source,
            released_claim,
            forced: false,
            claims: claims.iter().map(|c| c.source).collect(),
            release: None,
            warning,
            record_problems: record_problems(&self.state_dir, &self.table),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cordon_policy::AllowSpec;

    fn claim(source: ClaimSource, at: &str, allow: &[&str], servers: &[&str]) -> Claim {
        Claim {
            source,
            request: IsolateRequest {
                allow: allow.iter().map(|a| AllowSpec::parse(a).unwrap()).collect(),
                servers: servers.iter().map(|s| AllowSpec::parse_server(s).unwrap()).collect(),
                message: Some(format!("{source}")),
                ..Default::default()
            },
            claimed_at: at.into(),
            owner: None,
            from_kernel: false,
        }
    }

    /// Issue 14 MED-4: the holders the tables' comment names that no recorded claim
    /// accounts for are found, and each becomes a claim that adds no exception.
    #[test]
    fn a_holder_only_the_kernel_names_becomes_a_claim_that_adds_nothing() {
        let mut agent = claim(
            ClaimSource::Agent,
            "2030-01-01T00:00:01Z",
            &[],
            &["tcp://192.0.2.1:8443"],
        );
        agent.owner = Some("HostA".into());
        let claims = vec![agent.clone()];
        let kernel: Vec<String> = ["agent:hosta", "wazuh", "agent:hostb", "velociraptor", "nosuch"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            kernel_only_holders(&claims, &kernel),
            ["wazuh", "agent:hostb", "velociraptor", "nosuch"],
            "the recorded agent claim accounts for its own token, whatever the case"
        );
        assert!(
            agent.accounts_for("agent"),
            "a token without owner: any claim of the source"
        );
        let mut unowned = agent.clone();
        unowned.owner = None;
        assert!(!unowned.accounts_for("agent:hostb"), "another holder: kept apart");
        assert!(Claim::from_kernel("nosuch").is_none());
        let w = Claim::from_kernel("wazuh").unwrap();
        assert_eq!(
            (w.source, w.owner.as_deref(), w.from_kernel),
            (ClaimSource::Wazuh, None, true)
        );
        let b = Claim::from_kernel("agent:hostb").unwrap();
        assert_eq!(b.owner.as_deref(), Some("hostb"));
        assert_eq!(b.holder_token(), "agent:hostb");
        // Adds nothing to the union: no exception, DNS or DHCP the recorded claim lacks.
        let mut only_agent = agent.clone();
        only_agent.request.dns = false;
        only_agent.request.dhcp = false;
        only_agent.request.resolvers = Some(vec![]);
        only_agent.request.dhcp_servers = Some(vec![]);
        assert_eq!(
            merge(&[only_agent.clone(), w.clone()]).map(|m| (m.allow, m.servers, m.dns, m.dhcp)),
            merge(std::slice::from_ref(&only_agent)).map(|m| (m.allow, m.servers, m.dns, m.dhcp))
        );
        // Recorded again by its holder, the claim starts then and is no longer the kernel's.
        let mut with = vec![w];
        record_claim(
            &mut with,
            ClaimSource::Wazuh,
            None,
            &IsolateRequest::default(),
            "2030-01-02T00:00:00Z".into(),
        );
        assert_eq!(with.len(), 1);
        assert_eq!(with[0].claimed_at, "2030-01-02T00:00:00Z");
        assert!(!with[0].from_kernel);
        // A claims file written before the field reads as recorded by its holder.
        let old: Claim = serde_json::from_value(serde_json::json!({
            "source": "wazuh", "claimed_at": "2030-01-01T00:00:00Z",
            "request": serde_json::to_value(IsolateRequest::default()).unwrap()
        }))
        .unwrap();
        assert!(!old.from_kernel);
        assert!(!serde_json::to_string(&old).unwrap().contains("from_kernel"));
    }

    #[test]
    fn merge_unites_every_claims_exceptions() {
        let claims = [
            claim(
                ClaimSource::Wazuh,
                "2030-01-01T00:00:01Z",
                &["198.51.100.0/24"],
                &["tcp://192.0.2.1:1514"],
            ),
            claim(
                ClaimSource::Agent,
                "2030-01-01T00:00:03Z",
                &[],
                &["https://192.0.2.2:8443"],
            ),
            claim(
                ClaimSource::Local,
                "2030-01-01T00:00:02Z",
                &["198.51.100.0/24", "203.0.113.5"],
                &[],
            ),
        ];
        let m = merge(&claims).unwrap();
        let servers: Vec<String> = m.servers.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            servers,
            ["https://192.0.2.2:8443", "tcp://192.0.2.1:1514"],
            "newest first"
        );
        let allow: Vec<String> = m.allow.iter().map(|s| s.to_string()).collect();
        assert_eq!(allow, ["198.51.100.0/24", "203.0.113.5"]);
        assert_eq!(m.message.as_deref(), Some("agent"));
        assert!(m.dns && m.dhcp);
        assert!(merge(&[]).is_none());
    }

    /// A claim that allows only its own manager still keeps the enrolled agent's
    /// management paths open (its servers, DNS when it needs it); no claim, no quarantine.
    #[test]
    fn every_merged_claim_keeps_the_agent_management_paths() {
        let mut wazuh = claim(
            ClaimSource::Wazuh,
            "2030-01-01T00:00:01Z",
            &[],
            &["tcp://203.0.113.7:1514"],
        );
        wazuh.request.dns = false;
        wazuh.request.resolvers = Some(vec![]);
        let paths = ManagementPaths {
            servers: vec![
                AllowSpec::parse_server("tcp://192.0.2.1:8443").unwrap(),
                AllowSpec::parse_server("tcp://[2001:db8::1]:8443").unwrap(),
            ],
            dns: true,
            resolvers: None,
        };
        let m = merge_with_paths(std::slice::from_ref(&wazuh), Some(&paths)).unwrap();
        let servers: Vec<String> = m.servers.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            servers,
            [
                "tcp://203.0.113.7:1514",
                "tcp://192.0.2.1:8443",
                "tcp://[2001:db8::1]:8443"
            ]
        );
        assert!(m.dns, "the agent finds its server by name");
        assert_eq!(m.resolvers, None, "the host's resolvers, which the agent uses");
        let no_dns = ManagementPaths {
            dns: false,
            ..paths.clone()
        };
        let m = merge_with_paths(std::slice::from_ref(&wazuh), Some(&no_dns)).unwrap();
        assert!(!m.dns, "an agent that needs no DNS does not widen the claim");
        assert!(merge_with_paths(&[], Some(&paths)).is_none());
        assert_eq!(
            merge_with_paths(std::slice::from_ref(&wazuh), None),
            merge(std::slice::from_ref(&wazuh))
        );
    }

    /// trial34 H1: the agent's paths are opened for every source without a word; the
    /// isolate now names what they add (servers this source did not name, DNS over
    /// `--no-dns`), and nothing when they add nothing.
    #[test]
    fn what_the_agents_paths_add_to_a_request_is_said() {
        let paths = ManagementPaths {
            servers: vec![AllowSpec::parse_server("tcp://192.0.2.1:8443").unwrap()],
            dns: true,
            resolvers: None,
        };
        let mut req = claim(ClaimSource::Local, "x", &["tcp://192.0.2.1:1514"], &[]).request;
        req.dns = false;
        let words = paths_added_words(&req, &paths).unwrap();
        assert!(words.contains("tcp://192.0.2.1:8443"), "{words}");
        assert!(words.contains("although --no-dns was given"), "{words}");
        assert!(
            words.contains("not verified") && words.contains("agent-paths.json"),
            "{words}"
        );
        req.dns = true;
        let words = paths_added_words(&req, &paths).unwrap();
        assert!(!words.contains("--no-dns"), "{words}");
        // A request that already names the agent's server (and keeps DNS): nothing added.
        req.servers = paths.servers.clone();
        assert_eq!(paths_added_words(&req, &paths), None);
        assert_eq!(
            paths_words(&paths).as_deref(),
            Some("tcp://192.0.2.1:8443; DNS to the host's resolvers")
        );
        assert_eq!(paths_words(&ManagementPaths::default()), None);
    }

    #[test]
    fn management_paths_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let table = TableName::default();
        let eng = Engine::new(table.clone(), dir.path().into(), cordon_firewall::BackendChoice::Auto);
        assert_eq!(eng.management_paths().unwrap(), None);
        let paths = ManagementPaths {
            servers: vec![AllowSpec::parse_server("tcp://192.0.2.1:8443").unwrap()],
            dns: false,
            resolvers: None,
        };
        let json = serde_json::to_vec(&PathsFile {
            version: CLAIMS_VERSION,
            recorded_at: "2030-01-01T00:00:00Z".into(),
            paths: paths.clone(),
        })
        .unwrap();
        write_atomic(dir.path(), &paths_path(dir.path()), &json).unwrap();
        assert_eq!(eng.management_paths().unwrap(), Some(paths));
        assert_eq!(
            state::recorded_tables(dir.path()).unwrap(),
            Vec::<TableName>::new(),
            "the paths file is no table's record"
        );
    }

    /// The fault kind (issue 14 trial): every re-apply or repair of the agent's quarantine
    /// (and every new Wazuh alert) restarted its claim's `since`.
    #[test]
    fn claim_keeps_its_original_time_when_the_source_isolates_again() {
        let mut claims = vec![claim(ClaimSource::Wazuh, "2030-01-01T00:00:01Z", &[], &[])];
        let first = claim(ClaimSource::Agent, "x", &["198.51.100.0/24"], &[]).request;
        record_claim(
            &mut claims,
            ClaimSource::Agent,
            None,
            &first,
            "2030-01-01T00:00:05Z".into(),
        );
        let again = claim(ClaimSource::Agent, "x", &["203.0.113.5"], &[]).request;
        record_claim(
            &mut claims,
            ClaimSource::Agent,
            None,
            &again,
            "2030-01-01T01:00:00Z".into(),
        );
        let agent: Vec<&Claim> = claims.iter().filter(|c| c.source == ClaimSource::Agent).collect();
        assert_eq!(agent.len(), 1, "one claim per source");
        assert_eq!(agent[0].claimed_at, "2030-01-01T00:00:05Z", "since is kept");
        assert_eq!(agent[0].request, again, "the request is the newest");
        assert_eq!(claims[0].claimed_at, "2030-01-01T00:00:01Z", "others untouched");
    }

    /// Trial20 HIGH-C, the fault kind "a claim belongs to one enrollment" (files only):
    /// a new enrollment's `agent` claim is a claim of its own beside the previous
    /// enrollment's, never a take-over of it; a release by one owner drops only its own
    /// claim; the operator on the host (no owner) may drop any claim of the source; the
    /// kernel's holder tokens are read the same way.
    #[test]
    fn a_claim_belongs_to_one_enrollment() {
        use ClaimSource::{Agent, Wazuh};
        let req = claim(Agent, "x", &["198.51.100.0/24"], &[]).request;
        let mut claims = vec![];
        record_claim(&mut claims, Agent, Some("old-id"), &req, "2030-01-01T00:00:01Z".into());
        record_claim(&mut claims, Agent, Some("new-id"), &req, "2030-01-01T00:00:02Z".into());
        record_claim(&mut claims, Agent, Some("new-id"), &req, "2030-01-01T00:00:03Z".into());
        assert_eq!(claims.len(), 2, "two enrollments, two claims: {claims:?}");
        assert_eq!(
            (claims[0].owner.as_deref(), claims[0].claimed_at.as_str()),
            (Some("old-id"), "2030-01-01T00:00:01Z"),
            "the previous enrollment's claim is untouched"
        );
        assert_eq!(
            (claims[1].owner.as_deref(), claims[1].claimed_at.as_str()),
            (Some("new-id"), "2030-01-01T00:00:02Z"),
            "the new enrollment's keeps its own start"
        );
        let mut after = claims.clone();
        after.retain(|c| !held_by(c.source, c.owner.as_deref(), Agent, Some("new-id")));
        assert_eq!(after.len(), 1, "the new enrollment's release drops its own only");
        assert_eq!(after[0].owner.as_deref(), Some("old-id"));
        assert!(held_by(Agent, Some("old-id"), Agent, None), "the operator on the host");
        assert!(
            held_by(Agent, None, Agent, Some("new-id")),
            "a claim from before owners"
        );
        assert!(!held_by(Wazuh, None, Agent, None));
        assert_eq!(claims[0].holder_token(), "agent:old-id");
        assert!(token_held_by("agent:NEW-ID", Agent, Some("new-id")));
        assert!(!token_held_by("agent:old-id", Agent, Some("new-id")));
        assert!(token_held_by("agent", Agent, Some("new-id")), "an owner cut for length");
        assert!(!token_held_by("wazuh", Agent, None));
        assert!(token_held_by("wazuh", Wazuh, None));
        assert!(!token_held_by("edr", Wazuh, None));
    }

    /// A release by another source removes the state file a moment before it clears the
    /// claims (under the claims lock): a status in that moment must not report "claims
    /// without a record" (nor the agent rebuild them) — it waits for the lock and looks
    /// again. Files only; no firewall.
    #[test]
    fn claims_without_state_wait_for_a_release_in_progress() {
        let dir = tempfile::tempdir().unwrap();
        let table = TableName::new("fx14cclaims").unwrap();
        let eng = Engine::new(table.clone(), dir.path().into(), cordon_firewall::BackendChoice::Auto);
        save_file(
            dir.path(),
            &table,
            &[claim(ClaimSource::Wazuh, "2030-01-01T00:00:01Z", &[], &[])],
        )
        .unwrap();
        assert_eq!(
            eng.claims_without_state().unwrap().len(),
            1,
            "records lost, as far as the files go"
        );
        // Another source's release: holds the claims lock, clears the claims, lets go.
        let lock = ClaimsLock::acquire(dir.path()).unwrap();
        let (d, t) = (dir.path().to_path_buf(), table.clone());
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            save_file(&d, &t, &[]).unwrap();
            drop(lock);
        });
        let settled = eng.claims_without_state_settled().unwrap();
        releaser.join().unwrap();
        assert!(
            settled.is_empty(),
            "a release in progress is not 'records lost': {settled:?}"
        );
    }

    /// Trial12 LOW, the fault kind "Cordon's own files are created readable by others
    /// and tightened later": the state lock, the claims lock and the holder files are
    /// created 0600 at once.
    #[cfg(unix)]
    #[test]
    fn own_lock_and_holder_files_are_created_private_at_once() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let table = TableName::default();
        drop(crate::lock::StateLock::acquire(dir.path(), std::time::Duration::from_secs(1)).unwrap());
        drop(ClaimsLock::acquire(dir.path()).unwrap());
        let announce = crate::watch::holder::Announce::write(dir.path(), &table);
        crate::watch::holder::report_failure(dir.path(), &table, None, "test");
        for name in [".lock", ".claims.lock", ".cordon.holder", ".cordon.holder-error"] {
            let mode = fs::metadata(dir.path().join(name)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name} is {mode:o}");
        }
        drop(announce);
    }

    #[test]
    fn claim_sources_parse_and_refuse_unknown() {
        for s in ClaimSource::ALL {
            assert_eq!(s.as_str().parse::<ClaimSource>().unwrap(), s);
        }
        assert!("WAZUH".parse::<ClaimSource>().is_ok());
        assert!("edr".parse::<ClaimSource>().unwrap_err().contains("not a claim source"));
    }

    /// Trial15 HIGH-4: a union that allows a whole family is named as not isolated, with
    /// the claim that widens it (its source, networks and consent); a union isolating both
    /// families says nothing.
    #[test]
    fn a_union_that_opens_a_whole_family_names_the_claims_that_widen_it() {
        let mut wide = claim(ClaimSource::Velociraptor, "2030-01-01T00:00:01Z", &["0.0.0.0/0"], &[]);
        wide.request.allow_no_isolation = true;
        let agent = claim(ClaimSource::Agent, "2030-01-01T00:00:02Z", &["198.51.100.0/24"], &[]);
        let open = cordon_policy::Policy {
            allow_nets: vec!["0.0.0.0/0".parse().unwrap(), "198.51.100.0/24".parse().unwrap()],
            ..Default::default()
        };
        let words = not_isolated_words(&open, &[wide.clone(), agent.clone()]);
        assert_eq!(words.len(), 1, "{words:?}");
        assert!(words[0].starts_with("NOT ISOLATED"), "{}", words[0]);
        assert!(
            words[0].contains("IPv4")
                && words[0].contains("claim `velociraptor`")
                && words[0].contains("0.0.0.0/0 with --allow-no-isolation")
                && !words[0].contains("`agent`"),
            "{}",
            words[0]
        );
        let closed = cordon_policy::Policy {
            allow_nets: vec!["198.51.100.0/24".parse().unwrap()],
            ..Default::default()
        };
        assert!(not_isolated_words(&closed, &[agent]).is_empty());
    }

    /// Trial15 LOW-A/HIGH-2b, trial17 MED-1 (files only, no firewall): a claims file that
    /// was deleted or corrupted is read from its backup — never re-labelled `local`
    /// (the legacy reading of a state file without claims), never an error that vetoes a
    /// quarantine — and `status` names the problem; a cleared list removes the backup too.
    #[test]
    fn a_lost_or_corrupt_claims_file_is_read_from_its_backup() {
        let dir = tempfile::tempdir().unwrap();
        let table = TableName::new("fx14iback").unwrap();
        let eng = Engine::new(table.clone(), dir.path().into(), cordon_firewall::BackendChoice::Auto);
        let c = vec![claim(ClaimSource::Agent, "2030-01-01T00:00:01Z", &[], &[])];
        save_file(dir.path(), &table, &c).unwrap();
        assert!(record_problems(dir.path(), &table).is_empty());
        fs::remove_file(path(dir.path(), &table)).unwrap();
        assert_eq!(eng.claims().unwrap(), c, "deleted: read from the backup");
        assert!(record_problems(dir.path(), &table)[0].contains("is missing"));
        fs::write(path(dir.path(), &table), "{oops").unwrap();
        assert_eq!(eng.claims().unwrap(), c, "corrupt: read from the backup");
        assert!(record_problems(dir.path(), &table)[0].contains("unreadable"));
        // Issue 14 LOW: a file set aside as `.corrupt.1` (`.corrupt` was taken) is named
        // as it is; once deleted it is no longer named.
        fs::write(set_aside_path(dir.path(), &table), "x").unwrap();
        let second = dir.path().join("fx14iback.claims.json.corrupt.1");
        fs::write(&second, "x").unwrap();
        fs::write(dir.path().join("fx14iback.claims.json.corrupt.x"), "x").unwrap();
        let named = |p: &Path| {
            record_problems(dir.path(), &table)
                .iter()
                .any(|l| l.contains(&format!("set aside as {} ", p.display())))
        };
        assert!(named(&set_aside_path(dir.path(), &table)) && named(&second));
        assert_eq!(
            record_problems(dir.path(), &table).len(),
            3,
            "{:?}",
            record_problems(dir.path(), &table)
        );
        fs::remove_file(set_aside_path(dir.path(), &table)).unwrap();
        assert!(named(&second) && !named(&set_aside_path(dir.path(), &table)));
        fs::remove_file(&second).unwrap();
        save_file(dir.path(), &table, &[]).unwrap();
        assert!(
            !backup_path(dir.path(), &table).exists(),
            "a cleared list leaves no backup"
        );
        assert!(eng.claims().unwrap().is_empty());
        assert_eq!(
            state::recorded_tables(dir.path()).unwrap(),
            Vec::<TableName>::new(),
            "the backup and a set-aside file are no table's record"
        );
    }

    #[test]
    fn claims_file_round_trip_and_legacy_state_is_local() {
        let dir = tempfile::tempdir().unwrap();
        let table = TableName::default();
        let eng = Engine::new(table.clone(), dir.path().into(), cordon_firewall::BackendChoice::Auto);
        assert!(eng.claims().unwrap().is_empty());
        let c = vec![claim(ClaimSource::Wazuh, "2030-01-01T00:00:01Z", &[], &[])];
        save_file(dir.path(), &table, &c).unwrap();
        assert_eq!(eng.claims().unwrap(), c);
        save_file(dir.path(), &table, &[]).unwrap();
        assert!(!path(dir.path(), &table).exists());
        fs::write(path(dir.path(), &table), "{oops").unwrap();
        assert!(
            eng.claims().is_err(),
            "a corrupt claims file is an error, not 'no claims'"
        );
    }
}
