"""Store operations for accounts, faxboxes, intake and the smtplog."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import secrets
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import aiosqlite

from gateway import credentials
from gateway.errors import InvalidFieldError, NotFoundError, StorageError
from gateway.models import (
    Account,
    Direction,
    DocumentKind,
    Fax,
    Faxbox,
    FaxStatus,
    NewFax,
    SmtpLogEntry,
    SourceDocument,
)
from gateway.store.base import StoreBase, append_smtplog_error, given
from gateway.store.database import GroupCommit
from gateway.store.rows import (
    SMTPLOG_INSERT,
    account_from_row,
    dumps,
    fax_from_row,
    faxbox_from_row,
    faxbox_settings,
    smtplog_from_row,
    smtplog_values,
)


class CoreStore(StoreBase):
    """Accounts, tokens, faxboxes, SMTP intake and the smtplog."""

    # -- accounts and tokens ------------------------------------------------------------------

    async def create_account(self, name: str, realm: str | None = None) -> tuple[Account, str, str]:
        """Create an account; return it with its auth token and API key (shown once)."""
        account = Account(
            id=credentials.new_id(),
            name=name,
            realm=realm.lower() if realm else None,
            created=self.clock(),
        )
        auth_token, api_key = credentials.new_token(), credentials.new_token()
        async with self.database.transaction() as db:
            try:
                await db.execute(
                    "INSERT INTO accounts (id, name, realm, created) VALUES (?, ?, ?, ?)",
                    (account.id, account.name, account.realm, account.created),
                )
            except sqlite3.IntegrityError as exc:
                raise InvalidFieldError("realm", "unique", "realm is already in use") from exc
            for kind, token in (("auth_token", auth_token), ("api_key", api_key)):
                await self._insert_token(db, account.id, kind, token)
        return account, auth_token, api_key

    async def _insert_token(
        self,
        db: aiosqlite.Connection,
        account_id: str,
        kind: str,
        token: str,
        expires: float | None = None,
    ) -> None:
        await db.execute(
            "INSERT INTO api_tokens (token_hash, account_id, kind, created, expires)"
            " VALUES (?, ?, ?, ?, ?)",
            (credentials.token_hash(token), account_id, kind, self.clock(), expires),
        )

    async def issue_auth_token(
        self, account_id: str, *, ttl_s: float | None = None, keep: int | None = None
    ) -> str:
        """A new auth token for the account, valid ``ttl_s`` (None: until the account goes).

        Tokens that expire are the account's issued ones: expired ones are deleted here, and
        of the rest only the newest ``keep`` stay. Permanent ones (``ttl_s`` None: the
        account's own) are never dropped to make room.
        """
        token = credentials.new_token()
        now = self.clock()
        async with self.database.transaction() as db:
            expires = now + ttl_s if ttl_s is not None else None
            await self._insert_token(db, account_id, "auth_token", token, expires)
            await db.execute(
                "DELETE FROM api_tokens WHERE account_id = ? AND expires <= ?", (account_id, now)
            )
            if keep is not None:
                await db.execute(
                    "DELETE FROM api_tokens WHERE rowid IN (SELECT rowid FROM api_tokens"
                    " WHERE account_id = ? AND kind = 'auth_token' AND expires IS NOT NULL"
                    " ORDER BY created DESC, rowid DESC LIMIT -1 OFFSET ?)",
                    (account_id, keep),
                )
        return token

    async def account_for_token(self, token: str, kind: str = "auth_token") -> Account | None:
        row = await self.database.fetchone(
            "SELECT a.* FROM api_tokens t JOIN accounts a ON a.id = t.account_id"
            " WHERE t.token_hash = ? AND t.kind = ? AND (t.expires IS NULL OR t.expires > ?)",
            (credentials.token_hash(token), kind, self.clock()),
        )
        return account_from_row(row) if row else None

    async def get_account(self, account_id: str) -> Account:
        row = await self.database.fetchone("SELECT * FROM accounts WHERE id = ?", (account_id,))
        if row is None:
            raise NotFoundError(f"account {account_id} not found")
        return account_from_row(row)

    async def account_by_realm(self, realm: str) -> Account | None:
        row = await self.database.fetchone(
            "SELECT * FROM accounts WHERE realm = ?", (realm.lower(),)
        )
        return account_from_row(row) if row else None

    async def count_accounts(self) -> int:
        row = await self.database.fetchone("SELECT count(*) FROM accounts")
        return int(row[0]) if row else 0

    # -- faxboxes ------------------------------------------------------------------------------

    async def create_faxbox(
        self, faxbox: Faxbox, default_smtp_domain: str, smtp_password: str | None = None
    ) -> Faxbox:
        """Insert ``faxbox`` (id, address and times are assigned here)."""
        now = self.clock()
        password_hash = (
            await asyncio.to_thread(credentials.hash_password, smtp_password)
            if smtp_password
            else None
        )
        custom = (
            faxbox.custom_smtp_email_address.lower() if faxbox.custom_smtp_email_address else None
        )
        for _ in range(5):
            created = replace(
                faxbox,
                id=credentials.new_id(),
                smtp_email_address=f"{secrets.token_hex(4)}.{default_smtp_domain.lower()}",
                custom_smtp_email_address=custom,
                has_smtp_password=password_hash is not None,
                created=now,
                modified=now,
            )
            async with self.database.transaction() as db:
                taken = await self._addresses_taken(db, created)
                if taken == "custom":
                    raise InvalidFieldError(
                        "custom_smtp_email_address", "unique", "email address must be unique"
                    )
                if taken == "generated":
                    continue  # a random address collided: draw another
                try:
                    await db.execute(
                        "INSERT INTO faxboxes (id, account_id, name, smtp_email_address,"
                        " custom_smtp_email_address, fax_number, owner_email, smtp_password_hash,"
                        " settings, created, modified) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            created.id,
                            created.account_id,
                            created.name,
                            created.smtp_email_address,
                            created.custom_smtp_email_address,
                            created.fax_number,
                            created.owner_email,
                            password_hash,
                            faxbox_settings(created),
                            now,
                            now,
                        ),
                    )
                except sqlite3.IntegrityError as exc:
                    if "FOREIGN KEY" in str(exc):
                        raise NotFoundError(f"account {faxbox.account_id} not found") from exc
                    raise
            return created
        raise StorageError("could not allocate a unique smtp address")

    @staticmethod
    async def _addresses_taken(db: aiosqlite.Connection, faxbox: Faxbox) -> str | None:
        """Both address columns name mail domains: a domain must be unique across the two,
        or mail for one faxbox could be routed to another's."""
        sql = "SELECT 1 FROM faxboxes WHERE smtp_email_address = ? OR custom_smtp_email_address = ?"
        custom = faxbox.custom_smtp_email_address
        if custom is not None:
            async with db.execute(sql, (custom, custom)) as cur:
                if await cur.fetchone() is not None:
                    return "custom"
        generated = faxbox.smtp_email_address
        async with db.execute(sql, (generated, generated)) as cur:
            if await cur.fetchone() is not None or generated == custom:
                return "generated"
        return None

    async def get_faxbox(self, faxbox_id: str, account_id: str | None = None) -> Faxbox:
        row = await self.database.fetchone("SELECT * FROM faxboxes WHERE id = ?", (faxbox_id,))
        if row is None or (account_id is not None and row["account_id"] != account_id):
            raise NotFoundError(f"faxbox {faxbox_id} not found")
        return faxbox_from_row(row)

    async def faxbox_by_domain(self, domain: str) -> Faxbox | None:
        domain = domain.lower()
        row = await self.database.fetchone(
            "SELECT * FROM faxboxes WHERE smtp_email_address = ? OR custom_smtp_email_address = ?"
            " ORDER BY created LIMIT 1",
            (domain, domain),
        )
        return faxbox_from_row(row) if row else None

    async def faxboxes_of_account(self, account_id: str) -> list[Faxbox]:
        rows = await self.database.fetchall(
            "SELECT * FROM faxboxes WHERE account_id = ? ORDER BY created, id", (account_id,)
        )
        return [faxbox_from_row(r) for r in rows]

    async def faxbox_password_hash(self, faxbox_id: str) -> str | None:
        row = await self.database.fetchone(
            "SELECT smtp_password_hash FROM faxboxes WHERE id = ?", (faxbox_id,)
        )
        return row["smtp_password_hash"] if row else None

    async def faxbox_by_login(self, login: str) -> Faxbox | None:
        """SMTP AUTH user names are a faxbox id or its smtp address."""
        login = login.lower()
        row = await self.database.fetchone(
            "SELECT * FROM faxboxes WHERE id = ? OR smtp_email_address = ?"
            " OR custom_smtp_email_address = ? LIMIT 1",
            (login, login, login),
        )
        return faxbox_from_row(row) if row else None

    async def faxbox_by_fax_number(self, number: str) -> Faxbox | None:
        row = await self.database.fetchone(
            "SELECT * FROM faxboxes WHERE fax_number = ? ORDER BY created LIMIT 1", (number,)
        )
        return faxbox_from_row(row) if row else None

    # -- intake --------------------------------------------------------------------------------

    async def find_recent_fax(
        self,
        message_id: str,
        faxbox_id: str | None,
        to_number: str,
        message_digest: str,
        since: float,
    ) -> str | None:
        """The job made since ``since`` from the same message (Message-ID and digest, see
        ``accept_message``) to the same number through the same faxbox, if any."""
        same_faxbox = "faxbox_id IS NULL" if faxbox_id is None else "faxbox_id = ?"
        row = await self.database.fetchone(
            f"SELECT id FROM faxes WHERE message_id = ? AND {same_faxbox} AND to_number = ?"
            " AND message_digest = ? AND created >= ? ORDER BY created LIMIT 1",
            (
                message_id,
                *given(faxbox_id),
                to_number,
                message_digest,
                since,
            ),
        )
        return row["id"] if row else None

    async def accept_message(
        self,
        entry: SmtpLogEntry,
        faxes: Sequence[tuple[str, NewFax]],
        documents: Sequence[SourceDocument],
        message_digest: str | None = None,
        duplicate_since: float | None = None,
    ) -> None:
        """Create the jobs (id, fax) with their documents and the smtplog row, in one commit.
        ``message_digest`` (of the message's sender and content) is kept on the jobs for
        ``find_recent_fax``. ``duplicate_since`` is not looked at again: one process holds
        this database, and its intake checks under a lock per Message-ID before it comes here.

        Messages accepted at the same time share that commit (group commit: one fsync for
        many); this returns only once the commit holding this message's rows is done.
        """
        intake = _Intake(entry, faxes, documents, self.clock(), message_digest)
        await self._intake_commits.submit(intake)

    @functools.cached_property
    def _intake_commits(self) -> GroupCommit[_Intake]:
        return GroupCommit(self.database, _write_intake)

    async def create_fax(
        self, fax: NewFax, documents: Sequence[SourceDocument] = (), fax_id: str | None = None
    ) -> str:
        """Create one outbound job (HTTP intake) with its documents, in one commit."""
        fax_id = fax_id or credentials.new_id()
        async with self.database.transaction() as db:
            await self._insert_fax(db, fax_id, fax, self.clock(), None)
            for seq, doc in enumerate(documents):
                await self._link_new_document(db, fax_id, "original", seq, doc)
        return fax_id

    async def _insert_fax(
        self, db: aiosqlite.Connection, fax_id: str, fax: NewFax, now: float, smtplog_id: str | None
    ) -> None:
        await db.execute(FAX_INSERT, fax_values(fax_id, fax, now, smtplog_id))

    # -- smtplog -------------------------------------------------------------------------------

    async def write_smtplog(self, entry: SmtpLogEntry) -> None:
        async with self.database.transaction() as db:
            await db.execute(SMTPLOG_INSERT, smtplog_values(entry))

    async def append_smtplog_error(self, smtplog_id: str, error: str) -> None:
        async with self.database.transaction() as db:
            await append_smtplog_error(db, smtplog_id, error)

    async def get_smtplog(self, entry_id: str, account_id: str | None = None) -> SmtpLogEntry:
        row = await self.database.fetchone("SELECT * FROM smtplog WHERE id = ?", (entry_id,))
        if row is None or (account_id is not None and row["account_id"] != account_id):
            raise NotFoundError(f"smtplog {entry_id} not found")
        return smtplog_from_row(row)

    async def recent_smtplog(self, account_id: str | None, limit: int) -> list[SmtpLogEntry]:
        if account_id is None:
            rows = await self.database.fetchall(
                "SELECT * FROM smtplog ORDER BY created DESC, id DESC LIMIT ?", (limit,)
            )
        else:
            rows = await self.database.fetchall(
                "SELECT * FROM smtplog WHERE account_id = ? ORDER BY created DESC, id DESC LIMIT ?",
                (account_id, limit),
            )
        return [smtplog_from_row(r) for r in rows]

    # -- faxes ---------------------------------------------------------------------------------

    async def get_fax(self, fax_id: str, account_id: str | None = None) -> Fax:
        row = await self.database.fetchone("SELECT * FROM faxes WHERE id = ?", (fax_id,))
        if row is None or (account_id is not None and row["account_id"] != account_id):
            raise NotFoundError(f"fax {fax_id} not found")
        return fax_from_row(row)

    async def recent_faxes(self, account_id: str | None, limit: int) -> list[Fax]:
        if account_id is None:
            rows = await self.database.fetchall(
                "SELECT * FROM faxes ORDER BY created DESC, id DESC LIMIT ?", (limit,)
            )
        else:
            rows = await self.database.fetchall(
                "SELECT * FROM faxes WHERE account_id = ? ORDER BY created DESC, id DESC LIMIT ?",
                (account_id, limit),
            )
        return [fax_from_row(r) for r in rows]

    async def fax_documents(self, fax_id: str, role: str = "original") -> list[SourceDocument]:
        rows = await self.database.fetchall(
            "SELECT fd.filename, fd.kind, fd.pages, d.data FROM fax_documents fd"
            " JOIN documents d ON d.id = fd.document_id"
            " WHERE fd.fax_id = ? AND fd.role = ? ORDER BY fd.seq",
            (fax_id, role),
        )
        return [
            SourceDocument(
                kind=DocumentKind(r["kind"]),
                data=r["data"],
                filename=r["filename"],
                pages=r["pages"],
            )
            for r in rows
        ]


def fax_values(
    fax_id: str,
    fax: NewFax,
    now: float,
    smtplog_id: str | None,
    message_digest: str | None = None,
) -> tuple[Any, ...]:
    """A new outbound job's row, in the order of ``FAX_INSERT``."""
    return (
        fax_id,
        fax.account_id,
        fax.faxbox_id,
        Direction.OUTBOUND.value,
        FaxStatus.ATTACHING_FILES.value,
        fax.from_name,
        fax.from_number,
        fax.to_name,
        fax.to_number,
        fax.original_number,
        fax.fax_identity_number,
        fax.fax_identity_name,
        fax.fax_timezone,
        fax.retries,
        fax.message_id,
        fax.subject,
        fax.source,
        dumps(fax.notifications),
        dumps(fax.render_options),
        dumps(fax.document_request) if fax.document_request else None,
        smtplog_id,
        message_digest,
        now,
        now,
    )


_FAX_COLUMNS = (
    "id, account_id, faxbox_id, direction, status, from_name, from_number, to_name, to_number,"
    " original_number, fax_identity_number, fax_identity_name, fax_timezone, retries,"
    " message_id, subject, source, notifications, render_options, document_request,"
    " smtplog_id, message_digest, created, modified"
)
FAX_INSERT = (
    f"INSERT INTO faxes ({_FAX_COLUMNS}) VALUES ({', '.join('?' * (_FAX_COLUMNS.count(',') + 1))})"
)


@dataclass(frozen=True)
class _Intake:
    """One accepted message on its way to the group commit."""

    entry: SmtpLogEntry
    faxes: Sequence[tuple[str, NewFax]]
    documents: Sequence[SourceDocument]
    now: float
    message_digest: str | None


def _write_intake(db: sqlite3.Connection, batch: Sequence[_Intake]) -> None:
    """Write a batch of accepted messages with one statement per table, in the database
    thread. Document ids are taken here (the transaction holds the database's write lock),
    so no statement needs another's ``lastrowid``."""
    row = db.execute("SELECT coalesce(max(id), 0) FROM documents").fetchone()
    next_id = int(row[0]) + 1
    documents: list[tuple[Any, ...]] = []
    faxes: list[tuple[Any, ...]] = []
    links: list[tuple[Any, ...]] = []
    logs: list[tuple[Any, ...]] = []
    for item in batch:
        ids = list(range(next_id, next_id + len(item.documents)))
        next_id += len(ids)
        documents += [
            (doc_id, doc.data, len(doc.data), hashlib.sha256(doc.data).hexdigest())
            for doc_id, doc in zip(ids, item.documents, strict=True)
        ]
        for fax_id, fax in item.faxes:
            faxes.append(fax_values(fax_id, fax, item.now, item.entry.id, item.message_digest))
            links += [
                (fax_id, "original", seq, doc_id, doc.filename, doc.kind.value, doc.pages)
                for seq, (doc_id, doc) in enumerate(zip(ids, item.documents, strict=True))
            ]
        logs.append(smtplog_values(item.entry))
    db.executemany("INSERT INTO documents (id, data, size, sha256) VALUES (?, ?, ?, ?)", documents)
    db.executemany(FAX_INSERT, faxes)
    db.executemany(
        "INSERT INTO fax_documents (fax_id, role, seq, document_id, filename, kind, pages)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        links,
    )
    db.executemany(SMTPLOG_INSERT, logs)
