-- Chains and batches: which tasks wait for which.
--
-- task_deps is the general mechanism: task (build_id, chroot) may start only
-- when every (dep_build_id, dep_chroot) has succeeded. Dependencies are per
-- chroot: on chroot X a build waits only for the other build's task on X.
-- Copr's batches (--after-build-id, --with-build-id) are expressed with it:
-- a build in a batch depends on every task of the batch it runs after.

CREATE TABLE batches (
    id              bigserial PRIMARY KEY,
    after_batch_id  bigint REFERENCES batches ON DELETE SET NULL
);

ALTER TABLE builds
    ADD COLUMN batch_id bigint REFERENCES batches ON DELETE SET NULL,
    ADD COLUMN priority integer NOT NULL DEFAULT 0,
    ADD COLUMN is_background boolean NOT NULL DEFAULT false;

-- No foreign key on the dependency side: a dependency whose build was
-- deleted no longer holds anything back.
CREATE TABLE task_deps (
    build_id      bigint NOT NULL,
    chroot        text NOT NULL,
    dep_build_id  bigint NOT NULL,
    dep_chroot    text NOT NULL,
    PRIMARY KEY (build_id, chroot, dep_build_id, dep_chroot),
    FOREIGN KEY (build_id, chroot) REFERENCES build_tasks ON DELETE CASCADE
);
CREATE INDEX task_deps_dep ON task_deps (dep_build_id, dep_chroot);

-- Repositories a chroot's builds may install from, beyond the project's own
-- and the project-wide ones (copr-cli edit-chroot --repos).
ALTER TABLE project_chroots ADD COLUMN additional_repos text[] NOT NULL DEFAULT '{}';
