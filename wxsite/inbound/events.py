"""What each pushed event changes: follow state, logins by scanning, logged clicks."""

import logging

from flask import current_app

from .. import store
from ..auth.scan import follow_scanned
from ..wechat import push

log = logging.getLogger("wxsite.inbound")


def apply(db, appid, event):
    """Apply one verified, first-seen push inside the caller's transaction; return a reply."""
    if event.is_event and event.event in (push.SUBSCRIBE, push.UNSUBSCRIBE):
        # CreateTime orders them: a retried old unsubscribe never undoes a newer subscribe.
        store.set_follow(
            db, appid, event.from_user, event.event == push.SUBSCRIBE, event.create_time
        )
    if event.is_event:
        log.info("push event %s%s", event.event, " with a scene" if event.scene else "")
        if event.scene:
            # Follow to log in: the scan marks the ticket and answers with the confirm
            # link; it never logs the desktop in by itself.
            return follow_scanned(db, event.scene, event.from_user)
        return None
    if event.msg_type == "text":
        return current_app.config["WX_PUSH_REPLY"] or None
    return None
