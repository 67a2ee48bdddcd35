-- name: create_project
INSERT INTO projects (owner, name, description, instructions, homepage, contact,
                      additional_repos, enable_net, created_by,
                      persistent, unlisted_on_hp, auto_prune, module_hotfixes, repo_priority,
                      runtime_dependencies, follow_fedora_branching,
                      packit_forge_projects_allowed, webhook_secret)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,
        $10, $11, $12, $13, $14, $15, $16, $17, COALESCE($18::uuid, gen_random_uuid()))
RETURNING id;

-- name: add_project_chroot
-- Adding a chroot that was taken out brings it (and its repositories) back.
INSERT INTO project_chroots (project_id, chroot) VALUES ($1, $2)
ON CONFLICT (project_id, chroot) DO UPDATE SET enabled = true;

-- name: disable_project_chroots
-- Chroots not in $2 stop being offered; their rows and results stay.
UPDATE project_chroots SET enabled = false
WHERE project_id = $1 AND enabled AND NOT (chroot = ANY($2::text[]));

-- name: update_project
UPDATE projects SET description = $2, instructions = $3, homepage = $4, contact = $5,
                    additional_repos = $6, enable_net = $7, delete_after = $8,
                    persistent = $9, unlisted_on_hp = $10, auto_prune = $11,
                    module_hotfixes = $12, repo_priority = $13, runtime_dependencies = $14,
                    follow_fedora_branching = $15, packit_forge_projects_allowed = $16
WHERE id = $1;

-- name: set_project_webhook_secret
UPDATE projects SET webhook_secret = $2::uuid WHERE id = $1;

-- name: get_project
SELECT p.*, COALESCE(array_agg(c.chroot ORDER BY c.chroot) FILTER (WHERE c.enabled),
                     '{}') AS chroots
FROM projects p LEFT JOIN project_chroots c ON c.project_id = p.id
WHERE p.owner = $1 AND p.name = $2
GROUP BY p.id;

-- name: get_project_by_id
SELECT p.*, COALESCE(array_agg(c.chroot ORDER BY c.chroot) FILTER (WHERE c.enabled),
                     '{}') AS chroots
FROM projects p LEFT JOIN project_chroots c ON c.project_id = p.id
WHERE p.id = $1
GROUP BY p.id;

-- name: list_projects
SELECT p.*, COALESCE(array_agg(c.chroot ORDER BY c.chroot) FILTER (WHERE c.enabled),
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
SELECT additional_repos FROM project_chroots WHERE project_id = $1 AND chroot = $2 AND enabled;

-- name: set_chroot_repos
UPDATE project_chroots SET additional_repos = $3
WHERE project_id = $1 AND chroot = $2 AND enabled;

-- name: set_project_storage
UPDATE projects SET keep_builds = $2, quota_mib = $3, delete_after = $4 WHERE id = $1;

-- name: set_project_timeout
UPDATE projects SET build_timeout = $2 WHERE id = $1;

-- name: expired_projects
SELECT id FROM projects
WHERE delete_after IS NOT NULL AND delete_after <= now() AND NOT persistent
ORDER BY id;
