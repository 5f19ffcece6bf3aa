-- What a host's page shows from its agent's reports changes without an audit record when
-- only claims, addresses, os, agent version, backend or heartbeat change, or when an
-- offline agent is heard again (trial24 MED-2): `report_rev` counts such reports, so the
-- console's live stream (which sums it) wakes open pages at once, not at the next 30 s step.
ALTER TABLE hosts ADD COLUMN report_rev BIGINT NOT NULL DEFAULT 0;
