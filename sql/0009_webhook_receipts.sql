-- Deliveries from git forges (and custom webhooks) that reached a project:
-- what arrived, what Kopers answered and why, and the builds it started.
-- A delivery with an unknown project or a wrong secret in its URL is not
-- recorded: it reached no project.
--
-- `digest` is the SHA-256 of the body. A forge's delivery that started
-- builds claims its digest in webhook_digests, and a body whose digest is
-- claimed is refused when it comes again: the primary key makes that hold
-- between concurrent deliveries too. A custom webhook is a "build now"
-- button: pressing it twice builds twice. A delivery that built nothing (a
-- ping, a push to another branch) claims nothing: sent again once the
-- package follows that branch, it builds.
--
-- Kept: the newest 400 accepted and the newest 100 refused receipts per
-- project (kopers/db/webhooks.py), so neither kind can push out the record
-- of the other. Digests are kept apart from receipts, for 30 days whatever
-- happens to the receipts, so pruning a receipt never lets its body build
-- again.

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

-- The bodies that started builds, per project and forge; each is refused
-- if it comes again within 30 days. Old ones are deleted as new ones come.
CREATE TABLE webhook_digests (
    project_id  bigint NOT NULL REFERENCES projects ON DELETE CASCADE,
    forge       text NOT NULL CHECK (forge IN ('github', 'gitlab', 'bitbucket', 'pagure')),
    digest      text NOT NULL CHECK (digest ~ '^[0-9a-f]{64}$'),
    seen_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, forge, digest)
);
CREATE INDEX webhook_digests_age ON webhook_digests (project_id, seen_at);
