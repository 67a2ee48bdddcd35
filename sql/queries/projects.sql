-- name: create_project
INSERT INTO projects (owner, name, description, instructions, homepage, contact,
                      additional_repos, enable_net, created_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING id;

-- name: add_project_chroot
INSERT INTO project_chroots (project_id, chroot) VALUES ($1, $2) ON CONFLICT DO NOTHING;

-- name: get_project
SELECT p.*, COALESCE(array_agg(c.chroot ORDER BY c.chroot) FILTER (WHERE c.chroot IS NOT NULL),
                     '{}') AS chroots
FROM projects p LEFT JOIN project_chroots c ON c.project_id = p.id
WHERE p.owner = $1 AND p.name = $2
GROUP BY p.id;

-- name: get_project_by_id
SELECT p.*, COALESCE(array_agg(c.chroot ORDER BY c.chroot) FILTER (WHERE c.chroot IS NOT NULL),
                     '{}') AS chroots
FROM projects p LEFT JOIN project_chroots c ON c.project_id = p.id
WHERE p.id = $1
GROUP BY p.id;

-- name: list_projects
SELECT p.*, COALESCE(array_agg(c.chroot ORDER BY c.chroot) FILTER (WHERE c.chroot IS NOT NULL),
                     '{}') AS chroots
FROM projects p LEFT JOIN project_chroots c ON c.project_id = p.id
WHERE ($1::text IS NULL OR p.owner = $1)
  AND ($2::text IS NULL OR p.name ILIKE '%' || $2 || '%' OR p.description ILIKE '%' || $2 || '%')
GROUP BY p.id
ORDER BY p.id
LIMIT $3 OFFSET $4;

-- name: delete_builds_of_project
DELETE FROM builds WHERE project_id = $1 RETURNING id;

-- name: delete_project
DELETE FROM projects WHERE id = $1;

-- name: chroot_repos
SELECT additional_repos FROM project_chroots WHERE project_id = $1 AND chroot = $2;

-- name: set_chroot_repos
UPDATE project_chroots SET additional_repos = $3 WHERE project_id = $1 AND chroot = $2;

-- name: set_project_storage
UPDATE projects SET keep_builds = $2, quota_mib = $3, delete_after = $4 WHERE id = $1;

-- name: set_project_timeout
UPDATE projects SET build_timeout = $2 WHERE id = $1;

-- name: expired_projects
SELECT id FROM projects WHERE delete_after IS NOT NULL AND delete_after <= now() ORDER BY id;
