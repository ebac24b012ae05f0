"""Keep the emulator's state in a file so a restart remembers it (stdlib sqlite3).

What WeChat itself would remember survives: tokens and tickets, codes and web grants,
who follows which account (and through which QR code), armed snapshot pages, QR codes,
temporary media, the clock's offset, Pay orders, refunds and the merchant balance, and
the push configuration set through the control API. What only helps a test or a
debugging session does not: queued faults, call counters, JS-SDK events, shaped-answer
and push delivery records, and sent Pay notifications.

The file is the emulator's own (``instance/emulator.sqlite3`` from the CLI), never the
site's database. One row per item: after each request, only the rows that changed are
written (a token issued, an order paid), so a long session never rewrites a big file.
With no file (``EMU_STATE_FILE`` unset: the tests) nothing is written anywhere.
"""

import dataclasses
import json
import logging
import math
import os
import sqlite3
import threading

from flask import request

from .push import Config
from .state import Code, Credential, Media, QrCode, WebGrant

log = logging.getLogger(__name__)

#: Bump when a row's shape changes; a file of another version starts clean.
VERSION = 1
_SCHEMA = """
create table if not exists meta (name text primary key, value text not null);
create table if not exists items (
    space text not null, key text not null, value text not null, primary key (space, key)
);
create table if not exists media (
    media_id text primary key, meta text not null, data blob not null, speex blob
);
"""


def _dump(value):
    # Infinity (a credential never superseded) round-trips through Python's json.
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _plain(item):
    """Return *item* (a dataclass, or dicts and lists of them) as JSON-able values."""
    if hasattr(item, "__dataclass_fields__"):
        return dataclasses.asdict(item)
    if isinstance(item, dict):
        return {k: _plain(v) for k, v in item.items()}
    if isinstance(item, (list, tuple)):
        return [_plain(v) for v in item]
    return item


def _fingerprint(item):
    """Return a hashable snapshot of *item* that changes whenever its saved form would."""
    if hasattr(item, "__dataclass_fields__"):
        return tuple(item.__dict__.values())  # the kept dataclasses hold plain values only
    if isinstance(item, dict):
        return tuple((k, _fingerprint(v)) for k, v in item.items())
    if isinstance(item, (list, tuple)):
        return tuple(_fingerprint(v) for v in item)
    return item


def remove(path):
    """Delete the state file at *path* (and SQLite's side files): the next start is clean."""
    for suffix in ("", "-journal", "-wal", "-shm"):
        try:
            os.remove(path + suffix)
        except FileNotFoundError:
            pass


