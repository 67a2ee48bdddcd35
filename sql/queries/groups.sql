-- name: create_group
INSERT INTO groups (name) VALUES ($1) RETURNING id, name;

-- name: get_group
SELECT id, name FROM groups WHERE name = $1;

-- name: list_groups
SELECT g.id, g.name, u.name AS member, m.is_admin
FROM groups g
LEFT JOIN group_members m ON m.group_id = g.id
LEFT JOIN users u ON u.id = m.user_id
ORDER BY g.name, u.name;

-- name: add_group_member
-- Returns the previous admin flag (NULL when the user was not a member).
WITH old AS (
    SELECT is_admin FROM group_members WHERE group_id = $1 AND user_id = $2
)
INSERT INTO group_members (group_id, user_id, is_admin) VALUES ($1, $2, $3)
ON CONFLICT (group_id, user_id) DO UPDATE SET is_admin = $3
RETURNING (SELECT is_admin FROM old) AS was_admin;

-- name: remove_group_member
DELETE FROM group_members WHERE group_id = $1 AND user_id = $2 RETURNING user_id;
