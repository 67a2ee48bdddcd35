-- Webhook receipts (sql/0009_webhook_receipts.sql) and who a webhook acts as.

-- name: add_webhook_receipt
INSERT INTO webhook_receipts (project_id, forge, status, reason, event, delivery_id, digest)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING id;

-- name: prune_webhook_receipts
-- Keep the project's newest $2 accepted and newest $3 refused receipts.
-- Rows another delivery is pruning (or updating) are skipped, not waited
-- for: deliveries arriving together never deadlock on each other's prunes.
DELETE FROM webhook_receipts WHERE id IN (
    SELECT id FROM webhook_receipts WHERE id IN (
        SELECT id FROM (
            SELECT id, accepted,
                   row_number() OVER (PARTITION BY accepted ORDER BY id DESC) AS newer
            FROM webhook_receipts WHERE project_id = $1
        ) ranked
        WHERE newer > CASE WHEN accepted THEN $2::bigint ELSE $3::bigint END
    )
    FOR UPDATE SKIP LOCKED
);

-- name: forget_webhook_digests
-- The project's claims older than $2 days: their bodies may build again.
-- Skips rows another delivery is deleting, as prune_webhook_receipts does.
DELETE FROM webhook_digests WHERE (project_id, forge, digest) IN (
    SELECT project_id, forge, digest FROM webhook_digests
    WHERE project_id = $1 AND seen_at < now() - make_interval(days => $2)
    FOR UPDATE SKIP LOCKED
);

-- name: claim_webhook_digest
-- NULL (no row) when the body was claimed before for this project and forge.
INSERT INTO webhook_digests (project_id, forge, digest) VALUES ($1, $2, $3)
ON CONFLICT (project_id, forge, digest) DO NOTHING
RETURNING seen_at;

-- name: set_webhook_receipt_builds
UPDATE webhook_receipts SET builds = $2, reason = $3 WHERE id = $1;

-- name: refuse_webhook_receipt
-- An accepted delivery whose builds did not go through after all: its body
-- no longer counts as acted on.
WITH refused AS (
    UPDATE webhook_receipts SET status = $2, reason = $3, builds = '{}' WHERE id = $1
    RETURNING id, project_id, forge, digest
), released AS (
    DELETE FROM webhook_digests d USING refused r
    WHERE d.project_id = r.project_id AND d.forge = r.forge AND d.digest = r.digest
)
SELECT id FROM refused;

-- name: list_webhook_receipts
SELECT * FROM webhook_receipts WHERE project_id = $1 ORDER BY id DESC LIMIT $2;

-- name: webhook_user
-- Who a project's webhooks build as: the owning user, or for a group's
-- project the user who made it.
SELECT u.id, u.name, u.is_admin
FROM projects p JOIN users u
  ON (p.owner LIKE '@%' AND u.id = p.created_by) OR (p.owner NOT LIKE '@%' AND u.name = p.owner)
WHERE p.id = $1;
