"""People, their WeChat identities (one person per unionid), login sessions and bindings."""

from .. import clock
from .db import Conflict, log, transaction
from .sharing import visitor_key
from .uploads import UPLOAD_FILES

PROFILE_FIELDS = ("nickname", "headimgurl", "sex", "province", "city", "country")
#: Tries of a first login that raced another one for the same row (PostgreSQL only).
LOGIN_TRIES = 3


def save_wechat_login(db, appid, token, now=None):
    """Create or update the WeChat identity of a code exchange; return its row id.

    One person per unionid: an identity arriving with a unionid joins the person who
    already has it (from the other appid), bringing along everything it owns.
    """
    now = now or clock.now()
    for attempt in range(LOGIN_TRIES):
        try:
            with transaction(db):
                return _save_wechat_login(db, appid, token, now)
        except Conflict:
            # Another first login of the same identity or unionid committed the row we were
            # about to insert (writers run side by side on PostgreSQL): start again, and
            # this time find it.
            if attempt == LOGIN_TRIES - 1:
                raise


def _save_wechat_login(db, appid, token, now):
    row = db.one(
        f"SELECT * FROM wechat_users WHERE appid = :appid AND openid = :openid{db.for_update}",
        {"appid": appid, "openid": token.openid},
    )
    values = {
        "person_id": _person_for(db, token.unionid, row, now),
        "unionid": token.unionid or (row or {}).get("unionid"),
        "scope": token.scope,
        "web_access_token": token.access_token,
        "web_token_expires": now + token.expires_in,
        "refresh_token": token.refresh_token,
        "refresh_expires": now + 30 * 86400,
        "last_login_at": now,
    }
    if row:
        sets = ", ".join(f"{k} = :{k}" for k in values)
        db.execute(f"UPDATE wechat_users SET {sets} WHERE id = :id", {**values, "id": row["id"]})
        return row["id"]
    values.update(appid=appid, openid=token.openid, created_at=now)
    cols = ", ".join(values)
    names = ", ".join(f":{k}" for k in values)
    return db.scalar(f"INSERT INTO wechat_users ({cols}) VALUES ({names}) RETURNING id", values)


def _person(db, where, params):
    return db.one(f"SELECT * FROM people WHERE {where}{db.for_update}", params)


def _person_for(db, unionid, row, now):
    current = row["person_id"] if row else None
    if unionid:
        owner = _person(db, "unionid = :unionid", {"unionid": unionid})
        if owner and current and owner["id"] != current:
            dropped = _person(db, "id = :id", {"id": current})
            if owner["account_id"] and dropped["account_id"]:
                # Both bound, to different accounts: merging would drop one binding.
                log.warning(
                    "people %s and %s share a unionid but are bound to different accounts; "
                    "kept apart",
                    owner["id"],
                    current,
                )
                return current
            _merge_people(db, keep=owner, dropped=dropped)
            return owner["id"]
        if owner:
            return owner["id"]
        if current:
            db.execute(
                "UPDATE people SET unionid = :unionid WHERE id = :id",
                {"unionid": unionid, "id": current},
            )
            return current
        # Concurrent first logins of one unionid: the insert waits for the other one's
        # commit, then does nothing, and the select finds that one row.
        db.execute(
            "INSERT INTO people (unionid, created_at) VALUES (:unionid, :now) "
            "ON CONFLICT (unionid) DO NOTHING",
            {"unionid": unionid, "now": now},
        )
        return _person(db, "unionid = :unionid", {"unionid": unionid})["id"]
    if current:
        return current
    return db.scalar("INSERT INTO people (created_at) VALUES (:now) RETURNING id", {"now": now})


def _merge_people(db, keep, dropped):
    """Move everything ``dropped`` owns to ``keep`` (one transaction, the caller's)."""
    ids = {"keep": keep["id"], "drop": dropped["id"], "now": clock.now()}
    db.execute("UPDATE wechat_users SET person_id = :keep WHERE person_id = :drop", ids)
    # Uploads ``keep`` already has (same content) go; their files are queued for removal.
    duplicate = (
        "FROM uploads d WHERE d.person_id = :drop AND EXISTS (SELECT 1 FROM uploads k "
        "WHERE k.person_id = :keep AND k.kind = d.kind AND k.sha256 = d.sha256)"
    )
    for column in UPLOAD_FILES:
        db.execute(
            f"INSERT INTO orphan_files (path, created_at) SELECT d.{column}, :now {duplicate} "
            f"AND d.{column} IS NOT NULL ON CONFLICT (path) DO NOTHING",
            ids,
        )
    db.execute(f"DELETE FROM uploads WHERE id IN (SELECT d.id {duplicate})", ids)
    db.execute("UPDATE uploads SET person_id = :keep WHERE person_id = :drop", ids)
    db.execute("UPDATE orders SET person_id = :keep WHERE person_id = :drop", ids)
    _merge_share_visits(db, ids)
    for column in ("account_id", "referral_code"):
        # A binding or a code moves when ``keep`` has none (both bound: never merged).
        if dropped[column] and not keep[column]:
            db.execute(f"UPDATE people SET {column} = NULL WHERE id = :drop", ids)
            db.execute(
                f"UPDATE people SET {column} = :value WHERE id = :keep",
                {**ids, "value": dropped[column]},
            )
    # The dropped row stays: links shared with its own code keep counting for ``keep``.
    db.execute("UPDATE people SET merged_into = :keep WHERE merged_into = :drop", ids)
    db.execute("UPDATE people SET merged_into = :keep WHERE id = :drop", ids)
    log.info("merged person %s into %s by unionid", dropped["id"], keep["id"])


