-- name: batch_of
SELECT batch_id FROM builds WHERE id = $1;

-- name: new_batch
INSERT INTO batches (after_batch_id) VALUES ($1) RETURNING id;

-- name: set_batch
UPDATE builds SET batch_id = $2 WHERE id = $1;

-- name: batch_after
SELECT after_batch_id FROM batches WHERE id = $1;

-- name: tasks_of_batch_on_chroot
SELECT t.build_id, t.chroot, t.state FROM build_tasks t JOIN builds b ON b.id = t.build_id
WHERE b.batch_id = $1 AND t.chroot = $2 AND t.build_id <> $3;

-- name: task_of_build_on_chroot
SELECT build_id, chroot, state FROM build_tasks WHERE build_id = $1 AND chroot = $2;

-- name: add_task_dep
INSERT INTO task_deps (build_id, chroot, dep_build_id, dep_chroot) VALUES ($1, $2, $3, $4)
ON CONFLICT DO NOTHING;

-- name: unfinished_deps
SELECT d.build_id, d.chroot, d.dep_build_id, d.dep_chroot, t.state AS dep_state
FROM task_deps d
JOIN build_tasks me ON me.build_id = d.build_id AND me.chroot = d.chroot
LEFT JOIN build_tasks t ON t.build_id = d.dep_build_id AND t.chroot = d.dep_chroot
WHERE me.state NOT IN ('succeeded', 'failed', 'canceled', 'skipped', 'forked');

-- name: deps_of_build
SELECT d.build_id, d.chroot, d.dep_build_id, d.dep_chroot, t.state AS dep_state
FROM task_deps d
LEFT JOIN build_tasks t ON t.build_id = d.dep_build_id AND t.chroot = d.dep_chroot
WHERE d.build_id = $1;
