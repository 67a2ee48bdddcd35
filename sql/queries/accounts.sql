-- name: create_user
INSERT INTO users (name, is_admin) VALUES ($1, $2)
RETURNING id, name, is_admin;

-- name: get_user
SELECT id, name, is_admin FROM users WHERE name = $1;

-- name: create_token
INSERT INTO tokens (user_id, login, secret_hash, expires_on) VALUES ($1, $2, $3, $4)
RETURNING id;

-- name: token_by_login
SELECT t.secret_hash, t.expires_on, t.revoked, u.id, u.name, u.is_admin
FROM tokens t JOIN users u ON u.id = t.user_id
WHERE t.login = $1;

-- name: touch_token
UPDATE tokens SET last_used = now() WHERE login = $1;

-- name: add_event
INSERT INTO events (user_id, address, action, object, details) VALUES ($1, $2, $3, $4, $5);

-- name: list_events
SELECT e.id, e.at, u.name AS username, e.address, e.action, e.object, e.details
FROM events e LEFT JOIN users u ON u.id = e.user_id
WHERE ($1::text IS NULL OR e.object = $1 OR e.object LIKE $1 || '/%')
ORDER BY e.id DESC LIMIT $2;
