-- A project's Copr options (copr-cli create/modify), its webhook secret, and
-- chroots switched off by modify. Options Kopers can hold only at their
-- default (multilib, appstream, mock's bootstrap and isolation, pulp storage,
-- ...) have no column: a request for another value is refused.

ALTER TABLE projects
    -- Neither the project nor its builds may be deleted, but by a server admin.
    ADD COLUMN persistent boolean NOT NULL DEFAULT false,
    -- Left off the home page; still reachable by its URL and the API.
    ADD COLUMN unlisted_on_hp boolean NOT NULL DEFAULT false,
    -- false: the retention (keep_builds) removes nothing from this project.
    ADD COLUMN auto_prune boolean NOT NULL DEFAULT true,
    -- Written into the .repo file: module_hotfixes=1, priority=N.
    ADD COLUMN module_hotfixes boolean NOT NULL DEFAULT false,
    ADD COLUMN repo_priority integer CHECK (repo_priority IS NULL OR repo_priority > 0),
    -- Repositories (http(s) URLs or copr://owner/project) enabled with this one.
    ADD COLUMN runtime_dependencies text[] NOT NULL DEFAULT '{}',
    -- Kept and shown as Copr does.
    ADD COLUMN follow_fedora_branching boolean NOT NULL DEFAULT true,
    ADD COLUMN packit_forge_projects_allowed text[] NOT NULL DEFAULT '{}',
    -- The secret a webhook URL of this project carries (a random UUID, version 4).
    ADD COLUMN webhook_secret uuid NOT NULL DEFAULT gen_random_uuid();

-- A chroot taken out by modify stops being offered; its row (and its
-- per-chroot repositories) stays, so adding it back restores them, and its
-- published results stay on disk.
ALTER TABLE project_chroots ADD COLUMN enabled boolean NOT NULL DEFAULT true;
