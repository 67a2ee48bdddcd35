-- Webhook receipts (sql/0009_webhook_receipts.sql) and who a webhook acts as.

-- name: add_webhook_receipt
-- NULL (no row) when the same body was accepted before for this project and forge.
INSERT INTO webhook_receipts (project_id, forge, status, reason, event, delivery_id, digest)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (project_id, forge, digest) WHERE accepted AND forge <> 'custom' DO NOTHING
RETURNING id;

-- name: prune_webhook_receipts
-- Keep the newest $2 of the project's receipts; refused ones go before accepted ones.
DELETE FROM webhook_receipts WHERE id IN (
    SELECT id FROM webhook_receipts WHERE project_id = $1
    ORDER BY accepted DESC, id DESC
    OFFSET $2
);

-- name: set_webhook_receipt_builds
UPDATE webhook_receipts SET builds = $2 WHERE id = $1;

-- name: refuse_webhook_receipt
-- An accepted delivery whose builds did not go through after all.
UPDATE webhook_receipts SET status = $2, reason = $3, builds = '{}' WHERE id = $1
RETURNING id;

-- name: list_webhook_receipts
SELECT * FROM webhook_receipts WHERE project_id = $1 ORDER BY id DESC LIMIT $2;

-- name: webhook_user
-- Who a project's webhooks build as: the owning user, or for a group's
-- project the user who made it.
SELECT u.id, u.name, u.is_admin
FROM projects p JOIN users u
  ON (p.owner LIKE '@%' AND u.id = p.created_by) OR (p.owner NOT LIKE '@%' AND u.name = p.owner)
WHERE p.id = $1;
