//! Agents the database does not know (issue 14, trial32 HIGH-2): a client certificate
//! signed by this deployment's CA naming a host id no host has. After a database restore
//! older than a host's enrollment such an agent is refused and keeps its quarantine in
//! force; this table is how the SOC learns of it (migration 0030).

use cordon_proto::UnknownAgent;

use super::audit::{append, NewAudit};
use super::{get_i64, get_opt_str, get_str, Store, StoreError};
use crate::timefmt::{now_ms, Timestamp};

/// The audit action of an unknown agent's first refused request.
pub const UNKNOWN_AGENT_ACTION: &str = "agent_unknown";

/// At most this often (milliseconds) the server logs one unknown agent again.
pub const LOG_EVERY_MS: i64 = 3_600_000;

/// What [`Store::note_unknown_agent`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownSighting {
    /// First refused request of this host id in this database (audited now).
    pub first: bool,
    /// Log it now: the first time, or `LOG_EVERY_MS` (an hour) after it was last logged.
    pub log: bool,
    /// Refused requests so far, this one included.
    pub attempts: i64,
}

/// The audit detail of an unknown agent's first refused request (pure).
pub fn unknown_agent_detail(host_id: &str, address: Option<&str>) -> String {
    format!(
        "a client certificate signed by this server's CA names host id {host_id}, which this database does not know \
         (restored from a backup older than that host's enrollment, or the host was deleted){}: its agent is refused \
         and keeps any quarantine in force on its host; enrol the host again and release it through the server, or \
         release it on the host (`cordon release --source agent`)",
        address.map(|a| format!("; from {a}")).unwrap_or_default()
    )
}

impl Store {
    /// Records a refused request of an agent whose certificate names `host_id`, which no
    /// host has, from `address`: the first one is inserted and audited
    /// ([`UNKNOWN_AGENT_ACTION`], actor `system`, result `refused`), later ones count and
    /// move `last_seen`.
    ///
    /// # Errors
    /// Database errors (nothing is recorded then).
    pub async fn note_unknown_agent(
        &self,
        host_id: &str,
        address: Option<&str>,
    ) -> Result<UnknownSighting, StoreError> {
        let now = now_ms();
        let (_guard, mut tx) = self.write_tx().await?;
        let row = sqlx::query("SELECT attempts, logged_at FROM unknown_agents WHERE host_id = $1")
            .bind(host_id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let sighting = match row {
            None => {
                sqlx::query(
                    "INSERT INTO unknown_agents (host_id, first_seen, last_seen, attempts, last_address, logged_at) \
                     VALUES ($1, $2, $3, 1, $4, $5)",
                )
                .bind(host_id.to_string())
                .bind(now)
                .bind(now)
                .bind(address.map(str::to_string))
                .bind(now)
                .execute(&mut *tx)
                .await?;
                let detail = unknown_agent_detail(host_id, address);
                append(
                    &mut tx,
                    &NewAudit {
                        actor: crate::SYSTEM_ACTOR,
                        action: UNKNOWN_AGENT_ACTION,
                        host_id: Some(host_id),
                        result: "refused",
                        detail: Some(&detail),
                        ..Default::default()
                    },
                )
                .await?;
                UnknownSighting {
                    first: true,
                    log: true,
                    attempts: 1,
                }
            }
            Some(r) => {
                let attempts = get_i64(&r, "attempts")? + 1;
                let logged_at = get_i64(&r, "logged_at")?;
                let log = now - logged_at >= LOG_EVERY_MS;
                sqlx::query(
                    "UPDATE unknown_agents SET last_seen = $1, attempts = $2, last_address = $3, logged_at = $4 \
                     WHERE host_id = $5",
                )
                .bind(now)
                .bind(attempts)
                .bind(address.map(str::to_string))
                .bind(if log { now } else { logged_at })
                .bind(host_id.to_string())
                .execute(&mut *tx)
                .await?;
                UnknownSighting {
                    first: false,
                    log,
                    attempts,
                }
            }
        };
        tx.commit().await?;
        Ok(sighting)
    }

    /// Every agent refused as unknown whose host id no host has (now: one enrolled or
    /// restored since is left out), most recently seen first.
    ///
    /// # Errors
    /// Database errors.
    pub async fn unknown_agents(&self) -> Result<Vec<UnknownAgent>, StoreError> {
        let rows = sqlx::query(
            "SELECT u.host_id, u.first_seen, u.last_seen, u.attempts, u.last_address FROM unknown_agents u \
             WHERE NOT EXISTS (SELECT 1 FROM hosts h WHERE h.id = u.host_id) ORDER BY u.last_seen DESC, u.host_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(UnknownAgent {
                    host_id: get_str(r, "host_id")?,
                    first_seen: Timestamp::from_unix_ms_clamped(get_i64(r, "first_seen")?),
                    last_seen: Timestamp::from_unix_ms_clamped(get_i64(r, "last_seen")?),
                    attempts: get_i64(r, "attempts")?,
                    address: get_opt_str(r, "last_address")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_detail_names_the_id_the_address_and_both_ways_out() {
        let d = unknown_agent_detail("1341908f-aaaa", Some("192.0.2.10:40000"));
        assert!(d.contains("host id 1341908f-aaaa"), "{d}");
        assert!(d.contains("from 192.0.2.10:40000"), "{d}");
        assert!(
            d.contains("enrol the host again") && d.contains("cordon release --source agent"),
            "{d}"
        );
        assert!(!unknown_agent_detail("x", None).contains("; from "));
    }
}
