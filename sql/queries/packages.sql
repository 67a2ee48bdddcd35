-- Packages (sql/0008_packages.sql) and the link from builds to them.

-- name: create_package
INSERT INTO packages (project_id, name, source_type, source, webhook_rebuild, max_builds,
                      timeout, chroot_denylist)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (project_id, name) DO NOTHING
RETURNING id;

-- name: get_package
SELECT pk.*, p.owner, p.name AS project
FROM packages pk JOIN projects p ON p.id = pk.project_id
WHERE pk.project_id = $1 AND pk.name = $2;

-- name: get_package_by_id
SELECT pk.*, p.owner, p.name AS project
FROM packages pk JOIN projects p ON p.id = pk.project_id
WHERE pk.id = $1;

-- name: list_packages
SELECT pk.*, p.owner, p.name AS project
FROM packages pk JOIN projects p ON p.id = pk.project_id
WHERE pk.project_id = $1
ORDER BY pk.name
LIMIT $2 OFFSET $3;

-- name: update_package
UPDATE packages SET source_type = $2, source = $3, webhook_rebuild = $4, max_builds = $5,
                    timeout = $6, chroot_denylist = $7
WHERE id = $1
RETURNING id;

-- name: delete_package
DELETE FROM packages WHERE id = $1 RETURNING id;

-- name: link_build_package
-- A build whose package name is known and that has no package yet gets the
-- project's package of that name, made from the build's own source if there
-- is none. An existing package keeps its definition. A name no package may
-- have (see the table's CHECK) links nothing.
WITH b AS (
    SELECT id, project_id, package_name, source_type, source FROM builds
    WHERE id = $1 AND package_id IS NULL AND package_name IS NOT NULL
      AND package_name ~ '^[A-Za-z0-9_+][A-Za-z0-9_.+-]*$' AND length(package_name) <= 128
      AND position('..' IN package_name) = 0
), made AS (
    INSERT INTO packages (project_id, name, source_type, source)
    SELECT project_id, package_name,
           -- An uploaded spec or binary RPM is an upload in Copr's words.
           CASE WHEN source_type IN ('scm', 'pypi', 'rubygems', 'custom', 'distgit', 'upload',
                                     'link') THEN source_type
                WHEN source_type IN ('spec_upload', 'rpm_upload') THEN 'upload'
                ELSE 'unset' END,
           CASE WHEN source_type IN ('scm', 'pypi', 'rubygems', 'custom', 'distgit', 'upload',
                                     'link') THEN source ELSE '{}' END
    FROM b
    ON CONFLICT (project_id, name) DO NOTHING
    RETURNING id
)
UPDATE builds SET package_id = COALESCE(
    (SELECT id FROM made),
    (SELECT pk.id FROM packages pk JOIN b ON pk.project_id = b.project_id
     AND pk.name = b.package_name))
WHERE id = (SELECT id FROM b);

-- name: attach_build
UPDATE builds SET package_id = $2 WHERE id = $1;

-- name: package_builds_of_project
-- (build id, package id) of a project's builds that have a package, newest first.
SELECT id, package_id FROM builds
WHERE project_id = $1 AND package_id IS NOT NULL
ORDER BY id DESC;

-- name: builds_of_package
SELECT b.*, p.owner, p.name AS project, u.name AS submitter
FROM builds b JOIN projects p ON p.id = b.project_id JOIN users u ON u.id = b.submitter_id
WHERE b.package_id = $1
ORDER BY b.id DESC;

-- name: copy_packages
-- A fork's packages: every package of the source project, builds left behind.
INSERT INTO packages (project_id, name, source_type, source, webhook_rebuild, max_builds,
                      timeout, chroot_denylist)
SELECT $2, name, source_type, source, webhook_rebuild, max_builds, timeout, chroot_denylist
FROM packages WHERE project_id = $1
ON CONFLICT (project_id, name) DO NOTHING
RETURNING id;

-- name: package_of_build
SELECT package_id FROM builds WHERE id = $1;
