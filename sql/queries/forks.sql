-- Forks (kopers/fork.py): a project copied with its settings, and its builds'
-- results copied by the fork copier.
--
-- A copied build's tasks are `forked` while their results are being copied,
-- and only then `succeeded` (or `failed`), together with the packages they
-- hold: a fork never claims results it does not have. These statements are
-- the only ones that leave `forked`; the table in kopers/db/transitions.py
-- covers the builds Kopers runs itself, which never enter it.

-- name: copied_columns
-- The columns of `table` a copy carries over (see kopers/db/forks.py).
SELECT column_name FROM information_schema.columns
WHERE table_schema = current_schema() AND table_name = $1
  AND is_generated = 'NEVER' AND is_identity = 'NO'
ORDER BY ordinal_position;

-- name: fork_project
-- {columns} is the list of copied columns, each quoted as an identifier.
INSERT INTO projects (owner, name, created_by, {columns})
SELECT $2, $3, $4, {columns} FROM projects WHERE id = $1
RETURNING id;

-- name: fork_project_chroots
INSERT INTO project_chroots (project_id, {columns})
SELECT $2, {columns} FROM project_chroots WHERE project_id = $1;

-- name: pending_fork_copies
SELECT t.build_id, t.chroot, b.package_name, b.source, b.project_id,
       p.owner, p.name AS project
FROM build_tasks t JOIN builds b ON b.id = t.build_id JOIN projects p ON p.id = b.project_id
WHERE t.state = 'forked' AND b.source_state = 'forked'
ORDER BY t.build_id, t.chroot;

-- name: fork_copy_pending
SELECT 1 FROM build_tasks t JOIN builds b ON b.id = t.build_id
WHERE t.build_id = $1 AND t.chroot = $2 AND t.state = 'forked' AND b.source_state = 'forked';

-- name: finish_fork_copy
UPDATE build_tasks SET state = 'succeeded', result_dir = $3,
                       started_on = COALESCE(started_on, now()), ended_on = now()
WHERE build_id = $1 AND chroot = $2 AND state = 'forked'
RETURNING build_id;

-- name: fail_fork_copy
UPDATE build_tasks SET state = 'failed', reason = $3,
                       started_on = COALESCE(started_on, now()), ended_on = now()
WHERE build_id = $1 AND chroot = $2 AND state = 'forked'
RETURNING build_id;

-- name: copy_built_packages
INSERT INTO built_packages (build_id, chroot, name, epoch, version, release, arch)
SELECT $1, chroot, name, epoch, version, release, arch FROM built_packages
WHERE build_id = $3 AND chroot = $2;

-- name: copy_buildroot_packages
INSERT INTO buildroot_packages (build_id, chroot, nevra)
SELECT $1, chroot, nevra FROM buildroot_packages WHERE build_id = $3 AND chroot = $2;

-- name: lock_fork_build
SELECT id FROM builds WHERE id = $1 FOR NO KEY UPDATE;

-- name: end_fork_build_if_done
-- `forked` is no end here: the copy is still under way.
UPDATE builds SET started_on = COALESCE(started_on, now()),
                  ended_on = CASE WHEN NOT EXISTS (
                      SELECT 1 FROM build_tasks t WHERE t.build_id = $1
                        AND t.state NOT IN ('succeeded', 'failed', 'canceled', 'skipped'))
                      THEN now() END
WHERE id = $1 AND ended_on IS NULL;
