-- Notifications, outgoing webhooks and their deliveries (sql/0010_notifications.sql).

-- name: notify_build
-- A notification of build $1 (its project looked up here), with its deliveries.
SELECT kopers_notify(b.project_id, $2, b.id, $3, $4, $5, '{}')
FROM builds b WHERE b.id = $1;

-- name: notifications_after
-- The stored notifications after id $1, oldest first; of project $2 only, unless NULL.
SELECT n.*, p.owner || '/' || p.name AS project
FROM notifications n JOIN projects p ON p.id = n.project_id
WHERE n.id > $1 AND ($2::bigint IS NULL OR n.project_id = $2)
ORDER BY n.id
LIMIT $3;

-- name: last_notification
SELECT coalesce(max(id), 0) FROM notifications;

-- name: lock_project_hooks
-- Serialises hook creation per project (the cap); no other writer takes this lock mode.
SELECT id FROM projects WHERE id = $1 FOR NO KEY UPDATE;

-- name: count_hooks
SELECT count(*) FROM hooks WHERE project_id = $1;

-- name: create_hook
INSERT INTO hooks (project_id, url, secret, created_by) VALUES ($1, $2, $3, $4)
RETURNING id;

-- name: list_hooks
SELECT h.*, u.name AS creator FROM hooks h LEFT JOIN users u ON u.id = h.created_by
WHERE h.project_id = $1 ORDER BY h.id;

-- name: get_hook
SELECT h.*, u.name AS creator FROM hooks h LEFT JOIN users u ON u.id = h.created_by
WHERE h.project_id = $1 AND h.id = $2;

-- name: delete_hook
DELETE FROM hooks WHERE project_id = $1 AND id = $2 RETURNING id;

-- name: list_deliveries
-- A hook's deliveries, newest event first.
SELECT d.id AS delivery_id, d.hook_id, d.state AS delivery_state, d.attempts, d.next_at,
       d.last_at, d.last_status, d.last_answer, d.last_error, d.delivered_at,
       n.id, n.at, n.project_id, n.kind, n.build_id, n.chroot, n.state, n.previous,
       p.owner || '/' || p.name AS project
FROM hook_deliveries d
JOIN notifications n ON n.id = d.notification_id
JOIN projects p ON p.id = n.project_id
WHERE d.hook_id = $1
ORDER BY d.notification_id DESC
LIMIT $2;

-- name: due_hooks
-- The hooks whose oldest pending delivery (their head) is due at $1, longest
-- due first; at most $2. Hooks in $3 (being sent to already) and the hooks of
-- projects in $4 (which have their fill of drains) are left out.
SELECT hook_id, project_id, next_at FROM (
    SELECT DISTINCT ON (hook_id) hook_id, project_id, next_at
    FROM hook_deliveries
    WHERE state = 'pending' AND hook_id <> ALL ($3::bigint[])
      AND project_id <> ALL ($4::bigint[])
    ORDER BY hook_id, notification_id
) heads
WHERE next_at <= $1
ORDER BY next_at, hook_id
LIMIT $2;

-- name: next_due
-- When the earliest head is due (NULL: none is pending), of the hooks not in
-- $1 and of projects not in $2.
SELECT min(next_at) FROM (
    SELECT DISTINCT ON (hook_id) next_at
    FROM hook_deliveries
    WHERE state = 'pending' AND hook_id <> ALL ($1::bigint[])
      AND project_id <> ALL ($2::bigint[])
    ORDER BY hook_id, notification_id
) heads;

-- name: head_delivery
-- A hook's oldest pending delivery, with what sending it needs.
SELECT d.id AS delivery_id, d.hook_id, d.state AS delivery_state, d.attempts, d.next_at,
       d.last_at, d.last_status, d.last_answer, d.last_error, d.delivered_at,
       n.id, n.at, n.project_id, n.kind, n.build_id, n.chroot, n.state, n.previous,
       p.owner || '/' || p.name AS project,
       h.url, h.secret
FROM hook_deliveries d
JOIN hooks h ON h.id = d.hook_id
JOIN notifications n ON n.id = d.notification_id
JOIN projects p ON p.id = n.project_id
WHERE d.hook_id = $1 AND d.state = 'pending'
ORDER BY d.notification_id
LIMIT 1;

-- name: record_attempt
-- $3: the state after this try; $7: when to try again if still pending.
UPDATE hook_deliveries
SET attempts = attempts + 1, last_at = $2::timestamptz, state = $3::text, last_status = $4,
    last_answer = $5, last_error = $6, next_at = $7,
    delivered_at = CASE WHEN $3::text = 'delivered' THEN $2::timestamptz END
WHERE id = $1 AND state = 'pending'
RETURNING id;

-- name: give_up_behind
-- After a hook's head failed for good: its other pending deliveries of events
-- older than $2 fail with it, untried (they would only fail one by one).
UPDATE hook_deliveries d SET state = 'failed', last_error = $3, last_at = $4
FROM notifications n
WHERE n.id = d.notification_id AND d.hook_id = $1 AND d.state = 'pending' AND n.at < $2;

-- name: prune_notifications
-- Notifications older than $1 whose deliveries are all done, of builds that
-- ended or are gone (a running build's last build.state is what the next
-- change is compared with).
DELETE FROM notifications n
WHERE n.at < $1
  AND NOT EXISTS (SELECT 1 FROM hook_deliveries d
                  WHERE d.notification_id = n.id AND d.state = 'pending')
  AND NOT EXISTS (SELECT 1 FROM builds b WHERE b.id = n.build_id AND b.ended_on IS NULL);
