-- Every statement that changes a state names the states it may start from
-- (the last parameter, from kopers/db/transitions.py) and returns a row only
-- when it applied.

-- name: create_build
INSERT INTO builds (project_id, submitter_id, source_type, source, package_name,
                    package_version, srpm_name, source_state, timeout)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING id;

-- name: add_task
INSERT INTO build_tasks (build_id, chroot, state) VALUES ($1, $2, $3);

-- name: get_build
SELECT b.*, p.owner, p.name AS project, u.name AS submitter
FROM builds b JOIN projects p ON p.id = b.project_id JOIN users u ON u.id = b.submitter_id
WHERE b.id = $1;

-- name: list_builds
SELECT b.*, p.owner, p.name AS project, u.name AS submitter
FROM builds b JOIN projects p ON p.id = b.project_id JOIN users u ON u.id = b.submitter_id
WHERE b.project_id = $1 AND ($2::text IS NULL OR b.package_name = $2)
ORDER BY b.id DESC
LIMIT $3 OFFSET $4;

-- name: tasks_of_builds
SELECT * FROM build_tasks WHERE build_id = ANY($1::bigint[]) ORDER BY build_id, chroot;

-- name: set_source
UPDATE builds SET package_name = $2, package_version = $3, srpm_name = $4, source_state = $5
WHERE id = $1 AND source_state = ANY($6::text[])
RETURNING id;

-- name: set_source_state
UPDATE builds SET source_state = $2 WHERE id = $1 AND source_state = ANY($3::text[])
RETURNING id;

-- name: start_task
UPDATE build_tasks SET state = $3, started_on = COALESCE(started_on, now()),
                       attempts = attempts + 1, reason = NULL
WHERE build_id = $1 AND chroot = $2 AND state = ANY($4::text[])
RETURNING build_id;

-- name: task_state
SELECT state FROM build_tasks WHERE build_id = $1 AND chroot = $2;

-- name: mark_build_started
UPDATE builds SET started_on = COALESCE(started_on, now()) WHERE id = $1;

-- name: set_task_state
UPDATE build_tasks SET state = $3
WHERE build_id = $1 AND chroot = $2 AND state = ANY($4::text[])
RETURNING build_id;

-- name: finish_task
UPDATE build_tasks SET state = $3, ended_on = now(), reason = $4, result_dir = $5,
                       steps = $7::jsonb
WHERE build_id = $1 AND chroot = $2 AND state = ANY($6::text[])
RETURNING build_id;

-- name: add_task_steps
-- Steps timed after the task ended (its VM's release): appended, nothing else.
UPDATE build_tasks SET steps = steps || $3::jsonb
WHERE build_id = $1 AND chroot = $2;

-- name: lock_build
-- Taken before finish_build_if_done, whose check must see every task that
-- ended in a transaction committed meanwhile: two tasks ending at once would
-- otherwise each see the other unfinished, and the build would never end.
SELECT id FROM builds WHERE id = $1 FOR NO KEY UPDATE;

-- name: finish_build_if_done
UPDATE builds SET ended_on = now()
WHERE id = $1 AND ended_on IS NULL AND NOT EXISTS (
    SELECT 1 FROM build_tasks t WHERE t.build_id = $1
      AND t.state NOT IN ('succeeded', 'failed', 'canceled', 'skipped', 'forked'));

-- name: lock_tasks
-- Taken before canceling, in one order, so two cancels of a build cannot
-- deadlock. Every transaction that changes a task locks its task row before
-- the build row, so that order holds against them too.
SELECT chroot FROM build_tasks WHERE build_id = $1 ORDER BY chroot FOR UPDATE;

-- name: cancel_unfinished_tasks
UPDATE build_tasks SET state = 'canceled', ended_on = now(), reason = 'canceled by the user'
WHERE build_id = $1 AND state = ANY($2::text[])
RETURNING chroot;

-- name: cancel_build
-- A source step that has not ended is canceled with the build.
UPDATE builds SET canceled = true,
    source_state = CASE WHEN source_state = ANY($2::text[]) THEN 'canceled' ELSE source_state END
WHERE id = $1;

-- name: delete_builds
DELETE FROM builds WHERE id = ANY($1::bigint[]) RETURNING id;

-- name: add_built_package
INSERT INTO built_packages (build_id, chroot, name, epoch, version, release, arch)
VALUES ($1, $2, $3, $4, $5, $6, $7);

-- name: add_buildroot_package
INSERT INTO buildroot_packages (build_id, chroot, nevra) VALUES ($1, $2, $3);

-- name: clear_task_results
DELETE FROM built_packages WHERE build_id = $1 AND chroot = $2;

-- name: clear_task_manifest
DELETE FROM buildroot_packages WHERE build_id = $1 AND chroot = $2;

-- name: built_packages
SELECT chroot, name, epoch, version, release, arch FROM built_packages
WHERE build_id = $1 ORDER BY chroot, name, arch;

-- name: buildroot_packages
SELECT chroot, nevra FROM buildroot_packages WHERE build_id = $1 ORDER BY chroot, nevra;

-- name: unfinished_graph
SELECT t.build_id, t.chroot, t.state, p.owner, b.source_state, b.source_type, b.priority
FROM build_tasks t JOIN builds b ON b.id = t.build_id JOIN projects p ON p.id = b.project_id
WHERE t.state NOT IN ('succeeded', 'failed', 'canceled', 'skipped', 'forked')
ORDER BY t.build_id, t.chroot;

-- name: skip_orphan_sources
-- Source steps that have not begun while every task of their build has ended
-- (skipped behind a failed dependency): nothing would use what they make.
UPDATE builds b SET source_state = 'skipped'
WHERE b.source_state = 'pending'
  AND EXISTS (SELECT 1 FROM build_tasks t WHERE t.build_id = b.id)
  AND NOT EXISTS (SELECT 1 FROM build_tasks t WHERE t.build_id = b.id
                  AND t.state NOT IN ('succeeded', 'failed', 'canceled', 'skipped', 'forked'))
RETURNING b.id;

-- name: skip_task
UPDATE build_tasks SET state = 'skipped', ended_on = now(), reason = $3
WHERE build_id = $1 AND chroot = $2 AND state = ANY($4::text[])
RETURNING build_id;

-- name: set_build_priority
UPDATE builds SET priority = $2, is_background = $3 WHERE id = $1;

-- name: existing_builds
SELECT id FROM builds WHERE id = ANY($1::bigint[]);

-- name: sources_of_project
SELECT id, source_state FROM builds WHERE project_id = $1 ORDER BY id;
