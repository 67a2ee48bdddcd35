-- Events out: every state change of a build is a notification, written in the
-- transaction that makes the change, with one delivery per outgoing webhook of
-- the project (the outbox that kopers/hooksender.py empties). The same rows
-- feed the live stream (/api/events/stream).
--
-- Triggers make the rows, so no code path can change a state without its
-- event. They are deferred to the commit and take one lock there, so that a
-- notification's id follows the order in which the transactions commit:
-- whatever a reader sees is a prefix of the ids (gaps are rolled back ids),
-- and a reader that goes on after the last id it saw misses nothing. The
-- build's overall state is worked out at the same point, from what is then
-- committed, so two tasks ending at once announce the build's end once.
--
-- Fork copies (source state `forked`) announce nothing: their builds happened,
-- and were announced, in the project they were copied from.

CREATE TABLE notifications (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    project_id  bigint NOT NULL REFERENCES projects ON DELETE CASCADE,
    kind        text NOT NULL
                CHECK (kind IN ('task.state', 'source.state', 'build.state', 'build.published')),
    -- No foreign key: a deleted build's last events are still owed to the receivers.
    build_id    bigint NOT NULL,
    chroot      text,
    state       text NOT NULL,
    previous    text,
    payload     jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX notifications_project ON notifications (project_id, id);
CREATE INDEX notifications_build_state ON notifications (build_id, id) WHERE kind = 'build.state';
CREATE INDEX notifications_at ON notifications (at);

-- A project's outgoing webhooks. The secret signs each body (HMAC-SHA256).
CREATE TABLE hooks (
    id          bigserial PRIMARY KEY,
    project_id  bigint NOT NULL REFERENCES projects ON DELETE CASCADE,
    url         text NOT NULL CHECK (length(url) <= 2000),
    secret      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  bigint REFERENCES users ON DELETE SET NULL
);
CREATE INDEX hooks_project ON hooks (project_id, id);

CREATE TABLE hook_deliveries (
    id               bigserial PRIMARY KEY,
    hook_id          bigint NOT NULL REFERENCES hooks ON DELETE CASCADE,
    project_id       bigint NOT NULL,  -- the hook's, so the row names its project as others do
    notification_id  bigint NOT NULL REFERENCES notifications ON DELETE CASCADE,
    attempts         integer NOT NULL DEFAULT 0,
    next_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    state            text NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'delivered', 'failed')),
    last_at          timestamptz,
    last_status      integer,
    last_answer      text,  -- the first 500 characters of the receiver's answer
    last_error       text,
    delivered_at     timestamptz,
    UNIQUE (hook_id, notification_id)
);
-- A hook's deliveries go out in notification order: its head is the first pending one.
CREATE INDEX hook_deliveries_pending ON hook_deliveries (hook_id, notification_id)
    WHERE state = 'pending';
CREATE INDEX hook_deliveries_notification ON hook_deliveries (notification_id);

-- A build's overall state from its source step and tasks: the rules of
-- kopers.models.derive_build_state (a test holds the two to each other).
CREATE FUNCTION kopers_build_state(canceled boolean, source_state text, task_states text[])
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN canceled THEN 'canceled'
        WHEN source_state IN ('pending', 'starting', 'running', 'importing', 'failed')
            THEN source_state
        WHEN coalesce(cardinality(task_states), 0) = 0 THEN 'waiting'
        WHEN 'running' = ANY (task_states) THEN 'running'
        WHEN 'starting' = ANY (task_states) THEN 'starting'
        WHEN 'pending' = ANY (task_states) THEN 'pending'
        WHEN 'failed' = ANY (task_states) THEN 'failed'
        WHEN 'succeeded' = ANY (task_states) THEN 'succeeded'
        WHEN 'skipped' = ANY (task_states) THEN 'skipped'
        WHEN 'forked' = ANY (task_states) THEN 'forked'
        ELSE 'pending'
    END
$$;