class StateFile:
    """The emulator's state on disk: load it once at start, then save what changed."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        #: True when the file holds an earlier run's state (of this version).
        self.existed = False
        #: True when an earlier run's tokens or tickets were read back (so a site that
        #: kept them may go on using them).
        self.restored = False
        #: (space, key) -> the JSON text last written.
        self._written = {}
        #: media_id -> (id(Media), id(speex)) last written.
        self._media = {}
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("pragma journal_mode=wal")
        self.db.execute("pragma synchronous=normal")
        self.db.executescript(_SCHEMA)

    def close(self):
        """Close the file (further saves are skipped)."""
        with self.lock:
            if self.db is not None:
                self.db.close()
                self.db = None

    # -- the spaces: what is kept ----------------------------------------------------

    @staticmethod
    def _spaces(emu, pay, push):
        """Return {space: {key: item}} of everything kept but media (items as they live)."""
        return {
            "scalar": {
                "offset": emu.offset,
                "real_speex": emu.real_speex,
                "msg_seq": emu.msg_seq,
                "pay.balance": pay.balance,
                "pay.signer": pay.signer,
                "pay.refund_answer": pay.refund_answer,
            },
            "token": emu.tokens,
            "stable": emu.stable,
            "ticket": emu.tickets,
            "code": emu.codes,
            "web_token": emu.web_tokens,
            "refresh_token": emu.refresh_tokens,
            "follows": emu.follows,
            "follow_scene": {f"{u}\n{a}": qr for (u, a), qr in emu.follow_scenes.items()},
            "snapshot": emu.snapshots,
            "qrcode": emu.qrcodes,
            "order": pay.orders,
            "refund": pay.refunds,
            "push": push.configs,
        }

    def _fingerprints(self, emu, pay, push):
        """Return {(space, key): (fingerprint, item)}: cheap to compare, dumped only if new."""
        return {
            (space, key): (_fingerprint(item), item)
            for space, items in self._spaces(emu, pay, push).items()
            for key, item in items.items()
        }

    # -- save --------------------------------------------------------------------------

    def save(self, emu, pay, push):
        """Write the rows that changed since the last save; return how many."""
        with self.lock:
            if self.db is None:
                return 0
            with emu.lock, pay.lock, push.lock:
                current = self._fingerprints(emu, pay, push)
                changed = [
                    (key, fingerprint, _dump(_plain(item)))
                    for key, (fingerprint, item) in current.items()
                    if self._written.get(key) != fingerprint
                ]
                media = {m.media_id: m for m in emu.media.values()}
            gone = [key for key in self._written if key not in current]
            new_media = [m for i, m in media.items() if self._media.get(i) != (id(m), id(m.speex))]
            gone_media = [i for i in self._media if i not in media]
            if not (changed or gone or new_media or gone_media):
                return 0
            with self.db:
                self.db.execute("begin")
                self.db.executemany(
                    "insert or replace into items (space, key, value) values (?, ?, ?)",
                    [(space, key, text) for (space, key), _, text in changed],
                )
                self.db.executemany("delete from items where space = ? and key = ?", gone)
                self.db.executemany(
                    "insert or replace into media (media_id, meta, data, speex) values (?, ?, ?, ?)",
                    [(m.media_id, _dump(self._media_meta(m)), m.data, m.speex) for m in new_media],
                )
                self.db.executemany(
                    "delete from media where media_id = ?", [(i,) for i in gone_media]
                )
            for key, fingerprint, _ in changed:
                self._written[key] = fingerprint
            for key in gone:
                del self._written[key]
            for item in new_media:
                self._media[item.media_id] = (id(item), id(item.speex))
            for media_id in gone_media:
                del self._media[media_id]
            return len(changed) + len(gone) + len(new_media) + len(gone_media)

    @staticmethod
    def _media_meta(item):
        return {
            f.name: getattr(item, f.name)
            for f in dataclasses.fields(item)
            if f.name not in ("data", "speex")
        }

    # -- load --------------------------------------------------------------------------

    def load(self, emu, pay, push):
        """Read an earlier run's state into the three state objects (if there is one)."""
        with self.lock:
            version = self.db.execute("select value from meta where name = 'version'").fetchone()
            rows = self.db.execute("select space, key, value from items").fetchall()
            media = self.db.execute("select media_id, meta, data, speex from media").fetchall()
            if version is not None and version[0] != str(VERSION):
                log.warning("emulator state %s is of another version: starting clean", self.path)
                self.db.execute("delete from items")
                self.db.execute("delete from media")
                rows, media = [], []
            self.existed = version is not None and version[0] == str(VERSION)
            self.db.execute(
                "insert or replace into meta (name, value) values ('version', ?)", (str(VERSION),)
            )
        spaces = {}
        for space, key, value in rows:
            spaces.setdefault(space, {})[key] = json.loads(value)
        try:
            with emu.lock, pay.lock, push.lock:
                self._apply(spaces, media, emu, pay, push)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("emulator state %s is unreadable (%r): starting clean", self.path, exc)
            emu.reset()
            pay.reset()
            push.reset()
            self.existed = False
            with self.lock, self.db:
                self.db.execute("delete from items")
                self.db.execute("delete from media")
            return
        self.restored = bool(emu.tokens or emu.tickets)
        # What was read is what is on disk: the next save writes only what changes.
        with emu.lock, pay.lock, push.lock:
            read = {(space, key) for space, key, _ in rows}
            for key, (fingerprint, _) in self._fingerprints(emu, pay, push).items():
                if key in read:
                    self._written[key] = fingerprint
        for item in emu.media.values():
            self._media[item.media_id] = (id(item), id(item.speex))

    @staticmethod
    def _apply(spaces, media, emu, pay, push):
        scalar = spaces.get("scalar", {})
        emu.offset = float(scalar.get("offset", emu.offset))
        emu.real_speex = bool(scalar.get("real_speex", emu.real_speex))
        emu.msg_seq = int(scalar.get("msg_seq", emu.msg_seq))
        pay.balance = dict(scalar.get("pay.balance", pay.balance))
        pay.signer = scalar.get("pay.signer", pay.signer)
        pay.refund_answer = scalar.get("pay.refund_answer", pay.refund_answer)

        emu.tokens = {k: _credential(v) for k, v in spaces.get("token", {}).items()}
        # The current stable token is one of the tokens (the same object), unless pruned.
        emu.stable = {
            appid: emu.tokens.get(row["value"]) or _credential(row)
            for appid, row in spaces.get("stable", {}).items()
        }
        emu.tickets = {
            appid: [_credential(t) for t in rows]
            for appid, rows in spaces.get("ticket", {}).items()
        }
        emu.codes = {k: Code(**v) for k, v in spaces.get("code", {}).items()}
        emu.web_tokens = {k: WebGrant(**v) for k, v in spaces.get("web_token", {}).items()}
        emu.refresh_tokens = {k: WebGrant(**v) for k, v in spaces.get("refresh_token", {}).items()}
        if "follows" in spaces:
            emu.follows = {
                user: {a: int(t) for a, t in follows.items()}
                for user, follows in spaces["follows"].items()
            }
        emu.qrcodes = {k: QrCode(**v) for k, v in spaces.get("qrcode", {}).items()}
        emu.follow_scenes = {}
        for key, row in spaces.get("follow_scene", {}).items():
            user, _, appid = key.partition("\n")
            emu.follow_scenes[(user, appid)] = emu.qrcodes.get(row["ticket"]) or QrCode(**row)
        emu.snapshots = dict(spaces.get("snapshot", {}))
        emu.media = {}
        for media_id, meta, data, speex in media:
            emu.media[media_id] = Media(data=bytes(data), speex=_bytes(speex), **json.loads(meta))

        pay.orders = dict(spaces.get("order", {}))
        pay.refunds = dict(spaces.get("refund", {}))
        # Push settings given at start (EMU_PUSH) win over those kept for the same account.
        kept = {k: Config(**v) for k, v in spaces.get("push", {}).items()}
        push.configs = {**kept, **push.initial}


def _credential(row):
    row = dict(row)
    if row.get("valid_until") is None:
        row["valid_until"] = math.inf
    return Credential(**row)


def _bytes(value):
    return None if value is None else bytes(value)


def init_app(app, path):
    """Load *path* into the app's state and save what changed after every request."""
    state_file = StateFile(path)
    extensions = app.extensions
    state_file.load(extensions["wxemu"], extensions["wxemu.pay"], extensions["wxemu.push"])
    app.extensions["wxemu.file"] = state_file

    @app.teardown_request
    def save_state(exc=None):
        if not _static_request():
            try:
                state_file.save(
                    extensions["wxemu"], extensions["wxemu.pay"], extensions["wxemu.push"]
                )
            except sqlite3.Error:
                log.exception("could not save the emulator's state to %s", path)

    return state_file


def _static_request():
    return request.endpoint == "static" or request.path == "/favicon.ico"
