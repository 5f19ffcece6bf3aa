-- Who decided an approval, by identity (issue 17, trial18 MED-2): the API token id behind
-- `auto_approvals.decided_by` (a name only, which any admin could have given another
-- token). NULL for approvals decided before this column existed and for superseded ones.
ALTER TABLE auto_approvals ADD COLUMN decided_by_token_id BIGINT;
