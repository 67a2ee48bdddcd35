-- Kopers schema, first version. Postgres is the truth: the scheduler's
-- in-memory graph, the repositories and the pages are all rebuilt from it.

CREATE TABLE users (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9_.-]+$'),
    is_admin    boolean NOT NULL DEFAULT false,
    created_on  timestamptz NOT NULL DEFAULT now()
);

-- API tokens. `login` is the public half (HTTP Basic user), the secret is
-- stored only as a SHA-256 digest: it is 256 random bits, so a slow hash
-- would add nothing but latency on every authenticated call.
CREATE TABLE tokens (
    id           bigserial PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    login        text NOT NULL UNIQUE,
    secret_hash  text NOT NULL,
    created_on   timestamptz NOT NULL DEFAULT now(),
    expires_on   timestamptz,
    last_used    timestamptz,
    revoked      boolean NOT NULL DEFAULT false
);

CREATE TABLE projects (
    id               bigserial PRIMARY KEY,
    owner            text NOT NULL,
    name             text NOT NULL CHECK (name ~ '^[A-Za-z0-9_.+-]+$'),
    description      text NOT NULL DEFAULT '',
    instructions     text NOT NULL DEFAULT '',
    homepage         text,
    contact          text,
    additional_repos text[] NOT NULL DEFAULT '{}',
    enable_net       boolean NOT NULL DEFAULT false,
    created_by       bigint NOT NULL REFERENCES users,
    created_on       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (owner, name)
);

CREATE TABLE project_chroots (
    project_id  bigint NOT NULL REFERENCES projects ON DELETE CASCADE,
    chroot      text NOT NULL,
    PRIMARY KEY (project_id, chroot)
);

CREATE TABLE builds (
    id               bigserial PRIMARY KEY,
    project_id       bigint NOT NULL REFERENCES projects ON DELETE CASCADE,
    submitter_id     bigint NOT NULL REFERENCES users,
    source_type      text NOT NULL,
    source           jsonb NOT NULL DEFAULT '{}',
    package_name     text,
    package_version  text,
    srpm_name        text,
    source_state     text NOT NULL,
    canceled         boolean NOT NULL DEFAULT false,
    timeout          integer NOT NULL,
    submitted_on     timestamptz NOT NULL DEFAULT now(),
    started_on       timestamptz,
    ended_on         timestamptz
);
CREATE INDEX builds_project ON builds (project_id, id);

-- One row per chroot of a build: the unit the scheduler runs in one VM.
CREATE TABLE build_tasks (
    build_id    bigint NOT NULL REFERENCES builds ON DELETE CASCADE,
    chroot      text NOT NULL,
    state       text NOT NULL,
    started_on  timestamptz,
    ended_on    timestamptz,
    result_dir  text,
    reason      text,
    attempts    integer NOT NULL DEFAULT 0,
    PRIMARY KEY (build_id, chroot)
);
CREATE INDEX build_tasks_unfinished ON build_tasks (state)
    WHERE state NOT IN ('succeeded', 'failed', 'canceled', 'skipped', 'forked');

CREATE TABLE built_packages (
    build_id  bigint NOT NULL,
    chroot    text NOT NULL,
    name      text NOT NULL,
    epoch     integer NOT NULL DEFAULT 0,
    version   text NOT NULL,
    release   text NOT NULL,
    arch      text NOT NULL,
    FOREIGN KEY (build_id, chroot) REFERENCES build_tasks ON DELETE CASCADE
);
CREATE INDEX built_packages_build ON built_packages (build_id);

-- The buildroot manifest: exactly which packages each task was built against.
CREATE TABLE buildroot_packages (
    build_id  bigint NOT NULL,
    chroot    text NOT NULL,
    nevra     text NOT NULL,
    FOREIGN KEY (build_id, chroot) REFERENCES build_tasks ON DELETE CASCADE
);
CREATE INDEX buildroot_packages_task ON buildroot_packages (build_id, chroot);

-- Append-only record of who did what.
CREATE TABLE events (
    id        bigserial PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    user_id   bigint REFERENCES users ON DELETE SET NULL,
    address   text,
    action    text NOT NULL,
    object    text NOT NULL,
    details   jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX events_object ON events (object);
