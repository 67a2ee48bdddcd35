-- name: create_user
INSERT INTO users (name, is_admin) VALUES ($1, $2)
RETURNING id, name, is_admin;

-- name: get_user
SELECT id, name, is_admin FROM users WHERE name = $1;

-- name: users_by_name
SELECT id, name, is_admin FROM users WHERE name = ANY($1::text[]);

-- name: create_token
INSERT INTO tokens (user_id, login, secret_hash, expires_on) VALUES ($1, $2, $3, $4)
RETURNING id;

-- name: token_by_login
SELECT t.secret_hash, t.expires_on, t.revoked, u.id, u.name, u.is_admin
FROM tokens t JOIN users u ON u.id = t.user_id
WHERE t.login = $1;

-- name: touch_token
UPDATE tokens SET last_used = now() WHERE login = $1;

-- name: list_tokens
SELECT t.login, t.created_on, t.expires_on, t.last_used, t.revoked, t.revoked_on
FROM tokens t WHERE t.user_id = $1
ORDER BY t.created_on, t.id;

-- name: revoke_token
-- Returns the row only when this call revoked it, so revoking twice is visible.
UPDATE tokens SET revoked = true, revoked_on = now()
WHERE login = $1 AND NOT revoked
RETURNING login;

-- name: add_event
INSERT INTO events (user_id, address, action, object, details) VALUES ($1, $2, $3, $4, $5);

-- name: list_events
-- $1: a project (or other object) and everything below it; $2: the actor's name;
-- $3: how many; $4, $5: the reader's id and name, NULL for a reader who sees all.
-- starts_with, not LIKE: `_` is common in names and a LIKE wildcard.
-- A plain reader sees the events of projects (objects `owner/name`: every
-- project may be read, kopers.access has no private ones), the events they
-- caused, the events about them (object: their name), and the events of the
-- groups they belong to (object: @group). Not the events of other groups, or
-- of other accounts and their tokens.
SELECT e.id, e.at, u.name AS username, e.address, e.action, e.object, e.details
FROM events e LEFT JOIN users u ON u.id = e.user_id
WHERE ($1::text IS NULL OR e.object = $1 OR starts_with(e.object, $1 || '/'))
  AND ($2::text IS NULL OR u.name = $2)
  AND ($4::bigint IS NULL
       OR e.user_id = $4
       OR e.object = $5::text
       OR strpos(e.object, '/') > 0
       OR (starts_with(e.object, '@') AND EXISTS (
             SELECT 1 FROM group_members gm JOIN groups g ON g.id = gm.group_id
             WHERE gm.user_id = $4 AND '@' || g.name = e.object)))
ORDER BY e.id DESC LIMIT $3;
