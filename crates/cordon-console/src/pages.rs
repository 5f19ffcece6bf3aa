//! Server-rendered pages: sign-in, hosts, one host, audit (with export).

use std::collections::{BTreeSet, HashMap};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use cordon_policy::{AllowSpec, Target, Transport};
use cordon_proto::{AuditRecord, Host, HostState};
use maud::{html, Markup};
use serde::Deserialize;

use super::session::{
    clear_cookie, constant_time_eq, cookie, csrf_for, same_origin, set_cookie, ConsoleReject, PageSession, Session,
    LOGIN_CSRF_COOKIE, SESSION_COOKIE,
};
use super::status::{attention_text, policy_in_force, Attention, Shown};
use super::view::{
    flag_badges, host_badge, labels, layout, short_id_tag, state_text, time_ago, time_at, time_until, Nav,
};
use super::ConsoleError;
use cordon_server_core::service::host_views::{self, ListPage};
use cordon_server_core::service::{audit, hosts, sessions};
use cordon_server_core::store::{AuditFilter, AuditOrder, HostFilter, HostQuery};
use cordon_server_core::timefmt::now_ms;
use cordon_server_core::AppState;

const ALL_STATES: [HostState; 7] = HostState::ALL;

/// The State filter's value for hosts whose agent never reported
/// ([`cordon_proto::NEVER_REPORTED`]).
const NEVER_REPORTED: &str = cordon_proto::NEVER_REPORTED;

fn see_other(to: &'static str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    r.headers_mut().insert(LOCATION, HeaderValue::from_static(to));
    r
}

fn with_cookie(mut r: Response, c: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(c) {
        r.headers_mut().append(SET_COOKIE, v);
    }
    r
}

/// `/`: the hosts page for a signed-in user, else sign-in.
pub async fn root(uri: axum::http::Uri) -> Response {
    // The filters are in the URL (trial19 LOW-b): `/?attention=failed` is the filtered
    // hosts list, never the whole one. The query goes on as it came (the hosts page
    // validates it); nothing else of the request URL is used.
    match uri.query() {
        Some(q) if !q.is_empty() => match HeaderValue::from_str(&format!("/console/hosts?{q}")) {
            Ok(to) => {
                let mut r = StatusCode::SEE_OTHER.into_response();
                r.headers_mut().insert(LOCATION, to);
                r
            }
            Err(_) => see_other("/console/hosts"),
        },
        _ => see_other("/console/hosts"),
    }
}

// ---------------------------------------------------------------- sign-in

fn login_page(csrf: &str, error: Option<&str>) -> Markup {
    layout(
        "Sign in",
        None,
        Nav::None,
        html! {
            section class="login card" {
                h1 { "Sign in to Cordon" }
                p id="login-hint" { "Paste your API token: the admin token " code { "cordon server init" } " printed, or one an admin created for you with "
                    code { "POST /v1/tokens" } " (enrollment tokens from " code { "cordon server token create" } " are for agents and do not work here). "
                    "Viewers can look; responders and admins can also quarantine and release." }
                @if let Some(e) = error {
                    p class="error" role="alert" id="login-error" { (e) }
                }
                form method="post" action="/console/login" {
                    input type="hidden" name="csrf" value=(csrf);
                    div class="field" {
                        label for="token" { "API token" }
                        input id="token" name="token" type="password" autocomplete="off" required
                            aria-describedby=[error.map(|_| "login-error")];
                    }
                    button type="submit" class="primary" id="sign-in" { "Sign in" }
                }
            }
        },
    )
}

/// `GET /console/login`: the sign-in form, with a fresh login CSRF cookie.
///
/// # Errors
/// `ConsoleError`: the service's refusal with its status (403
/// below the role, 400/404/409 as the service says, 503 when the server cannot take
/// changes); an internal failure is logged and shown as a generic 500 page.
pub async fn login_form(headers: HeaderMap) -> Result<Response, ConsoleError> {
    let existing = cookie(&headers, LOGIN_CSRF_COOKIE).filter(|c| c.len() >= 32);
    let csrf = match existing {
        Some(c) => c,
        None => cordon_server_core::secret::new_token("login")
            .map_err(|e| ConsoleError::Internal(format!("no randomness: {e}")))?,
    };
    let r = Html(login_page(&csrf, None).into_string()).into_response();
    Ok(with_cookie(r, &set_cookie(LOGIN_CSRF_COOKIE, &csrf, Some(3600))))
}

#[derive(Debug, Deserialize)]
/// The sign-in form: an API token and the login CSRF token.
pub struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
}

/// `POST /console/login`: checks the token and opens a server-side session (cookie [`SESSION_COOKIE`]).
///
/// # Errors
/// `ConsoleError`: the service's refusal with its status (403
/// below the role, 400/404/409 as the service says, 503 when the server cannot take
/// changes); an internal failure is logged and shown as a generic 500 page.
pub async fn login(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, ConsoleError> {
    if !same_origin(&headers) {
        return Err(ConsoleReject::CrossSite.into());
    }
    let form: LoginForm = serde_urlencoded::from_bytes(&body).map_err(|e| ConsoleError::BadRequest(e.to_string()))?;
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if expected.is_empty() || !constant_time_eq(&form.csrf, &expected) {
        return Err(ConsoleReject::Csrf.into());
    }
    let token = form.token.trim();
    let refuse = |msg: &str| {
        let mut r = Html(login_page(&expected, Some(msg)).into_string()).into_response();
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        r
    };
    if token.is_empty() {
        return Ok(refuse("Enter an API token."));
    }
    // Only characters a token can have go into the cookie.
    if !token.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Ok(refuse("That is not an API token."));
    }
    let limits = super::session::limits();
    match sessions::sign_in(&st, token, now_ms(), limits).await? {
        Some((_caller, id)) => {
            let r = with_cookie(
                see_other("/console/hosts"),
                &set_cookie(SESSION_COOKIE, &id, Some(limits.absolute_ms / 1000)),
            );
            Ok(with_cookie(r, &clear_cookie(LOGIN_CSRF_COOKIE)))
        }
        None => Ok(refuse("Unknown or revoked API token.")),
    }
}

