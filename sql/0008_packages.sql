-- Packages, as Copr has them: a project's named package with the source its
-- builds come from (a git repository, a PyPI or RubyGems name, a script, a
-- DistGit package, or the upload/URL of the build that made it), and what to
-- keep of its builds. Builds point at their package (package_id); a build
-- whose package name becomes known creates the package if it has none.
--
-- `source` is Copr's `source_dict` for `source_type` (kopers/package_sources.py);
-- 'unset' (after a reset) has '{}'. A fork copies rows with
-- INSERT ... SELECT over every column but id and project_id (copy_packages).

CREATE TABLE packages (
    id               bigserial PRIMARY KEY,
    project_id       bigint NOT NULL REFERENCES projects ON DELETE CASCADE,
    -- An RPM name, as kopers.publish.layout.validate_package takes it.
    name             text NOT NULL CHECK (
        name ~ '^[A-Za-z0-9_+][A-Za-z0-9_.+-]*$' AND length(name) <= 128
        AND position('..' IN name) = 0),
    source_type      text NOT NULL DEFAULT 'unset' CHECK (source_type IN
        ('unset', 'scm', 'pypi', 'rubygems', 'custom', 'distgit', 'upload', 'link')),
    source           jsonb NOT NULL DEFAULT '{}',
    -- Rebuild on a push to the repository (Copr's webhook_rebuild / auto_rebuild).
    webhook_rebuild  boolean NOT NULL DEFAULT false,
    -- Keep only the newest N builds of the package (NULL: all).
    max_builds       integer CHECK (max_builds IS NULL OR max_builds BETWEEN 1 AND 100),
    -- Timeout of its builds in seconds (NULL: the project's, then the server's).
    timeout          integer CHECK (timeout IS NULL OR timeout > 0),
    -- fnmatch patterns of chroots its builds leave out.
    chroot_denylist  text[] NOT NULL DEFAULT '{}',
    created_on       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, name)
);

ALTER TABLE builds ADD COLUMN package_id bigint REFERENCES packages ON DELETE SET NULL;
CREATE INDEX builds_package ON builds (package_id, id) WHERE package_id IS NOT NULL;

-- The packages of the builds made before this table: each name once per
-- project, with the source of its newest build.
INSERT INTO packages (project_id, name, source_type, source)
SELECT DISTINCT ON (project_id, package_name)
       project_id, package_name,
       CASE WHEN source_type IN ('scm', 'pypi', 'rubygems', 'custom', 'distgit', 'upload', 'link')
            THEN source_type ELSE 'unset' END,
       CASE WHEN source_type IN ('scm', 'pypi', 'rubygems', 'custom', 'distgit', 'upload', 'link')
            THEN source ELSE '{}' END
FROM builds
WHERE package_name ~ '^[A-Za-z0-9_+][A-Za-z0-9_.+-]*$' AND length(package_name) <= 128
  AND position('..' IN package_name) = 0
ORDER BY project_id, package_name, id DESC;

UPDATE builds b SET package_id = p.id
FROM packages p
WHERE p.project_id = b.project_id AND p.name = b.package_name;
