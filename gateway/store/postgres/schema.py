"""PostgreSQL migrations, applied by ``fax-gateway migrate`` and recorded in ``schema_version``.

The tables mirror the SQLite schema (gateway/store/schema.py, all its migrations up to 7) so
that the shared store code reads the same columns: times are Unix seconds (double precision),
JSON stays text, documents are bytea. Tables SQLite orders by ``rowid`` get a ``rowid``
column of their own. What SQLite gets from its single writer is written here as constraints:
one active transmission per number (a partial unique index). One job per SMTP message,
recipient and content within [smtp] idempotency_window_s is PostgresStore's advisory lock of
the message (migration 2 drops the unique index migration 1 had for it: it refused the same
message again after the window). Never edit a released migration; append a new one.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: the SQLite schema as of its migration 7
    """
    CREATE TABLE accounts (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        realm TEXT UNIQUE,
        created DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE api_tokens (
        rowid BIGSERIAL UNIQUE,
        token_hash TEXT PRIMARY KEY,
        account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        created DOUBLE PRECISION NOT NULL,
        expires DOUBLE PRECISION
    );
    CREATE INDEX api_tokens_account ON api_tokens(account_id);
    CREATE TABLE faxboxes (
        rowid BIGSERIAL UNIQUE,
        id TEXT PRIMARY KEY,
        account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        smtp_email_address TEXT NOT NULL UNIQUE,
        custom_smtp_email_address TEXT UNIQUE,
        fax_number TEXT,
        owner_email TEXT,
        smtp_password_hash TEXT,
        settings TEXT NOT NULL,
        created DOUBLE PRECISION NOT NULL,
        modified DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX faxboxes_account ON faxboxes(account_id, created);
    CREATE INDEX faxboxes_fax_number ON faxboxes(fax_number);
    CREATE TABLE faxes (
        rowid BIGSERIAL UNIQUE,
        id TEXT PRIMARY KEY,
        account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        faxbox_id TEXT REFERENCES faxboxes(id) ON DELETE SET NULL,
        direction TEXT NOT NULL,
        status TEXT NOT NULL,
        from_name TEXT,
        from_number TEXT,
        to_name TEXT,
        to_number TEXT NOT NULL,
        original_number TEXT,
        fax_identity_number TEXT,
        fax_identity_name TEXT,
        fax_timezone TEXT,
        retries BIGINT NOT NULL,
        attempts BIGINT NOT NULL DEFAULT 0,
        pages BIGINT,
        message_id TEXT,
        subject TEXT,
        source TEXT NOT NULL,
        notifications TEXT NOT NULL,
        render_options TEXT NOT NULL,
        document_request TEXT,
        tx_result TEXT,
        rx_result TEXT,
        error TEXT,
        smtplog_id TEXT,
        created DOUBLE PRECISION NOT NULL,
        modified DOUBLE PRECISION NOT NULL,
        delivered DOUBLE PRECISION,
        next_attempt_at DOUBLE PRECISION,
        lease_owner TEXT,
        lease_expires DOUBLE PRECISION,
        render_crashes BIGINT NOT NULL DEFAULT 0,
        message_digest TEXT
    );
    CREATE INDEX faxes_listing ON faxes(account_id, direction, created, id);
    CREATE INDEX faxes_created ON faxes(created, id);
    CREATE INDEX faxes_due ON faxes(status, next_attempt_at);
    CREATE INDEX faxes_message ON faxes(message_id, faxbox_id, to_number)
        WHERE message_id IS NOT NULL;
    -- An SMTP retry reaching any node finds the job the first delivery made (and cannot
    -- make a second one): same Message-ID, faxbox, number and sender+content digest.
    CREATE UNIQUE INDEX faxes_smtp_once
        ON faxes(message_id, coalesce(faxbox_id, ''), to_number, message_digest)
        WHERE message_id IS NOT NULL AND message_digest IS NOT NULL AND direction = 'outbound';
    -- Never two calls to one number at once, whichever nodes claim them.
    CREATE UNIQUE INDEX faxes_one_call_per_number ON faxes(to_number)
        WHERE status = 'processing' AND direction = 'outbound';
    CREATE INDEX faxes_folder_active ON faxes(account_id, direction, created, id)
        WHERE status IN ('attaching_files', 'pending', 'processing');
    CREATE INDEX faxes_folder_final ON faxes(account_id, direction, created, id)
        WHERE status IN ('completed', 'failed');
    CREATE TABLE documents (
        id BIGSERIAL PRIMARY KEY,
        data BYTEA NOT NULL,
        size BIGINT NOT NULL,
        sha256 TEXT NOT NULL
    );
    CREATE TABLE fax_documents (
        fax_id TEXT NOT NULL REFERENCES faxes(id) ON DELETE CASCADE,
        role TEXT NOT NULL,
        seq BIGINT NOT NULL,
        document_id BIGINT NOT NULL REFERENCES documents(id),
        filename TEXT NOT NULL,
        kind TEXT NOT NULL,
        pages BIGINT NOT NULL,
        PRIMARY KEY (fax_id, role, seq)
    );
    CREATE INDEX fax_documents_document ON fax_documents(document_id);
    CREATE TABLE smtplog (
        rowid BIGSERIAL UNIQUE,
        id TEXT PRIMARY KEY,
        account_id TEXT,
        faxbox_id TEXT,
        created DOUBLE PRECISION NOT NULL,
        peer_ip TEXT,
        helo TEXT,
        tls BIGINT NOT NULL,
        auth_user TEXT,
        mail_from TEXT,
        recipients TEXT NOT NULL,
        message_id TEXT,
        subject TEXT,
        size BIGINT,
        documents TEXT NOT NULL,
        reply_code BIGINT,
        reply_text TEXT,
        errors TEXT NOT NULL,
        fax_ids TEXT NOT NULL
    );
    CREATE INDEX smtplog_listing ON smtplog(account_id, created, id);
    CREATE INDEX smtplog_created ON smtplog(created, id);
    CREATE TABLE attempts (
        id BIGSERIAL PRIMARY KEY,
        fax_id TEXT NOT NULL REFERENCES faxes(id) ON DELETE CASCADE,
        number BIGINT NOT NULL,
        started DOUBLE PRECISION NOT NULL,
        ended DOUBLE PRECISION,
        outcome TEXT NOT NULL,
        failure_class TEXT,
        result TEXT,
        lease_owner TEXT
    );
    CREATE INDEX attempts_fax ON attempts(fax_id, number);
    CREATE INDEX faxes_active_number ON faxes(to_number) WHERE status = 'processing';
    CREATE TABLE notifications (
        id BIGSERIAL PRIMARY KEY,
        fax_id TEXT NOT NULL REFERENCES faxes(id) ON DELETE CASCADE,
        event TEXT NOT NULL,
        channel TEXT NOT NULL,
        recipient TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts BIGINT NOT NULL DEFAULT 0,
        created DOUBLE PRECISION NOT NULL,
        next_attempt_at DOUBLE PRECISION,
        sent DOUBLE PRECISION,
        error TEXT,
        lease_owner TEXT,
        lease_expires DOUBLE PRECISION
    );
    CREATE INDEX notifications_fax ON notifications(fax_id, id);
    CREATE INDEX notifications_due ON notifications(state, next_attempt_at);
    """,
    # 2: an SMTP message re-sent after [smtp] idempotency_window_s is a new fax, which the
    # unique index refused; the lookup of an earlier job keeps faxes_message.
    """
    DROP INDEX faxes_smtp_once;
    """,
]