/// `POST /console/logout`: ends the session on the server and clears the cookie.
///
/// # Errors
/// `ConsoleError`: the service's refusal with its status (403
/// below the role, 400/404/409 as the service says, 503 when the server cannot take
/// changes); an internal failure is logged and shown as a generic 500 page.
pub async fn logout(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, ConsoleError> {
    if !same_origin(&headers) {
        return Err(ConsoleReject::CrossSite.into());
    }
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    // A stale session may sign out too, as long as the CSRF token matches its cookie.
    let id = cookie(&headers, SESSION_COOKIE).unwrap_or_default();
    if id.is_empty() {
        return Ok(see_other("/console/login"));
    }
    let given = form.get("csrf").map(String::as_str).unwrap_or("");
    if !constant_time_eq(given, &csrf_for(&id)) {
        return Err(ConsoleReject::Csrf.into());
    }
    // The session ends on the server: the old cookie opens nothing any more.
    sessions::sign_out(&st, &id).await?;
    Ok(with_cookie(see_other("/console/login"), &clear_cookie(SESSION_COOKIE)))
}

// ---------------------------------------------------------------- hosts

#[derive(Debug, Default, Deserialize)]
/// Query of the hosts page: search, label, state, attention filter, sort, direction, cursor.
pub struct HostsQuery {
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    state: Option<String>,
    /// `failed`, `tampered`, `degraded`, `not_enforcing`, `long_pending`, `offline` (the
    /// banner's links).
    #[serde(default)]
    attention: Option<String>,
    /// Column to sort by: `host` (default), `state`, `since`, `by`, `last_seen`, `backend`.
    #[serde(default)]
    sort: Option<String>,
    /// `asc` (default) or `desc`.
    #[serde(default)]
    dir: Option<String>,
    /// The next page: hosts after this cursor (the previous page's `next`).
    #[serde(default)]
    after: Option<String>,
    /// The previous page: hosts before this cursor.
    #[serde(default)]
    before: Option<String>,
}

/// Hosts per page of the hosts list.
pub const HOSTS_PAGE: i64 = 100;

impl HostsQuery {
    /// This view's URL with `sort`/`dir` and the page position (`after=`/`before=` a
    /// cursor, or neither: the first page) replaced.
    fn url_with(&self, sort: &str, dir: &str, at: Option<(&str, String)>) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        for (k, v) in [
            ("q", &self.q),
            ("label", &self.label),
            ("state", &self.state),
            ("attention", &self.attention),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                pairs.push((k, v.to_string()));
            }
        }
        pairs.push(("sort", sort.to_string()));
        pairs.push(("dir", dir.to_string()));
        if let Some((k, c)) = at {
            pairs.push((k, c));
        }
        format!(
            "/console/hosts?{}",
            serde_urlencoded::to_string(pairs).unwrap_or_default()
        )
    }
}

impl HostsQuery {
    /// The list this view shows, judged at `now`.
    ///
    /// # Errors
    /// 400 naming the value and the accepted ones for a `sort` or `dir` (the service's
    /// own message), `state` or `attention` it does not know — never a silent fall-back
    /// to another order or to every host.
    fn query(&self, now: i64) -> Result<HostQuery, ConsoleError> {
        let (sort, descending) = host_views::parse_sort(self.sort.as_deref(), self.dir.as_deref())?;
        let attention = match self.attention.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
            None => None,
            Some(a) => Some(Attention::parse(a).ok_or_else(|| {
                let ok: Vec<&str> = Attention::ALL.iter().map(|a| a.as_str()).collect();
                ConsoleError::BadRequest(format!("unknown attention {a:?}: use one of {}", ok.join(", ")))
            })?),
        };
        let (filter, reported) = self.filter()?;
        Ok(HostQuery {
            filter,
            attention,
            sort,
            descending,
            now_ms: now,
            reported,
        })
    }

    /// The filter, and whether only hosts that reported (`state=normal`) or never did
    /// (`state=never_reported`) are listed.
    fn filter(&self) -> Result<(HostFilter, Option<bool>), ConsoleError> {
        let nonempty = |s: &Option<String>| {
            s.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        // `normal` is a state an agent confirmed: a host that never reported is listed
        // under `never_reported`, never under `normal` (trial19 LOW-a).
        let (state, reported) = match nonempty(&self.state) {
            None => (None, None),
            Some(s) => {
                let (st, reported) = cordon_proto::parse_state_filter(&s).map_err(ConsoleError::BadRequest)?;
                (Some(st), reported)
            }
        };
        Ok((
            HostFilter {
                text: nonempty(&self.q),
                label: nonempty(&self.label),
                state,
                include_revoked: false,
                only_revoked: false,
                offline: None,
            },
            reported,
        ))
    }
}

/// The action buttons for a host as it is now; each carries the revision the page
/// shows, so an action on a view that moved on is refused (409). **Retry** (re-send the
/// desired state as a new revision) only for a host with something to retry — failed,
/// tampered, degraded or pending ([`Host::retry_refusal`](cordon_proto::Host::retry_refusal)).
fn action_button(h: &Host, sr_name: bool) -> Markup {
    let (action, text) = if h.desired.quarantined {
        ("release", "Release")
    } else {
        ("quarantine", "Quarantine")
    };
    let retry = h.retry_refusal().is_none();
    html! {
        button type="button" class={"act " (action)} data-action=(action) data-hosts=(h.id) data-names=(super::view::sentence_name(h))
            data-revision=(h.desired.revision) {
            (text) @if sr_name { span class="sr-only" { " " (h.hostname) } }
        }
        @if retry {
            " "
            button type="button" class="act retry" data-action="retry" data-hosts=(h.id) data-names=(super::view::sentence_name(h))
                data-revision=(h.desired.revision) title="Send the desired state to the agent again as a new revision" {
                "Retry" @if sr_name { span class="sr-only" { " " (h.hostname) } }
            }
        }
    }
}

