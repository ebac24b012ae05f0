"""People, their WeChat identities (one person per unionid), login sessions and bindings."""

import time

from .db import log, one, transaction
from .sharing import visitor_key
from .uploads import UPLOAD_FILES

PROFILE_FIELDS = ("nickname", "headimgurl", "sex", "province", "city", "country")


def save_wechat_login(db, appid, token, now=None):
    """Create or update the WeChat identity of a code exchange; return its row id.

    One person per unionid: an identity arriving with a unionid joins the person who
    already has it (from the other appid), moving its uploads along.
    """
    now = now or time.time()
    with transaction(db):
        row = one(
            db, "SELECT * FROM wechat_users WHERE appid = ? AND openid = ?", [appid, token.openid]
        )
        person_id = _person_for(db, token.unionid, row, now)
        values = {
            "person_id": person_id,
            "unionid": token.unionid or (row or {}).get("unionid"),
            "scope": token.scope,
            "web_access_token": token.access_token,
            "web_token_expires": now + token.expires_in,
            "refresh_token": token.refresh_token,
            "refresh_expires": now + 30 * 86400,
            "last_login_at": now,
        }
        if row:
            sets = ", ".join(f"{k} = ?" for k in values)
            db.execute(
                f"UPDATE wechat_users SET {sets} WHERE id = ?", [*values.values(), row["id"]]
            )
            return row["id"]
        values.update(appid=appid, openid=token.openid, created_at=now)
        cols = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        return db.execute(
            f"INSERT INTO wechat_users ({cols}) VALUES ({marks})", list(values.values())
        ).lastrowid


def _person_for(db, unionid, row, now):
    current = row["person_id"] if row else None
    if unionid:
        owner = one(db, "SELECT * FROM people WHERE unionid = ?", [unionid])
        if owner and current and owner["id"] != current:
            dropped = one(db, "SELECT * FROM people WHERE id = ?", [current])
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
            db.execute("UPDATE people SET unionid = ? WHERE id = ?", [unionid, current])
            return current
    if current:
        return current
    return db.execute(
        "INSERT INTO people (unionid, created_at) VALUES (?, ?)", [unionid, now]
    ).lastrowid


def _merge_people(db, keep, dropped):
    """Move everything ``dropped`` owns to ``keep`` (one transaction, the caller's)."""
    keep_id, drop_id = keep["id"], dropped["id"]
    db.execute("UPDATE wechat_users SET person_id = ? WHERE person_id = ?", [keep_id, drop_id])
    # Uploads ``keep`` already has (same content) go; their files are queued for removal.
    duplicate = (
        "FROM uploads d WHERE d.person_id = ? AND EXISTS (SELECT 1 FROM uploads k "
        "WHERE k.person_id = ? AND k.kind = d.kind AND k.sha256 = d.sha256)"
    )
    for column in UPLOAD_FILES:
        db.execute(
            f"INSERT INTO orphan_files (path, created_at) SELECT d.{column}, ? {duplicate} "
            f"AND d.{column} IS NOT NULL ON CONFLICT (path) DO NOTHING",
            [time.time(), drop_id, keep_id],
        )
    db.execute(f"DELETE FROM uploads WHERE id IN (SELECT d.id {duplicate})", [drop_id, keep_id])
    db.execute("UPDATE uploads SET person_id = ? WHERE person_id = ?", [keep_id, drop_id])
    db.execute("UPDATE orders SET person_id = ? WHERE person_id = ?", [keep_id, drop_id])
    _merge_share_visits(db, keep_id, drop_id)
    if dropped["account_id"] and not keep["account_id"]:
        db.execute("UPDATE people SET account_id = NULL WHERE id = ?", [drop_id])
        db.execute(
            "UPDATE people SET account_id = ? WHERE id = ?", [dropped["account_id"], keep_id]
        )
    if dropped["referral_code"] and not keep["referral_code"]:
        db.execute("UPDATE people SET referral_code = NULL WHERE id = ?", [drop_id])
        db.execute(
            "UPDATE people SET referral_code = ? WHERE id = ?", [dropped["referral_code"], keep_id]
        )
    # The dropped row stays: links shared with its own code keep counting for ``keep``.
    db.execute("UPDATE people SET merged_into = ? WHERE merged_into = ?", [keep_id, drop_id])
    db.execute("UPDATE people SET merged_into = ? WHERE id = ?", [keep_id, drop_id])
    log.info("merged person %s into %s by unionid", drop_id, keep_id)


