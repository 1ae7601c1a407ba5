-- The email outbox: every message the service sends, rendered, kept under a
-- stable id so that each is sent once. A row without sent_at is queued or
-- failed (attempts and last_error say which); a sender holds the row's lock
-- while it delivers, so two processes never send one message at once.
-- last_error never holds the recipient's address.
-- depends: 0007.append-events-function

CREATE TABLE email_outbox (
    message_id text PRIMARY KEY,
    kind text NOT NULL,
    recipient_address text NOT NULL,
    subject text NOT NULL,
    html text NOT NULL,
    text_body text NOT NULL,
    queued_at timestamptz NOT NULL,
    sent_at timestamptz,
    attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error text
);

