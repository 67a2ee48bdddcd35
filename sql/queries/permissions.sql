-- name: user_groups
SELECT g.name, m.is_admin
FROM group_members m JOIN groups g ON g.id = m.group_id
WHERE m.user_id = $1;

-- name: project_grants
SELECT u.id AS user_id, u.name, pp.builder, pp.admin
FROM project_permissions pp JOIN users u ON u.id = pp.user_id
WHERE pp.project_id = $1
ORDER BY u.name;

-- name: lock_project
-- Locks the project row so concurrent edits of its roles serialize.
SELECT id FROM projects WHERE id = $1 FOR UPDATE;

-- name: upsert_grant
INSERT INTO project_permissions (project_id, user_id, builder, admin)
SELECT $1, u.id, $3, $4 FROM users u WHERE u.name = $2
ON CONFLICT (project_id, user_id) DO UPDATE SET builder = $3, admin = $4;