def _merge_share_visits(db, keep_id, drop_id):
    old, new = visitor_key(drop_id), visitor_key(keep_id)
    # Visits the dropped person made: now made by ``keep`` (once per sharer).
    db.execute(
        "UPDATE share_visits SET visitor = ? WHERE visitor = ? AND NOT EXISTS "
        "(SELECT 1 FROM share_visits s WHERE s.person_id = share_visits.person_id "
        "AND s.visitor = ?)",
        [new, old, new],
    )
    db.execute("DELETE FROM share_visits WHERE visitor = ?", [old])
    # Visits the dropped person received: now ``keep``'s (once per visitor, never its own).
    db.execute(
        "UPDATE share_visits SET person_id = ? WHERE person_id = ? AND NOT EXISTS "
        "(SELECT 1 FROM share_visits s WHERE s.person_id = ? AND s.visitor = share_visits.visitor)",
        [keep_id, drop_id, keep_id],
    )
    db.execute("DELETE FROM share_visits WHERE person_id = ?", [drop_id])
    db.execute("DELETE FROM share_visits WHERE person_id = ? AND visitor = ?", [keep_id, new])


def save_profile(db, wechat_user_id, info, now=None):
    """Store the consented profile from ``sns/userinfo``."""
    values = [info.get(field) for field in PROFILE_FIELDS]
    with transaction(db):
        db.execute(
            "UPDATE wechat_users SET nickname = ?, headimgurl = ?, sex = ?, province = ?, "
            "city = ?, country = ?, profile_at = ? WHERE id = ?",
            [*values, now or time.time(), wechat_user_id],
        )


def save_web_token(db, wechat_user_id, token, now=None):
    """Store a refreshed web access_token."""
    now = now or time.time()
    with transaction(db):
        db.execute(
            "UPDATE wechat_users SET web_access_token = ?, web_token_expires = ?, "
            "refresh_token = COALESCE(NULLIF(?, ''), refresh_token), scope = ? WHERE id = ?",
            [
                token.access_token,
                now + token.expires_in,
                token.refresh_token,
                token.scope,
                wechat_user_id,
            ],
        )


def get_wechat_user(db, wechat_user_id):
    """Return the identity with its person's binding and account name, or None."""
    return one(
        db,
        "SELECT w.*, p.account_id, p.referral_code, a.username AS account_username, "
        "a.display_name AS account_display_name FROM wechat_users w "
        "JOIN people p ON p.id = w.person_id LEFT JOIN accounts a ON a.id = p.account_id "
        "WHERE w.id = ?",
        [wechat_user_id],
    )


# -- login sessions -------------------------------------------------------------------------


def create_login(db, login_id, wechat_user_id, now=None):
    """Record a login session (the cookie carries only ``login_id``)."""
    with transaction(db):
        db.execute(
            "INSERT INTO logins (id, wechat_user_id, created_at) VALUES (?, ?, ?)",
            [login_id, wechat_user_id, now or time.time()],
        )


def get_login(db, login_id, max_age, now=None):
    """Return the live login's identity row, or None if revoked, expired or unknown."""
    login = one(
        db,
        "SELECT * FROM logins WHERE id = ? AND revoked_at IS NULL AND created_at > ?",
        [login_id, (now or time.time()) - max_age],
    )
    return get_wechat_user(db, login["wechat_user_id"]) if login else None


def revoke_login(db, login_id, now=None):
    """End a login session for good."""
    with transaction(db):
        db.execute(
            "UPDATE logins SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            [now or time.time(), login_id],
        )


# -- binding --------------------------------------------------------------------------------


class BindingConflict(Exception):
    """The account or the person is already bound elsewhere."""


def bind_account(db, person_id, account_id):
    """Bind a person to an account; never silently rebinds either side."""
    with transaction(db):
        person = one(db, "SELECT account_id FROM people WHERE id = ?", [person_id])
        if person and person["account_id"] and person["account_id"] != account_id:
            raise BindingConflict("person")
        holder = one(db, "SELECT id FROM people WHERE account_id = ?", [account_id])
        if holder and holder["id"] != person_id:
            raise BindingConflict("account")
        db.execute("UPDATE people SET account_id = ? WHERE id = ?", [account_id, person_id])


def unbind_account(db, person_id):
    """Remove a person's binding."""
    with transaction(db):
        db.execute("UPDATE people SET account_id = NULL WHERE id = ?", [person_id])
