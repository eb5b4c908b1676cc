"""Schema migrations, applied in order and recorded in ``PRAGMA user_version``.

Never edit a released migration; append a new one.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: accounts, tokens, faxboxes, faxes with their documents, smtplog
    """
    CREATE TABLE accounts (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        realm TEXT UNIQUE,
        created REAL NOT NULL
    );
    CREATE TABLE api_tokens (
        token_hash TEXT PRIMARY KEY,
        account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        created REAL NOT NULL
    );
    CREATE INDEX api_tokens_account ON api_tokens(account_id);
    CREATE TABLE faxboxes (
        id TEXT PRIMARY KEY,
        account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        smtp_email_address TEXT NOT NULL UNIQUE,
        custom_smtp_email_address TEXT UNIQUE,
        fax_number TEXT,
        owner_email TEXT,
        smtp_password_hash TEXT,
        settings TEXT NOT NULL,
        created REAL NOT NULL,
        modified REAL NOT NULL
    );
    CREATE INDEX faxboxes_account ON faxboxes(account_id, created);
    CREATE INDEX faxboxes_fax_number ON faxboxes(fax_number);
    CREATE TABLE faxes (
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
        retries INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        pages INTEGER,
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
        created REAL NOT NULL,
        modified REAL NOT NULL,
        delivered REAL,
        next_attempt_at REAL,
        lease_owner TEXT,
        lease_expires REAL
    );
    CREATE INDEX faxes_listing ON faxes(account_id, direction, created, id);
    CREATE INDEX faxes_created ON faxes(created, id);
    CREATE INDEX faxes_due ON faxes(status, next_attempt_at);
    CREATE INDEX faxes_message ON faxes(message_id, faxbox_id, to_number)
        WHERE message_id IS NOT NULL;
    CREATE TABLE documents (
        id INTEGER PRIMARY KEY,
        data BLOB NOT NULL,
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL
    );
    CREATE TABLE fax_documents (
        fax_id TEXT NOT NULL REFERENCES faxes(id) ON DELETE CASCADE,
        role TEXT NOT NULL,
        seq INTEGER NOT NULL,
        document_id INTEGER NOT NULL REFERENCES documents(id),
        filename TEXT NOT NULL,
        kind TEXT NOT NULL,
        pages INTEGER NOT NULL,
        PRIMARY KEY (fax_id, role, seq)
    );
    CREATE INDEX fax_documents_document ON fax_documents(document_id);
    CREATE TABLE smtplog (
        id TEXT PRIMARY KEY,
        account_id TEXT,
        faxbox_id TEXT,
        created REAL NOT NULL,
        peer_ip TEXT,
        helo TEXT,
        tls INTEGER NOT NULL,
        auth_user TEXT,
        mail_from TEXT,
        recipients TEXT NOT NULL,
        message_id TEXT,
        subject TEXT,
        size INTEGER,
        documents TEXT NOT NULL,
        reply_code INTEGER,
        reply_text TEXT,
        errors TEXT NOT NULL,
        fax_ids TEXT NOT NULL
    );
    CREATE INDEX smtplog_listing ON smtplog(account_id, created, id);
    CREATE INDEX smtplog_created ON smtplog(created, id);
    """,
    # 2: transmission attempts (one row each) and the render/transmit lease on faxes
    """
    CREATE TABLE attempts (
        id INTEGER PRIMARY KEY,
        fax_id TEXT NOT NULL REFERENCES faxes(id) ON DELETE CASCADE,
        number INTEGER NOT NULL,
        started REAL NOT NULL,
        ended REAL,
        outcome TEXT NOT NULL,
        failure_class TEXT,
        result TEXT,
        lease_owner TEXT
    );
    CREATE INDEX attempts_fax ON attempts(fax_id, number);
    CREATE INDEX faxes_active_number ON faxes(to_number) WHERE status = 'processing';
    """,
    # 3: the API's folder lists read a page by keyset on an index holding only that folder's
    # rows, so the cost of a page does not grow with the history of the other folder.
    """
    CREATE INDEX faxes_folder_active ON faxes(account_id, direction, created, id)
        WHERE status IN ('attaching_files', 'pending', 'processing');
    CREATE INDEX faxes_folder_final ON faxes(account_id, direction, created, id)
        WHERE status IN ('completed', 'failed');
    """,
    # 4: notifications (email, SMS) about final outcomes, written in the transaction that makes
    # the fax final, delivered by the notifier under a lease, retried until sent or dead.
    """
    CREATE TABLE notifications (
        id INTEGER PRIMARY KEY,
        fax_id TEXT NOT NULL REFERENCES faxes(id) ON DELETE CASCADE,
        event TEXT NOT NULL,
        channel TEXT NOT NULL,
        recipient TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        created REAL NOT NULL,
        next_attempt_at REAL,
        sent REAL,
        error TEXT,
        lease_owner TEXT,
        lease_expires REAL
    );
    CREATE INDEX notifications_fax ON notifications(fax_id, id);
    CREATE INDEX notifications_due ON notifications(state, next_attempt_at);
    """,
    # 5: how many times rendering a job's documents crashed the renderer (its worker process
    # died): the first crash is retried, the second fails the job (docs/jobs.md).
    """
    ALTER TABLE faxes ADD COLUMN render_crashes INTEGER NOT NULL DEFAULT 0;
    """,
    # 6: auth tokens issued by PUT /v2/api_auth expire; the account's own one (made with it,
    # so its first) does not (NULL). Tokens issued before this get the default lifetime, 1 day.
    """
    ALTER TABLE api_tokens ADD COLUMN expires REAL;
    UPDATE api_tokens SET expires = created + 86400
        WHERE kind = 'auth_token' AND rowid > (
            SELECT min(first.rowid) FROM api_tokens AS first
            WHERE first.account_id = api_tokens.account_id AND first.kind = 'auth_token'
        );
    """,
    # 7: what, besides its Message-ID, makes an SMTP message a resend of an earlier one: a
    # digest of its envelope sender and content (Message-IDs are shared in the wild). Jobs
    # accepted before this have none and match no resend (a duplicate fax, never a lost one).
    """
    ALTER TABLE faxes ADD COLUMN message_digest TEXT;
    """,
]
