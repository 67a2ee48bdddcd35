-- Accounts for teams: groups (SIGs) and their members, Copr's per-project
-- roles, token revocation times, and an audit trail the database itself
-- keeps append-only.

-- A group owns projects as `@name`. Names follow the user-name rule, so
-- `@` can only ever mean "group" in an owner.
CREATE TABLE groups (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9_.-]+$'),
    created_on  timestamptz NOT NULL DEFAULT now()
);

-- Members may create projects owned by the group and build in them; members
-- with is_admin may also change and delete those projects and their roles.
CREATE TABLE group_members (
    group_id   bigint NOT NULL REFERENCES groups ON DELETE CASCADE,
    user_id    bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    is_admin   boolean NOT NULL DEFAULT false,
    added_on   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members (user_id);

-- Copr's roles: per project and user, `builder` and `admin`, each one of
-- nothing / request / approved. Only `approved` grants anything.
CREATE TABLE project_permissions (
    project_id  bigint NOT NULL REFERENCES projects ON DELETE CASCADE,
    user_id     bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    builder     text NOT NULL DEFAULT 'nothing'
                CHECK (builder IN ('nothing', 'request', 'approved')),
    admin       text NOT NULL DEFAULT 'nothing'
                CHECK (admin IN ('nothing', 'request', 'approved')),
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX project_permissions_user ON project_permissions (user_id);

-- When a token was revoked (the `revoked` flag stays the one that is checked).
ALTER TABLE tokens ADD COLUMN revoked_on timestamptz;
CREATE INDEX tokens_user ON tokens (user_id);

-- The audit trail is append-only, enforced here and not only by the code:
-- no UPDATE, DELETE or TRUNCATE gets through, whoever asks.
CREATE FUNCTION events_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the events table is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_refuse_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();

-- ON DELETE SET NULL would be an UPDATE of the log; the trigger would refuse
-- it anyway, so say so plainly: a user who appears in the log stays.
ALTER TABLE events DROP CONSTRAINT events_user_id_fkey,
    ADD CONSTRAINT events_user_id_fkey FOREIGN KEY (user_id) REFERENCES users;
CREATE INDEX events_user ON events (user_id, id);
