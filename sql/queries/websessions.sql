-- name: set_password
-- A new password (or none) signs the user out everywhere.
WITH ended AS (DELETE FROM web_sessions WHERE user_id = $1)
UPDATE users SET password_hash = $2 WHERE id = $1;

-- name: password_of
SELECT id, name, is_admin, password_hash FROM users WHERE name = $1;

-- name: create_web_session
INSERT INTO web_sessions (id, user_id, csrf_secret, created_on, last_seen, expires_on, address)
VALUES ($1, $2, $3, $4, $4, $5, $6);

-- name: web_session
SELECT s.id, s.csrf_secret, s.created_on, s.last_seen, s.expires_on,
       u.id AS user_id, u.name, u.is_admin
FROM web_sessions s JOIN users u ON u.id = s.user_id
WHERE s.id = $1;

-- name: touch_web_session
UPDATE web_sessions SET last_seen = $2 WHERE id = $1 AND last_seen < $2;

-- name: delete_web_session
DELETE FROM web_sessions WHERE id = $1
RETURNING user_id;

-- name: purge_web_sessions
-- $1: now; $2: now less the idle limit.
DELETE FROM web_sessions WHERE expires_on <= $1 OR last_seen <= $2;

-- name: lock_login_attempts
-- Counting and recording an attempt, one at a time ('kope', migration 12): two
-- guesses sent at once must not both see the count from before the other.
SELECT pg_advisory_xact_lock(1802465381, 12);

-- name: login_failures
-- The newest failures that count, newest first: of the name $1 since its last
-- success, and of the address $2; both since $3. $4, $5: how many of each.
SELECT
    ARRAY(SELECT at FROM login_attempts
          WHERE username = $1 AND NOT succeeded AND at > $3
            AND at > coalesce((SELECT max(at) FROM login_attempts
                               WHERE username = $1 AND succeeded AND at > $3), '-infinity')
          ORDER BY at DESC LIMIT $4) AS account,
    ARRAY(SELECT at FROM login_attempts
          WHERE address = $2 AND NOT succeeded AND at > $3
          ORDER BY at DESC LIMIT $5) AS address;

-- name: add_login_attempt
INSERT INTO login_attempts (at, username, address) VALUES ($1, $2, $3)
RETURNING id;

-- name: login_succeeded
UPDATE login_attempts SET succeeded = true WHERE id = $1;

-- name: purge_login_attempts
DELETE FROM login_attempts WHERE at <= $1;
