-- Retention, temporary projects and storage quotas.

ALTER TABLE projects
    -- Keep only the newest N builds of each package in each chroot (NULL: keep all).
    ADD COLUMN keep_builds integer CHECK (keep_builds IS NULL OR keep_builds > 0),
    -- Refuse new builds while the project's results take more than this (NULL: no quota).
    ADD COLUMN quota_mib integer CHECK (quota_mib IS NULL OR quota_mib > 0),
    -- A temporary project (copr-cli create --delete-after-days) is deleted after this time.
    ADD COLUMN delete_after timestamptz,
    -- Default build timeout in seconds for this project (NULL: the server's).
    ADD COLUMN build_timeout integer CHECK (build_timeout IS NULL OR build_timeout > 0);

CREATE INDEX projects_delete_after ON projects (delete_after) WHERE delete_after IS NOT NULL;
