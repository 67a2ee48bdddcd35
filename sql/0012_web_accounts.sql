-- Accounts in the browser (kopers.api.websession, kopers.api.signin): local
-- passwords, server-side sessions, and the sign-in attempts throttling counts
-- (kopers.loginpolicy).

-- An argon2id hash (a PHC string, kopers.passwords). NULL: the user cannot sign
-- in on the web; API tokens work either way. Set with `kopers user passwd`.
ALTER TABLE users ADD COLUMN password_hash text;

-- One row per signed-in browser. The cookie holds 256 random bits; only their
-- SHA-256 digest is the id, so reading this table signs no one in. The CSRF
-- secret never leaves the server: forms carry an HMAC of it.
CREATE TABLE web_sessions (
    id           text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{64}$'),
    user_id      bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    csrf_secret  bytea NOT NULL CHECK (length(csrf_secret) = 32),
    created_on   timestamptz NOT NULL,
    last_seen    timestamptz NOT NULL,
    expires_on   timestamptz NOT NULL,  -- the absolute end, however busy the session
    address      text
);
CREATE INDEX web_sessions_user ON web_sessions (user_id);
CREATE INDEX web_sessions_expires ON web_sessions (expires_on);
CREATE INDEX web_sessions_last_seen ON web_sessions (last_seen);

-- Every sign-in attempt that was let through to the password check. An attempt
-- is recorded as failed before the check and marked succeeded after it, so
-- attempts made at once all count. `username` is what was typed: names that
-- exist nowhere are throttled like any other. Rows older than the window go.
CREATE TABLE login_attempts (
    id         bigserial PRIMARY KEY,
    at         timestamptz NOT NULL,
    username   text NOT NULL,
    address    text NOT NULL,
    succeeded  boolean NOT NULL DEFAULT false
);
CREATE INDEX login_attempts_username ON login_attempts (username, at);
CREATE INDEX login_attempts_address ON login_attempts (address, at);
