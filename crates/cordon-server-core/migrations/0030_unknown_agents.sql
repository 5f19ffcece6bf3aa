-- Agents the database does not know (issue 14, trial32 HIGH-2): a client certificate
-- signed by this deployment's CA that names a host id with no row in `hosts` — the
-- database was restored from a backup older than that host's enrollment (or the row was
-- deleted). Such an agent is refused (403) and keeps any quarantine in force (fail
-- closed); this table is how the SOC sees it (`cordon hosts list --unknown`,
-- GET /v1/unknown-agents). One row per host id: first and last refused request, how
-- many, from which address, and when the server last logged it (logged at most hourly).
-- Plain SQL that SQLite and PostgreSQL both accept.
CREATE TABLE unknown_agents (
    host_id       TEXT PRIMARY KEY,
    first_seen    BIGINT NOT NULL,
    last_seen     BIGINT NOT NULL,
    attempts      BIGINT NOT NULL DEFAULT 1,
    last_address  TEXT,
    logged_at     BIGINT NOT NULL
);
-- A release ordered while the host's agent reported `agent` claims of previous
-- enrollments of the same machine (re-enrolled after such a restore): their host ids, as a
-- JSON list. The agent lifts those claims with this release (and no others); '[]' for
-- every other desired state.
ALTER TABLE hosts ADD COLUMN release_previous TEXT NOT NULL DEFAULT '[]';
