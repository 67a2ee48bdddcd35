-- Every step a task's run went through, with its duration: a JSON list of
-- {"name", "seconds", "source" ("kopers" or "builder"), "offset"} in the
-- order the steps began (kopers/worker/steps.py).

ALTER TABLE build_tasks ADD COLUMN steps jsonb NOT NULL DEFAULT '[]';