def _merge_share_visits(db, ids):
    params = {**ids, "old": visitor_key(ids["drop"]), "new": visitor_key(ids["keep"])}
    # Visits the dropped person made: now made by ``keep`` (once per sharer).
    db.execute(
        "UPDATE share_visits SET visitor = :new WHERE visitor = :old AND NOT EXISTS "
        "(SELECT 1 FROM share_visits s WHERE s.person_id = share_visits.person_id "
        "AND s.visitor = :new)",
        params,
    )
    db.execute("DELETE FROM share_visits WHERE visitor = :old", params)
    # Visits the dropped person received: now ``keep``'s (once per visitor, never its own).
    db.execute(
        "UPDATE share_visits SET person_id = :keep WHERE person_id = :drop AND NOT EXISTS "
        "(SELECT 1 FROM share_visits s WHERE s.person_id = :keep "
        "AND s.visitor = share_visits.visitor)",
        params,
    )
    db.execute("DELETE FROM share_visits WHERE person_id = :drop", params)
    db.execute("DELETE FROM share_visits WHERE person_id = :keep AND visitor = :new", params)


def save_profile(db, wechat_user_id, info, now=None):
    """Store the consented profile from ``sns/userinfo``."""
    values = {field: info.get(field) for field in PROFILE_FIELDS}
    sets = ", ".join(f"{field} = :{field}" for field in PROFILE_FIELDS)
    with transaction(db):
        db.execute(
            f"UPDATE wechat_users SET {sets}, profile_at = :now WHERE id = :id",
            {**values, "now": now or clock.now(), "id": wechat_user_id},
        )


def save_web_token(db, wechat_user_id, token, now=None):
    """Store a refreshed web access_token."""
    now = now or clock.now()
    with transaction(db):
        db.execute(
            "UPDATE wechat_users SET web_access_token = :token, web_token_expires = :expires, "
            "refresh_token = COALESCE(NULLIF(:refresh, ''), refresh_token), scope = :scope "
            "WHERE id = :id",
            {
                "token": token.access_token,
                "expires": now + token.expires_in,
                "refresh": token.refresh_token,
                "scope": token.scope,
                "id": wechat_user_id,
            },
        )


#: An identity ``w`` with its person's binding and account name: columns, then joins.
_IDENTITY = (
    "w.*, p.account_id, p.referral_code, a.username AS account_username, "
    "a.display_name AS account_display_name",
    "JOIN people p ON p.id = w.person_id LEFT JOIN accounts a ON a.id = p.account_id",
)


def get_wechat_user(db, wechat_user_id):
    """Return the identity with its person's binding and account name, or None."""
    columns, joins = _IDENTITY
    return db.one(
        f"SELECT {columns} FROM wechat_users w {joins} WHERE w.id = :id", {"id": wechat_user_id}
    )


# -- login sessions -------------------------------------------------------------------------


def create_login(db, login_id, wechat_user_id, now=None):
    """Record a login session (the cookie carries only ``login_id``)."""
    with transaction(db):
        db.execute(
            "INSERT INTO logins (id, wechat_user_id, created_at) VALUES (:id, :user, :now)",
            {"id": login_id, "user": wechat_user_id, "now": now or clock.now()},
        )


def get_login(db, login_id, max_age, now=None):
    """Return the live login's identity row, or None if revoked, expired or unknown.

    One read on every logged-in request: the login record by its primary key, joined to
    its identity, person and account by theirs. Nothing is cached, so a revocation (logout,
    a new login, a binding) written by any worker or host refuses the next request.
    """
    return db.one(_LOGIN, {"id": login_id, "since": (now or clock.now()) - max_age})


_LOGIN = (
    "SELECT {} FROM logins l JOIN wechat_users w ON w.id = l.wechat_user_id {} "
    "WHERE l.id = :id AND l.revoked_at IS NULL AND l.created_at > :since"
).format(*_IDENTITY)


def revoke_login(db, login_id, now=None):
    """End a login session for good."""
    with transaction(db):
        db.execute(
            "UPDATE logins SET revoked_at = :now WHERE id = :id AND revoked_at IS NULL",
            {"now": now or clock.now(), "id": login_id},
        )


# -- binding --------------------------------------------------------------------------------


class BindingConflict(Exception):
    """The account or the person is already bound elsewhere."""


class PersonAlreadyBound(BindingConflict):
    """The person is bound to another account."""


class AccountAlreadyBound(BindingConflict):
    """The account is bound to another person."""


def bind_account(db, person_id, account_id):
    """Bind a person to an account; never silently rebinds either side."""
    ids = {"person": person_id, "account": account_id}
    try:
        with transaction(db):
            # Lock the account, then the person: parallel binds of one account queue here.
            db.execute(f"SELECT id FROM accounts WHERE id = :account{db.for_update}", ids)
            person = _person(db, "id = :person", ids)
            if person and person["account_id"] and person["account_id"] != account_id:
                raise PersonAlreadyBound()
            holder = db.scalar("SELECT id FROM people WHERE account_id = :account", ids)
            if holder and holder != person_id:
                raise AccountAlreadyBound()
            db.execute("UPDATE people SET account_id = :account WHERE id = :person", ids)
    except Conflict:
        raise AccountAlreadyBound() from None  # the unique binding held


def unbind_account(db, person_id):
    """Remove a person's binding."""
    with transaction(db):
        db.execute("UPDATE people SET account_id = NULL WHERE id = :id", {"id": person_id})
