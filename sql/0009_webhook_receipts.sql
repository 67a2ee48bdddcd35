-- Deliveries from git forges (and custom webhooks) that reached a project:
-- what arrived, what Kopers answered and why, and the builds it started.
-- A delivery with an unknown project or a wrong secret in its URL is not
-- recorded: it reached no project.
--
-- `digest` is the SHA-256 of the body. A forge's delivery accepted once
-- (answered 2xx) is refused when its body comes again: the partial unique
-- index makes that hold between concurrent deliveries too. A custom webhook
-- is a "build now" button: pressing it twice builds twice.
--
-- Kept: the newest 500 per project, refused ones going first
-- (kopers/db/webhooks.py), so a flood of bad deliveries cannot push out
-- the record of accepted ones.

CREATE TABLE webhook_receipts (
    id           bigserial PRIMARY KEY,
    project_id   bigint NOT NULL REFERENCES projects ON DELETE CASCADE,
    forge        text NOT NULL CHECK (forge IN ('github', 'gitlab', 'bitbucket', 'pagure', 'custom')),
    received_on  timestamptz NOT NULL DEFAULT now(),
    -- The HTTP status of the answer, and its message (one line).
    status       integer NOT NULL CHECK (status BETWEEN 200 AND 599),
    accepted     boolean GENERATED ALWAYS AS (status BETWEEN 200 AND 299) STORED,
    reason       text NOT NULL CHECK (length(reason) <= 500),
    -- What the forge's headers said: the event, and its id for this delivery.
    event        text NOT NULL DEFAULT '' CHECK (length(event) <= 200),
    delivery_id  text CHECK (length(delivery_id) <= 200),
    digest       text NOT NULL CHECK (digest ~ '^[0-9a-f]{64}$'),
    -- The builds it started (ids, not references: a build may be deleted later).
    builds       bigint[] NOT NULL DEFAULT '{}'
);
CREATE INDEX webhook_receipts_project ON webhook_receipts (project_id, id);
CREATE UNIQUE INDEX webhook_receipts_once ON webhook_receipts (project_id, forge, digest)
    WHERE accepted AND forge <> 'custom';