fn host_row(h: &Host, s: &Session) -> Markup {
    let act = s.can_act();
    html! {
        tr id={"host-" (h.id)} data-host-id=(h.id) data-hostname=(h.hostname) data-state=(Shown::of(h).key())
            data-revision=(h.desired.revision) data-flagged[!h.flags.is_empty()] {
            @if act {
                td class="sel" {
                    input type="checkbox" class="host-select" value=(h.id) id={"sel-" (h.id)}
                        aria-label={"Select " (h.hostname)};
                }
            }
            td class="hostname" data-label="Host" {
                // One box: in the phone layout's card rows (a flex row) the name, its short
                // id and the flag badges flow inside it instead of becoming narrow columns
                // side by side (trial19 LOW-l).
                div class="host-cell" {
                    // A long name breaks after its dots, not inside a word.
                    a href={"/console/hosts/" (h.id)} { @for part in h.hostname.split_inclusive('.') { (part) wbr; } }
                    " " (short_id_tag(&h.id))
                    (flag_badges(h))
                    // Shown where the Addresses column is left out (narrow windows).
                    span class="addr-inline" { (h.addresses.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")) }
                }
            }
            td class="col-os" data-label="OS" { (h.os.as_deref().unwrap_or("—")) }
            td class="addr col-addr" data-label="Addresses" {
                @for a in &h.addresses { span class="address" { (a) } " " }
            }
            td class="labels" data-label="Labels" { (labels(&h.labels)) }
            td class="state-cell" data-label="State" {
                (host_badge(h))
                // A revoked host is listed while it may still be isolated: the server can
                // no longer release it (trial17 MED-5).
                @if let Some(note) = revoked_note(h) { " " span class="label revoked-note" { (note) } }
            }
            td class="col-since" data-label="Since" { (time_ago(Some(&h.state_since))) }
            td class="col-by" data-label="By" { (h.desired.actor_label().unwrap_or_else(|| "—".into())) }
            td class="col-seen" data-label="Last seen" { (time_ago(h.last_seen.as_ref())) }
            td class="col-backend" data-label="Backend" { (h.backend.as_ref().map_or("—", |b| b.as_str())) }
            @if act {
                td class="row-actions" { @if !h.revoked { (action_button(h, true)) } }
            }
        }
    }
}

fn host_rows(hosts: &[Host], s: &Session) -> Markup {
    let cols = if s.can_act() { 11 } else { 9 };
    html! {
        tbody id="host-rows" data-live="" {
            @for h in hosts { (host_row(h, s)) }
            @if hosts.is_empty() {
                tr { td colspan=(cols) class="empty" { "No hosts match." } }
            }
        }
    }
}

/// A revoked host's note, its last report's time as every other absolute time on the
/// page (local time by the script, UTC on hover): trial36 LOW-D, "02:48:57Z" was a third
/// format. `None` for a host not revoked.
fn revoked_note(h: &Host) -> Option<Markup> {
    const MARK: &str = "\u{1}";
    let text = h.revoked_note_with(&|_| MARK.to_string())?;
    Some(match (text.split_once(MARK), h.last_seen.as_ref()) {
        (Some((before, after)), Some(t)) => html! { (before) (time_at(t)) (after) },
        _ => html! { (text) },
    })
}

/// Counts of the whole filtered list by the state the console shows (a non-enforcing
/// "quarantine" is not counted as quarantined), from the database.
fn summary(total: i64, counts: &[(String, i64)]) -> Markup {
    let count = |k: &str| counts.iter().find(|(s, _)| s == k).map_or(0, |(_, n)| *n);
    // `not_enforcing` is a state of its own (in ALL_STATES); `degraded` is shown apart
    // from `quarantined`.
    let dg = count("degraded");
    html! {
        p id="host-summary" class="summary" data-live="" {
            strong { (total) } @if total == 1 { " host" } @else { " hosts" }
            @for st in ALL_STATES {
                @let n = count(st.as_str());
                @if n > 0 { " · " span class={"sum state-" (st.as_str())} { (n) " " (state_text(st).to_lowercase()) } }
            }
            @if dg > 0 { " · " span class="sum state-degraded" { (dg) " degraded" } }
            @let nr = count(NEVER_REPORTED);
            @if nr > 0 { " · " span class="sum state-never" data-count=(NEVER_REPORTED) { (nr) " never reported" } }
        }
    }
}

/// The failure banner: every host that needs attention, counted by reason, each count a
/// link that filters the list. Always present (live), empty when all is well.
fn attention_banner(counts: &[(Attention, i64)], current: Option<Attention>) -> Markup {
    let counts: Vec<(Attention, i64)> = counts.iter().copied().filter(|(_, n)| *n > 0).collect();
    html! {
        div id="attention-banner" data-live="" {
            @if !counts.is_empty() {
                section class="attention" role="alert" aria-labelledby="attention-title" {
                    strong id="attention-title" { "⚠ Needs attention:" }
                    ul {
                        @for (a, n) in &counts {
                            li {
                                a class={"att att-" (a.as_str())} href={"/console/hosts?attention=" (a.as_str())}
                                    aria-current=[(current == Some(*a)).then_some("true")] data-attention=(a.as_str()) {
                                    strong { (n) } " " (attention_text(*a, *n))
                                }
                            }
                        }
                    }
                    @if current.is_some() { a href="/console/hosts" class="att-clear" { "Show all hosts" } }
                }
            }
        }
    }
}

/// `GET /console/hosts`: the hosts list with banners and filters.
///
/// # Errors
/// `ConsoleError`: the service's refusal with its status (403
/// below the role, 400/404/409 as the service says, 503 when the server cannot take
/// changes); an internal failure is logged and shown as a generic 500 page.
pub async fn hosts(
    State(st): State<AppState>,
    PageSession(s): PageSession,
    Query(q): Query<HostsQuery>,
) -> Result<Html<String>, ConsoleError> {
    let now = now_ms();
    let focus = q.attention.as_deref().and_then(Attention::parse);
    let hq = q.query(now)?;
    let sort = hq.sort.as_str();
    let desc = hq.descending;
    let dir = if desc { "desc" } else { "asc" };
    // Sorted, filtered and cut into pages by the database (keyset cursors): a page costs
    // the same with ten hosts or a hundred thousand.
    let at = host_views::page_at(&hq, q.after.as_deref(), q.before.as_deref())?;
    let ListPage { page, total, before } = host_views::page(&st, &s.caller, &hq, &at, HOSTS_PAGE).await?;
    let list = page.hosts;
    let banner = host_views::attention(&st, &s.caller, now).await?;
    let states = host_views::state_counts(&st, &s.caller, &hq).await?;
    let all_labels: BTreeSet<String> = host_views::labels(&st, &s.caller).await?.into_iter().collect();
    let cur_label = q.label.clone().unwrap_or_default();
    let cur_state = q.state.clone().unwrap_or_default();
    let act = s.can_act();
    let body = html! {
        div class="page-head" {
            h1 { "Hosts" }
            (summary(total, &states))
        }
        (attention_banner(&banner, focus))
        form method="get" action="/console/hosts" class="filters" role="search" aria-label="Filter hosts" {
            @if let Some(a) = focus { input type="hidden" name="attention" value=(a.as_str()); }
            div class="field" {
                label for="f-q" { "Search" }
                input id="f-q" name="q" type="search" value=(q.q.clone().unwrap_or_default()) placeholder="hostname, id or address";
            }
            div class="field" {
                label for="f-label" { "Label" }
                select id="f-label" name="label" {
                    option value="" { "Any label" }
                    @for l in &all_labels { option value=(l) selected[*l == cur_label] { (l) } }
                }
            }
            div class="field" {
                label for="f-state" { "State" }
                select id="f-state" name="state" {
                    option value="" { "Any state" }
                    @for s in ALL_STATES { option value=(s.as_str()) selected[s.as_str() == cur_state] { (state_text(s)) } }
                    option value=(NEVER_REPORTED) selected[cur_state == NEVER_REPORTED] { "Never reported" }
                }
            }
            div class="field buttons" {
                button type="submit" id="apply-filters" { "Apply" }
                a href="/console/hosts" class="button-like" { "Clear" }
            }
        }
        @if act {
            div class="toolbar" role="toolbar" aria-label="Actions on hosts" {
                button type="button" class="act quarantine" data-action="quarantine" data-target="selection" id="quarantine-selected" { "Quarantine selected" }
                button type="button" class="act release" data-action="release" data-target="selection" id="release-selected" { "Release selected" }
                button type="button" class="act quarantine secondary" data-action="quarantine" data-target="label" id="quarantine-label" { "Quarantine by label…" }
                button type="button" class="act release secondary" data-action="release" data-target="label" id="release-label" { "Release by label…" }
                button type="button" class="act retry" data-action="retry" data-target="selection" id="retry-selected"
                    title="Send the desired state of the selected failed, tampered, degraded or pending hosts to their agents again" { "Retry selected" }
                span id="selection-count" class="muted" aria-live="polite" { "0 selected" }
            }
        }
        div class="table-wrap" {
            table class="hosts" id="hosts-table" data-live-src="/console/hosts" {
                caption class="sr-only" { "Hosts and their quarantine state" }
                thead {
                    tr {
                        @if act {
                            th scope="col" class="sel" {
                                input type="checkbox" id="select-all" aria-label="Select all shown hosts";
                            }
                        }
                        (sort_th(&q, "host", "Host", sort, desc, ""))
                        th scope="col" class="col-os" { "OS" }
                        th scope="col" class="col-addr" { "Addresses" }
                        th scope="col" { "Labels" }
                        (sort_th(&q, "state", "State", sort, desc, ""))
                        (sort_th(&q, "since", "Since", sort, desc, "col-since"))
                        (sort_th(&q, "by", "By", sort, desc, "col-by"))
                        (sort_th(&q, "last_seen", "Last seen", sort, desc, "col-seen"))
                        (sort_th(&q, "backend", "Backend", sort, desc, "col-backend"))
                        @if act { th scope="col" { span class="sr-only" { "Actions" } } }
                    }
                }
                (host_rows(&list, &s))
            }
        }
        @if page.prev.is_some() || page.next.is_some() {
            nav class="pager" id="hosts-pager" aria-label="Pages of hosts" data-live="" {
                span id="pager-position" { "Hosts " (before + 1) "–" (before + list.len() as i64) " of " (total) }
                " "
                @if let Some(p) = &page.prev {
                    a href=(q.url_with(sort, dir, None)) id="page-first" { "« First" } " "
                    a href=(q.url_with(sort, dir, Some(("before", p.encode())))) rel="prev" id="page-prev" { "‹ Previous" } " "
                }
                @if let Some(n) = &page.next {
                    a href=(q.url_with(sort, dir, Some(("after", n.encode())))) rel="next" id="page-next" { "Next ›" }
                }
            }
        }
        @if act { (super::actions::dialog(&all_labels)) }
        (live_note())
    };
    Ok(Html(layout("Hosts", Some(&s), Nav::Hosts, body).into_string()))
}

/// A sortable column header: a link that sorts by it (again: the other way round).
/// A sortable column head; `class` names the column for the narrow-window layout
/// (`col-since`, …: the columns left out first), empty for none.
fn sort_th(q: &HostsQuery, col: &str, text: &str, sort: &str, desc: bool, class: &str) -> Markup {
    let current = sort == col;
    let next = if current && !desc { "desc" } else { "asc" };
    let aria = current.then_some(if desc { "descending" } else { "ascending" });
    let class = (!class.is_empty()).then_some(class);
    html! {
        th scope="col" class=[class] aria-sort=[aria] {
            a class="sort" href=(q.url_with(col, next, None)) {
                (text)
                @if current { span aria-hidden="true" { @if desc { " ▼" } @else { " ▲" } } }
            }
        }
    }
}

/// "Live updates: on" (kept current by the script), on every page that updates live.
pub(crate) fn live_note() -> Markup {
    html! { p class="live-note" { span id="live-status" class="live-status" { "Live updates: connecting…" } } }
}

// ---------------------------------------------------------------- one host

fn spec_text(spec: &AllowSpec) -> String {
    let what = match &spec.target {
        Target::Ip(_) => "address",
        Target::Net(_) => "network",
        Target::Name(_) => "name (resolved when applied)",
    };
    let how = match spec.transport {
        Transport::Any => "every protocol and port".to_string(),
        Transport::Tcp(p) if spec.tls => format!("TCP port {p} (HTTPS)"),
        Transport::Tcp(p) => format!("TCP port {p}"),
        Transport::Udp(p) => format!("UDP port {p}"),
    };
    format!("{} {}, {}", what, spec.target, how)
}

fn policy_items(h: &Host) -> Markup {
    let missing = super::status::degraded(h);
    html! {
        li { "Loopback, and replies within sessions to the destinations below" }
        li { "The Cordon server (the agent's " code { "--server" } " address, always allowed)" }
        li { "DNS to the host's configured resolvers, and DHCP" }
        @for a in &h.desired.allow {
            @let gap = missing.iter().find(|m| m.contains(a.as_str()));
            li class={"extra" @if gap.is_some() { " not-in-force" }} {
                code { (a) }
                @match AllowSpec::parse(a) {
                    Ok(spec) => { " — " (spec_text(&spec)) }
                    Err(e) => { " — " span class="error" { (e.to_string()) } }
                }
                @if let Some(m) = gap {
                    " " strong class="gap" { "✕ not in force" } ": " (m)
                }
            }
        }
    }
}

/// What is in force on the host, from the agent's report: the policy only when the agent
/// confirmed it; otherwise what was asked for, said to be *not* confirmed, and why.
fn policy(h: &Host) -> Markup {
    let in_force = policy_in_force(h);
    html! {
        @if in_force {
            h3 { "Policy in force" }
            p { "The agent confirmed revision " (h.applied_revision) ". The host may only reach:" }
            ul class="policy" id="policy" data-in-force="true" { (policy_items(h)) }
            @if h.desired.allow.is_empty() { p class="muted" { "No extra exceptions." } }
            @let missing = super::status::degraded(h);
            @if !missing.is_empty() {
                div class="degraded-note" id="degraded" role="note" {
                    p { strong { "Degraded:" } " the quarantine is in force (closed), but these exceptions are not — the host cannot reach them; the agent keeps retrying:" }
                    ul { @for m in missing { li { (m) } } }
                }
            }
            p { "Everything else, inbound and outbound, is blocked." }
        } @else if h.desired.quarantined {
            h3 { "Asked-for policy — not confirmed in force" }
            div id="policy" data-in-force="false" {
                p class="not-in-force" {
                    strong {
                        @match Shown::of(h) {
                            Shown::NotEnforcing => "Nothing is blocked: the agent runs with enforce = false.",
                            Shown::State(HostState::Failed) => "The agent could not apply it; Cordon cannot confirm any rule on this host.",
                            Shown::State(HostState::Tampered) => "The rules were altered on the host; the agent is repairing them.",
                            _ => "The agent has not confirmed it yet.",
                        }
                    }
                    @if let Some(r) = &h.state_reason { " Reported: " (r) }
                }
                p { "When confirmed, the host may only reach:" }
                ul class="policy asked" { (policy_items(h)) }
            }
        } @else {
            h3 { "Policy in force" }
            p id="policy" data-in-force="false" {
                @if h.state == HostState::Normal && !others_text(h).is_empty() {
                    "Released by Cordon: Cordon enforces no rules on this host, but it is " strong { "still isolated by " (others_text(h)) } " (their rules, not Cordon's)."
                } @else if h.state == HostState::Normal && super::status::never_reported(h) {
                    "No quarantine asked for. The agent has never reported, so Cordon cannot confirm what is in force on this host."
                } @else if h.state == HostState::Normal { "Not quarantined: Cordon enforces no rules on this host." }
                @else { "Release asked for; the agent has not confirmed that Cordon's rules are gone." }
            }
        }
    }
}

fn digest_status(h: &Host) -> Markup {
    let digest = h.digest.as_deref().unwrap_or("");
    let in_sync = h.applied_revision >= h.desired.revision;
    let shown = Shown::of(h);
    // The colour follows what the words say: only a confirmed, enforced state is "ok".
    let class = match shown {
        Shown::NotEnforcing => "warn",
        Shown::Degraded => "warn",
        Shown::State(HostState::Failed) => "bad",
        Shown::State(HostState::Tampered) => "bad",
        _ if !in_sync => "behind",
        _ => "ok",
    };
    html! {
        p id="digest-status" class={"digest " (class)} data-kind=(class) {
            @match shown {
                Shown::NotEnforcing => { strong { "Not enforcing" } ": the agent runs with enforce = false; no firewall rules are in force." }
                Shown::Degraded => {
                    strong { "In force, degraded" } ": the agent confirmed revision " (h.applied_revision)
                    " without some exceptions: " (super::status::degraded(h).join("; "))
                }
                Shown::State(HostState::Tampered) => { strong { "✕ Tampered" } ": " (h.state_reason.as_deref().unwrap_or("rules were altered")) " — the agent is repairing." }
                Shown::State(HostState::Failed) => {
                    strong { "✕ Failed" } ": " (h.state_reason.as_deref().unwrap_or("the agent could not apply"))
                    " — the agent retries by itself; " strong { "Retry" } " sends the desired state again as a new revision."
                }
                _ if !in_sync => {
                    strong { "Waiting for the agent" } ": applied revision " (h.applied_revision) " of " (h.desired.revision) "."
                }
                Shown::State(HostState::Quarantined) if h.offline => {
                    strong { "Last confirmed in force" } ": the agent confirmed revision " (h.applied_revision)
                    "; it is offline since " (time_ago(h.last_seen.as_ref())) ", so Cordon cannot say what is in force now."
                }
                Shown::State(HostState::Quarantined) => { strong { "In force" } ": the agent confirmed revision " (h.applied_revision) "." }
                _ => { strong { "In sync" } ": revision " (h.applied_revision) "." }
            }
        }
        @if !digest.is_empty() {
            p { "Firewall digest reported: " code class="digest-value" { (digest) } }
        } @else {
            p class="muted" { "No firewall digest reported." }
        }
    }
}

/// Who holds the host's quarantine, from the agent's report: the Cordon server's own
/// claim (`agent`) and other managers' (`wazuh`, `velociraptor`, `local`). A release from
/// the console ends only Cordon's claim; the others keep the host isolated (the agent
/// never undoes them), which the card says plainly whenever another claim stands.
fn claims_card(h: &Host) -> Markup {
    let others = super::status::other_claims(h);
    let names: Vec<&str> = others.iter().map(|c| c.source.as_str()).collect();
    html! {
        section class="card" aria-labelledby="h-claims" id="claims" data-claims=(h.claims.len()) {
            h2 id="h-claims" { "Claims" }
            @if h.claims.is_empty() && h.never_reported() {
                // Nothing was ever reported: no claims are known, not "none" (trial30 LOW-5).
                p class="muted" { "Unknown: the agent has never reported, so which managers hold a quarantine on this host cannot be confirmed." }
            } @else if h.claims.is_empty() {
                p class="muted" { "No manager holds a quarantine on this host (as the agent last reported)." }
            } @else {
                p { "Managers holding this host's quarantine (as the agent last reported):" }
                ul class="claims" {
                    @for c in &h.claims {
                        li data-source=(c.source) {
                            strong { (claim_name(&c.source)) }
                            @if let Some(t) = &c.since { " since " (time_at(t)) }
                            @if c.allow.is_empty() { " — no exceptions of its own" } @else {
                                " — its exceptions: " @for (i, a) in c.allow.iter().enumerate() { @if i > 0 { ", " } code { (a) } }
                            }
                            @if !c.servers.is_empty() {
                                " — its servers (always allowed): " @for (i, a) in c.servers.iter().enumerate() { @if i > 0 { ", " } code { (a) } }
                            }
                        }
                    }
                }
            }
            @if !others.is_empty() {
                p id="claims-note" class="claims-note" role="note" {
                    strong { "Other managers hold this quarantine: " (names.join(", ")) "." }
                    @if h.desired.quarantined {
                        " A release from this console removes only Cordon's claim: the host stays isolated until "
                        @if names.len() == 1 { "that manager releases it" } @else { "each of them releases it" } "."
                    } @else {
                        " Cordon's claim is released, but the host stays isolated until "
                        @if names.len() == 1 { "that manager releases it" } @else { "each of them releases it" } "."
                    }
                }
            }
        }
    }
}

/// A claim source in words.
fn claim_name(source: &cordon_proto::ClaimSource) -> String {
    use cordon_proto::ClaimSource;
    match source {
        ClaimSource::Agent => "Cordon server (this console)".into(),
        ClaimSource::Wazuh => "Wazuh".into(),
        ClaimSource::Velociraptor => "Velociraptor".into(),
        ClaimSource::Local => "local cordon isolate (on the host)".into(),
        ClaimSource::Other(other) => other.clone(),
    }
}

/// Other managers' claims that keep `h` isolated whatever Cordon does ("wazuh,
/// velociraptor"); empty when none stands.
fn others_text(h: &Host) -> String {
    super::status::other_claims(h)
        .iter()
        .map(|c| c.source.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The one line an analyst reads first: "Quarantined since … by … — comment — auto-release
/// in 3h", or the failure.
fn headline(h: &Host) -> Markup {
    let d = &h.desired;
    let by = d.actor_label().unwrap_or_else(|| "?".into());
    html! {
        p id="host-headline" class={"headline headline-" (Shown::of(h).key())} {
            @match Shown::of(h) {
                Shown::NotEnforcing | Shown::State(HostState::NotEnforcing) => {
                    strong { "Not enforcing" } " — quarantine asked for by " (by) " but the agent blocks nothing (enforce = false)"
                }
                Shown::Degraded => {
                    strong { "Quarantined — degraded" } " since " (time_at(&h.state_since)) " by " (by)
                    ": " (super::status::degraded(h).join("; "))
                }
                Shown::State(HostState::Failed) => {
                    strong { "Failed" } " since " (time_at(&h.state_since)) ": " (h.state_reason.as_deref().unwrap_or("the agent could not apply its state"))
                }
                Shown::State(HostState::Tampered) => {
                    strong { "Tampered" } " since " (time_at(&h.state_since)) ": " (h.state_reason.as_deref().unwrap_or("rules were altered"))
                }
                Shown::State(HostState::Quarantined) => {
                    strong { "Quarantined" } " since " (time_at(&h.state_since)) " by " (by)
                }
                Shown::State(HostState::QuarantinePending) => {
                    strong { "Quarantine requested" } " by " (by) ", waiting for the agent "
                    span data-since=(h.state_since) { "for " (super::view::ago_text(&h.state_since)) }
                }
                Shown::State(HostState::ReleasePending) => {
                    strong { "Release requested" } " by " (by) ", waiting for the agent "
                    span data-since=(h.state_since) { "for " (super::view::ago_text(&h.state_since)) }
                }
                Shown::State(HostState::Normal) if !others_text(h).is_empty() => {
                    strong { "Released by Cordon — still isolated by " (others_text(h)) }
                    @if let Some(a) = d.actor_label() { " — Cordon's quarantine released " (time_at(&h.state_since)) " by " (a) }
                }
                Shown::State(HostState::Normal) if super::status::never_reported(h) => {
                    strong { "Never reported" } " — the agent has not sent a status report since it enrolled ("
                    (time_at(&h.enrolled_at)) "); Cordon cannot say what is in force on this host"
                }
                Shown::State(HostState::Normal) => {
                    strong { "Not quarantined" }
                    @if let Some(a) = d.actor_label() { " — released " (time_at(&h.state_since)) " by " (a) }
                }
            }
            @if h.offline && !h.revoked { " · " strong { "agent offline" } " since " (time_ago(h.last_seen.as_ref())) }
            @if let Some(c) = &d.comment { " — “" (c) "”" }
            @if d.quarantined {
                @if let Some(e) = &d.expires_at { " — auto-release " (time_until(e)) }
            }
        }
    }
}

/// `GET /console/hosts/{id}`: one host, what is in force, claims, actions.
///
/// # Errors
/// `ConsoleError`: the service's refusal with its status (403
/// below the role, 400/404/409 as the service says, 503 when the server cannot take
/// changes); an internal failure is logged and shown as a generic 500 page.
pub async fn host(
    State(st): State<AppState>,
    PageSession(s): PageSession,
    Path(id): Path<String>,
) -> Result<Html<String>, ConsoleError> {
    let h = hosts::get(&st, &s.caller, &id).await?;
    // The newest records of this host (the audit page has them all).
    let (timeline, more_timeline) = audit::page(
        &st,
        &s.caller,
        AuditFilter {
            host_id: Some(h.id.clone()),
            ..Default::default()
        },
        None,
        AuditOrder::Newest,
        Some(TIMELINE_LIMIT),
    )
    .await?;
    let d = &h.desired;
    let body = html! {
        // Everything here follows live updates, the action button included: it always
        // matches the state shown, and carries the revision it was shown for.
        div class="page-head" id="host-head" data-live="" data-revision=(d.revision) {
            h1 { (h.hostname) " " (short_id_tag(&h.id)) }
            div id="host-state" {
                (host_badge(&h))
                @if let Some(note) = revoked_note(&h) { " " span class="label revoked-note" { (note) } }
            }
            @if !h.flags.is_empty() {
                p id="host-flags" class="host-flags" role="note" {
                    (flag_badges(&h))
                    " — address this host by its id; automation refuses the shared name or address."
                }
            }
            @if s.can_act() && !h.revoked {
                div class="toolbar" id="host-actions" { (action_button(&h, false)) }
            }
            (headline(&h))
            @if h.offline && !h.revoked {
                p id="offline-note" class="offline-note" role="note" {
                    strong { "Offline:" } " the agent has not reported for three of its heartbeat intervals (last seen "
                    (time_ago(h.last_seen.as_ref())) "). What is shown is its last report; a quarantine or release "
                    "will stay pending until the agent returns."
                }
            }
        }
        div class="grid" id="host-detail" data-live="" {
            section class="card" aria-labelledby="h-state" {
                h2 id="h-state" { "State" }
                dl {
                    dt { "Current" } dd {
                        (host_badge(&h)) " (state since " (time_at(&h.state_since)) ")"
                        @if h.offline && !h.revoked { " · agent offline since " (time_ago(h.last_seen.as_ref())) }
                    }
                    @if let Some(r) = &h.state_reason { dt { "Reason" } dd { (r) } }
                    dt { "Asked for" } dd { @if d.quarantined { "quarantine" } @else { "no quarantine" } " (revision " (d.revision) ")" }
                    @if let Some(a) = d.actor_label() { dt { "Asked by" } dd { (a) } }
                    @if let Some(c) = &d.comment { dt { "Comment" } dd { (c) } }
                    @if let Some(m) = &d.message { dt { "Message to users" } dd { (m) } }
                    @if let Some(e) = &d.expires_at { dt { "Expires" } dd { (time_at(e)) " (" (time_until(e)) ")" } }
                    dt { "Applied revision" } dd { (h.applied_revision) }
                }
            }
            section class="card" aria-labelledby="h-fw" {
                h2 id="h-fw" { "Firewall" }
                (digest_status(&h))
                (policy(&h))
            }
            (claims_card(&h))
            section class="card" aria-labelledby="h-host" {
                h2 id="h-host" { "Host" }
                dl {
                    dt { "Host id" } dd { code { (h.id) } }
                    dt { "OS" } dd { (h.os.as_deref().unwrap_or("—")) }
                    dt { "Addresses" } dd { @for a in &h.addresses { span class="address" { (a) } " " } }
                    dt { "Labels" } dd { (labels(&h.labels)) }
                    dt { "Backend" } dd { (h.backend.as_ref().map_or("—", |b| b.as_str())) }
                    dt { "Agent" } dd { (h.agent_version.as_deref().unwrap_or("—")) }
                    dt { "Last seen" } dd { (time_ago(h.last_seen.as_ref())) }
                    dt { "Enrolled" } dd { (time_at(&h.enrolled_at)) }
                }
            }
            section class="card wide" aria-labelledby="h-timeline" {
                h2 id="h-timeline" { "Timeline" }
                @if timeline.is_empty() { p class="muted" { "No audit records." } }
                ol class="timeline" id="timeline" {
                    @for r in &timeline {
                        li class={"result-" (r.result)} {
                            (time_at(&r.at))
                            " " strong { (r.action) } " by " (r.actor_label())
                            " " span class="result" { "(" (r.result) ")" }
                            @if let Some(c) = &r.comment { div class="comment" { "“" (c) "”" } }
                            @if let Some(dt) = &r.detail { div class="detail muted" { (dt) } }
                        }
                    }
                }
                p {
                    @if more_timeline.is_some() { "The newest " (TIMELINE_LIMIT) " are shown. " }
                    a href={"/console/audit?host=" (h.id)} { "All audit records of this host" }
                }
            }
        }
        @if s.can_act() { (super::actions::dialog(&BTreeSet::new())) }
        (live_note())
    };
    Ok(Html(layout(&h.hostname, Some(&s), Nav::Hosts, body).into_string()))
}

// ---------------------------------------------------------------- audit

#[derive(Debug, Default, Clone, Deserialize)]
/// Query of the audit page: host, actor, action, since/until, cursor.
pub struct AuditQuery {
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    actor: Option<String>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    until: Option<String>,
    #[serde(default)]
    format: Option<String>,
    /// Older records: after this record id (the previous page's last).
    #[serde(default)]
    after: Option<String>,
    /// Newer records: before this record id (the previous page's first).
    #[serde(default)]
    before: Option<String>,
}

impl AuditQuery {
    /// The filter, all of it run by the database: host and actor match what they
    /// contain (case-insensitive), like a search.
    fn filter(&self) -> Result<AuditFilter, ConsoleError> {
        let nonempty = |s: &Option<String>| {
            s.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let time = |s: &Option<String>| -> Result<Option<i64>, ConsoleError> {
            nonempty(s)
                .map(|t| day_or_time(&t))
                .transpose()
                .map_err(|e| ConsoleError::BadRequest(e.to_string()))
        };
        Ok(AuditFilter {
            host_contains: nonempty(&self.host),
            actor_contains: nonempty(&self.actor),
            action: nonempty(&self.action),
            since: time(&self.since)?,
            until: time(&self.until)?,
            ..Default::default()
        })
    }

    /// This view's URL at another page (`after=`/`before=` a record id).
    fn url_at(&self, at: (&str, i64)) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        for (k, v) in [
            ("host", &self.host),
            ("actor", &self.actor),
            ("action", &self.action),
            ("since", &self.since),
            ("until", &self.until),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !v.trim().is_empty()) {
                pairs.push((k, v.trim().to_string()));
            }
        }
        pairs.push((at.0, at.1.to_string()));
        format!(
            "/console/audit?{}",
            serde_urlencoded::to_string(pairs).unwrap_or_default()
        )
    }

    fn export_query(&self, format: &str) -> String {
        let mut pairs: Vec<(&str, String)> = vec![("format", format.to_string())];
        for (k, v) in [
            ("host", &self.host),
            ("actor", &self.actor),
            ("action", &self.action),
            ("since", &self.since),
            ("until", &self.until),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !v.trim().is_empty()) {
                pairs.push((k, v.trim().to_string()));
            }
        }
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }
}

/// `24h`/`7d` (back from now, like the CLI's `--since`), `2030-01-02` (UTC midnight) or a
/// full RFC 3339 time.
fn day_or_time(s: &str) -> Result<i64, cordon_server_core::timefmt::TimeParseError> {
    if let Ok(span) = cordon_server_core::timefmt::Span::parse(s) {
        return Ok(now_ms().saturating_sub(span.millis()));
    }
    if s.len() == 10 && s.as_bytes().get(4) == Some(&b'-') {
        cordon_server_core::timefmt::parse_rfc3339(&format!("{s}T00:00:00Z"))
    } else {
        cordon_server_core::timefmt::parse_rfc3339(s)
    }
}

/// Audit records on a host page's timeline (newest first).
pub const TIMELINE_LIMIT: i64 = 50;

/// Audit records per page, newest first.
pub const AUDIT_PAGE: i64 = 100;

/// Host id → hostname of every host, revoked ones included (for naming hosts in lists),
/// through the service as `s`'s caller.
pub(crate) async fn host_names(st: &AppState, s: &Session) -> Result<HashMap<String, String>, ConsoleError> {
    Ok(host_views::names(st, &s.caller).await?)
}

/// The ids of hosts whose hostname another host (revoked or not) has too, compared as
/// [`hostname_key`](cordon_server_core::service::validate::hostname_key): those the
/// audit page names with their short id.
fn twin_ids(names: &HashMap<String, String>) -> std::collections::HashSet<&str> {
    let mut by_key: HashMap<String, Vec<&str>> = HashMap::new();
    for (id, name) in names {
        by_key
            .entry(cordon_server_core::service::validate::hostname_key(name))
            .or_default()
            .push(id.as_str());
    }
    by_key.into_values().filter(|ids| ids.len() > 1).flatten().collect()
}

/// One page of audit records, newest first, the database filtering and cutting it.
struct AuditView {
    records: Vec<AuditRecord>,
    total: i64,
    /// Records newer than this page.
    before: i64,
    /// There are older records (after the last shown).
    older: bool,
}

async fn audit_view(st: &AppState, s: &Session, q: &AuditQuery, f: AuditFilter) -> Result<AuditView, ConsoleError> {
    let id = |t: &Option<String>| -> Result<Option<i64>, ConsoleError> {
        audit::cursor(t.as_deref()).map_err(ConsoleError::from)
    };
    let (records, older) = match (id(&q.after)?, id(&q.before)?) {
        // Newer records: read upwards from the cursor, then show them newest first.
        (None, Some(b)) => {
            let (mut recs, _) =
                audit::page(st, &s.caller, f.clone(), Some(b), AuditOrder::Oldest, Some(AUDIT_PAGE)).await?;
            recs.reverse();
            (recs, true)
        }
        (after, _) => {
            let (recs, next) =
                audit::page(st, &s.caller, f.clone(), after, AuditOrder::Newest, Some(AUDIT_PAGE)).await?;
            (recs, next.is_some())
        }
    };
    let total = audit::matching_count(st, &s.caller, f.clone(), None, AuditOrder::Oldest).await?;
    let before = match records.first() {
        Some(r) => audit::matching_count(st, &s.caller, f, Some(r.id), AuditOrder::Oldest).await?,
        None => 0,
    };
    Ok(AuditView {
        records,
        total,
        before,
        older,
    })
}

/// `GET /console/audit`: the audit log, filterable, with exports.
///
/// # Errors
/// `ConsoleError`: the service's refusal with its status (403
/// below the role, 400/404/409 as the service says, 503 when the server cannot take
/// changes); an internal failure is logged and shown as a generic 500 page.
pub async fn audit(
    State(st): State<AppState>,
    PageSession(s): PageSession,
    Query(q): Query<AuditQuery>,
) -> Result<Html<String>, ConsoleError> {
    let names = host_names(&st, &s).await?;
    let (view, error) = match q.filter() {
        Ok(f) => (audit_view(&st, &s, &q, f).await?, None),
        Err(ConsoleError::BadRequest(e)) => (
            AuditView {
                records: vec![],
                total: 0,
                before: 0,
                older: false,
            },
            Some(e),
        ),
        Err(e) => return Err(e),
    };
    let shown = &view.records;
    // Hosts that share their hostname (compared as the server compares them, revoked
    // hosts included: their records are history too) are named `web2 (9c167b94)`, so a
    // search for `web2` never reads as one host's records (trial25 F9).
    let twins = twin_ids(&names);
    // Every action the log records, from the server (a hand list missed some, trial13).
    let mut actions: BTreeSet<String> = audit::actions(&st, &s.caller).await?.into_iter().collect();
    if let Some(a) = q.action.as_ref().filter(|a| !a.is_empty()) {
        actions.insert(a.clone());
    }
    let v = |o: &Option<String>| o.clone().unwrap_or_default();
    let cur_action = v(&q.action);
    let body = html! {
        div class="page-head" {
            h1 { "Audit log" }
            p class="summary" id="audit-summary" data-live="" { strong { (view.total) } " records" }
        }
        form method="get" action="/console/audit" class="filters" aria-label="Filter audit records" {
            div class="field" { label for="a-host" { "Host" } input id="a-host" name="host" type="search" value=(v(&q.host)) placeholder="hostname or id (contains)"; }
            div class="field" { label for="a-actor" { "Actor" } input id="a-actor" name="actor" value=(v(&q.actor)) placeholder="contains"; }
            div class="field" {
                label for="a-action" { "Action" }
                select id="a-action" name="action" {
                    option value="" { "Any action" }
                    @for a in &actions { option value=(a) selected[*a == cur_action] { (a) } }
                }
            }
            div class="field" { label for="a-since" { "Since" } input id="a-since" name="since" value=(v(&q.since)) placeholder="24h, 2030-01-02 or RFC 3339"; }
            div class="field" { label for="a-until" { "Until (UTC)" } input id="a-until" name="until" value=(v(&q.until)) placeholder="2030-01-03"; }
            div class="field buttons" {
                button type="submit" { "Apply" }
                a href="/console/audit" class="button-like" { "Clear" }
            }
        }
        @if let Some(e) = &error { p class="error" role="alert" { (e) } }
        p class="exports" {
            "Export these records: "
            a id="export-csv" href={"/console/audit/export?" (q.export_query("csv"))} download { "CSV" }
            " · "
            a id="export-jsonl" href={"/console/audit/export?" (q.export_query("jsonl"))} download { "JSON lines" }
            " · "
            a id="export-json" href={"/console/audit/export?" (q.export_query("json"))} download { "JSON" }
        }
        div class="table-wrap" id="audit-live" data-live="" {
            table class="audit" id="audit-table" {
                caption class="sr-only" { "Audit records, newest first" }
                thead { tr { th scope="col" { "Time" } th scope="col" { "Actor" } th scope="col" { "Action" } th scope="col" { "Host" } th scope="col" { "Comment" } th scope="col" { "Result" } th scope="col" { "Detail" } } }
                tbody {
                    @for r in shown {
                        tr data-action=(r.action) {
                            td data-label="Time" { (time_at(&r.at)) }
                            td data-label="Actor" { (super::view::breakable_name(&r.actor_label())) }
                            td data-label="Action" { (super::view::breakable_action(&r.action)) }
                            td data-label="Host" {
                                @if let Some(id) = &r.host_id {
                                    a href={"/console/hosts/" (id)} { (super::view::breakable_name(names.get(id).map(String::as_str).unwrap_or(id))) }
                                    @if twins.contains(id.as_str()) { " (" (short_id_tag(id)) ")" }
                                }
                            }
                            td data-label="Comment" { (r.comment.as_deref().unwrap_or("")) }
                            td data-label="Result" { span class={"result result-" (r.result)} { (r.result) } }
                            td data-label="Detail" class="detail" { (r.detail.as_deref().unwrap_or("")) }
                        }
                    }
                    @if shown.is_empty() { tr { td colspan="7" class="empty" { "No records match." } } }
                }
            }
        }
        @if view.before > 0 || view.older {
            nav class="pager" id="audit-pager" aria-label="Pages of audit records" data-live="" {
                span id="pager-position" {
                    "Records " (view.before + 1) "–" (view.before + shown.len() as i64) " of " (view.total) ", newest first"
                }
                " "
                @if view.before > 0 {
                    @if let Some(first) = shown.first() {
                        a href=(q.url_at(("before", first.id))) rel="prev" id="page-newer" { "‹ Newer" } " "
                    }
                }
                @if view.older {
                    @if let Some(last) = shown.last() {
                        a href=(q.url_at(("after", last.id))) rel="next" id="page-older" { "Older ›" }
                    }
                }
            }
        }
    };
    let body = html! { (body) (live_note()) };
    Ok(Html(layout("Audit", Some(&s), Nav::Audit, body).into_string()))
}

/// The API's export formats (`/v1/audit?format=`), authenticated by the console session
/// so a plain link downloads them.
///
/// # Errors
/// `ConsoleError`: the service's refusal with its status (403
/// below the role, 400/404/409 as the service says, 503 when the server cannot take
/// changes); an internal failure is logged and shown as a generic 500 page.
pub async fn audit_export(
    State(st): State<AppState>,
    PageSession(s): PageSession,
    Query(q): Query<AuditQuery>,
) -> Result<Response, ConsoleError> {
    let f = q.filter()?;
    let (ctype, ext) = match q.format.as_deref().unwrap_or("csv") {
        "csv" => ("text/csv; charset=utf-8", "csv"),
        "jsonl" => ("application/x-ndjson", "jsonl"),
        "json" => ("application/json", "json"),
        other => {
            return Err(ConsoleError::BadRequest(format!(
                "unknown format {other:?} (csv, jsonl or json)"
            )))
        }
    };
    // Read page by page from the database and sent as it is read (the API's export):
    // memory stays one page whatever the log's size. JSON is the JSON lines wrapped as
    // `{"records": [...]}`, the API's `AuditList` shape.
    let export = audit::export(&st, &s.caller, f, None, AuditOrder::Oldest, None, ext == "csv").await?;
    let json = ext == "json";
    let stream = futures_util::stream::unfold(Some((export, true)), move |e| async move {
        let (mut e, first) = e?;
        let wrap = |text: String, first: bool| -> String {
            if !json {
                return text;
            }
            let items: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
            let sep = if first { "" } else { "," };
            let body = items.join(",\n    ");
            if items.is_empty() {
                String::new()
            } else {
                format!("{sep}\n    {body}")
            }
        };
        match e.next_chunk().await {
            Ok(None) if json => {
                let head = if first { "{\n  \"records\": [" } else { "" };
                Some((Ok::<_, std::io::Error>(Bytes::from(format!("{head}\n  ]\n}}\n"))), None))
            }
            Ok(None) => None,
            Ok(Some(text)) => {
                let head = if json && first { "{\n  \"records\": [" } else { "" };
                let out = format!("{head}{}", wrap(text, first));
                Some((Ok(Bytes::from(out)), Some((e, false))))
            }
            Err(err) => {
                // The status line is already sent: end the body early and log why.
                tracing::error!(error = %err, "console audit export failed");
                Some((Err(std::io::Error::other(err.to_string())), None))
            }
        }
    });
    let body = axum::body::Body::from_stream(stream);
    let mut r = body.into_response();
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"cordon-audit.{ext}\"")) {
        r.headers_mut().insert(CONTENT_DISPOSITION, v);
    }
    Ok(r)
}