-- Take the locks a notification of project `p_project` needs, in an order that
-- never holds the commit-order lock while waiting for a row: first the project
-- and its hooks (a concurrent delete of either is waited for here), then the
-- order lock, held to the end of the transaction. False: the project is gone.
CREATE FUNCTION kopers_notification_locks(p_project bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM projects WHERE id = p_project FOR KEY SHARE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM 1 FROM hooks WHERE project_id = p_project FOR KEY SHARE;
    PERFORM pg_advisory_xact_lock(1802465381, 10);  -- 'kope', this migration
    RETURN true;
END
$$;

-- One notification, a delivery for each hook of its project, and a wake-up
-- for the listeners (sent when the transaction commits). NULL: project gone.
CREATE FUNCTION kopers_notify(
    p_project bigint, p_kind text, p_build bigint, p_chroot text,
    p_state text, p_previous text, p_payload jsonb
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    new_id bigint;
BEGIN
    IF NOT kopers_notification_locks(p_project) THEN
        RETURN NULL;
    END IF;
    INSERT INTO notifications (project_id, kind, build_id, chroot, state, previous, payload)
    VALUES (p_project, p_kind, p_build, p_chroot, p_state, p_previous, p_payload)
    RETURNING id INTO new_id;
    INSERT INTO hook_deliveries (hook_id, project_id, notification_id)
    SELECT id, p_project, new_id FROM hooks WHERE project_id = p_project ORDER BY id;
    PERFORM pg_notify('kopers_events', new_id::text);
    RETURN new_id;
END
$$;

-- The build's overall state, announced when it differs from the last one
-- announced. Called with the locks held, so it reads what is committed.
CREATE FUNCTION kopers_check_build(p_build bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    b record;
    derived text;
    announced text;
BEGIN
    SELECT project_id, canceled, source_state INTO b FROM builds WHERE id = p_build;
    IF NOT FOUND OR b.source_state = 'forked' THEN
        RETURN;
    END IF;
    derived := kopers_build_state(
        b.canceled, b.source_state,
        ARRAY(SELECT state FROM build_tasks WHERE build_id = p_build));
    SELECT state INTO announced FROM notifications
    WHERE build_id = p_build AND kind = 'build.state' ORDER BY id DESC LIMIT 1;
    IF announced IS DISTINCT FROM derived THEN
        PERFORM kopers_notify(b.project_id, 'build.state', p_build, NULL, derived, announced, '{}');
    END IF;
END
$$;

-- A task's state was set (at insert, or changed): its event, as it was.
CREATE FUNCTION kopers_task_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    p_id bigint;
BEGIN
    SELECT project_id INTO p_id FROM builds WHERE id = NEW.build_id;
    IF NOT FOUND OR NOT kopers_notification_locks(p_id) THEN
        RETURN NULL;
    END IF;
    IF (SELECT source_state FROM builds WHERE id = NEW.build_id) = 'forked' THEN
        RETURN NULL;
    END IF;
    PERFORM kopers_notify(p_id, 'task.state', NEW.build_id, NEW.chroot, NEW.state,
                          CASE WHEN TG_OP = 'UPDATE' THEN OLD.state END, '{}');
    RETURN NULL;
END
$$;

-- The source step's state changed, or the build was canceled.
CREATE FUNCTION kopers_source_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT kopers_notification_locks(NEW.project_id) THEN
        RETURN NULL;
    END IF;
    IF (SELECT source_state FROM builds WHERE id = NEW.id) = 'forked' THEN
        RETURN NULL;
    END IF;
    IF OLD.source_state IS DISTINCT FROM NEW.source_state THEN
        -- The build's own state follows from the notification's trigger.
        PERFORM kopers_notify(NEW.project_id, 'source.state', NEW.id, NULL,
                              NEW.source_state, OLD.source_state, '{}');
    ELSE
        PERFORM kopers_check_build(NEW.id);
    END IF;
    RETURN NULL;
END
$$;

-- After a task's or source step's event: the build's state. These fire after
-- every event the transaction queued before them, so a cancel's task events
-- come before the build's.
CREATE FUNCTION kopers_build_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM kopers_check_build(NEW.build_id);
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER build_tasks_state_inserted
    AFTER INSERT ON build_tasks DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION kopers_task_event();

CREATE CONSTRAINT TRIGGER build_tasks_state_changed
    AFTER UPDATE OF state ON build_tasks DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION kopers_task_event();

CREATE CONSTRAINT TRIGGER builds_source_changed
    AFTER UPDATE OF source_state, canceled ON builds DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (OLD.source_state IS DISTINCT FROM NEW.source_state
                       OR OLD.canceled IS DISTINCT FROM NEW.canceled)
    EXECUTE FUNCTION kopers_source_event();

CREATE CONSTRAINT TRIGGER notifications_build_state
    AFTER INSERT ON notifications DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.kind IN ('task.state', 'source.state'))
    EXECUTE FUNCTION kopers_build_event();
