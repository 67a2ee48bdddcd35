-- Automatic rebuilds (sql/0011_rebuilds.sql).

-- name: set_rebuild_dependents
UPDATE projects SET rebuild_dependents = $2 WHERE id = $1;

-- name: add_rebuild
INSERT INTO rebuilds (build_id, trigger_build_id, trigger_package, source_build_id,
                      origin_build_id, generation, chain, because, broken)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9);

-- name: set_rebuild_chain
UPDATE rebuilds SET chain = $2 WHERE build_id = ANY($1::bigint[]);

-- name: get_rebuild
SELECT * FROM rebuilds WHERE build_id = $1;

-- name: queued_rebuilds
-- Automatic builds of a project that have not ended: the storm cap counts them.
SELECT count(DISTINCT r.build_id)
FROM rebuilds r
JOIN builds b ON b.id = r.build_id
JOIN build_tasks t ON t.build_id = b.id
WHERE b.project_id = $1
  AND t.state NOT IN ('succeeded', 'failed', 'canceled', 'skipped', 'forked');

-- name: latest_package_builds
-- Per package and chroot of the project, the newest build that succeeded there:
-- newest by origin (the build a source first came with), then by generation,
-- so a rebuild of an older version never hides a newer version built later.
SELECT DISTINCT ON (b.package_name, t.chroot)
       b.id, b.package_name, b.srpm_name, t.chroot,
       COALESCE(r.origin_build_id, b.id) AS origin,
       COALESCE(r.generation, 0) AS generation
FROM builds b
JOIN build_tasks t ON t.build_id = b.id
LEFT JOIN rebuilds r ON r.build_id = b.id
WHERE b.project_id = $1 AND b.package_name IS NOT NULL
  AND t.state IN ('succeeded', 'forked')
ORDER BY b.package_name, t.chroot, COALESCE(r.origin_build_id, b.id) DESC,
         COALESCE(r.generation, 0) DESC, b.id DESC;
