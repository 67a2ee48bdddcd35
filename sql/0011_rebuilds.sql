-- Automatic rebuilds of dependent packages (kopers.rebuilds).
--
-- A project with rebuild_dependents on rebuilds, after a build of package P
-- succeeds, the packages whose latest build BuildRequires something P's new
-- RPMs provide. Each such rebuild is a build of its own, chained in
-- dependency order; `rebuilds` says why it exists. Its generation goes into
-- the Release (the forced %dist gets `.<generation>` appended), so a rebuilt
-- package is newer than the build it replaces and dnf upgrades to it.

ALTER TABLE projects ADD COLUMN rebuild_dependents boolean NOT NULL DEFAULT false;

CREATE TABLE rebuilds (
    build_id          bigint PRIMARY KEY REFERENCES builds ON DELETE CASCADE,
    -- The build whose success started the chain (gone: NULL), and its package.
    trigger_build_id  bigint REFERENCES builds ON DELETE SET NULL,
    trigger_package   text NOT NULL,
    -- The build whose source package this rebuild builds again, and the build
    -- (not a rebuild) that source first came with: rebuilds of an older origin
    -- are older than a newer origin's builds, whatever their ids.
    source_build_id   bigint NOT NULL,
    origin_build_id   bigint NOT NULL,
    generation        integer NOT NULL CHECK (generation > 0),
    -- Every build of the chain, in order; this one among them.
    chain             bigint[] NOT NULL,
    -- Why: [{"package": "A", "chroot": "...", "provides": ["libA.so.2()(64bit)", ...]}, ...]
    because           jsonb NOT NULL,
    -- Dependency cycles the planner broke, each as [from, to]: logged with the chain.
    broken            jsonb NOT NULL DEFAULT '[]'
);
CREATE INDEX rebuilds_trigger ON rebuilds (trigger_build_id);
