"""App-wide error pages and JSON errors: a clear Chinese-first answer, never a traceback."""

import logging
import socket
from urllib.parse import urlsplit

from flask import current_app, has_app_context, jsonify, make_response, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from . import store
from .wechat import MediaTooLarge, WeChatError
from .wechat import protocol

log = logging.getLogger("wxsite")

#: status → (title, detail) shown to people.
MESSAGES = {
    400: ("请求无效", "链接或表单内容有误。请返回上一页，刷新后再操作一次。"),
    403: ("没有权限", "你无权访问这个页面。"),
    404: ("页面不存在", "你要找的页面不存在或已被删除。"),
    405: ("请求方式不正确", "请从页面上的按钮操作。"),
    413: ("内容过大", "上传的内容超过了大小限制，请换小一些的文件再试。"),
    429: ("操作太频繁", "请稍后再试。"),
    500: ("服务器出错了", "我们已记录这个问题，请稍后重试。"),
    503: ("服务繁忙", "请稍后重试。"),
}


def wants_json():
    """Return True when the client asked for JSON (fetch/XHR and the JSON endpoints)."""
    if request.is_json or request.path.startswith("/jssdk/"):
        return True
    accept = request.accept_mimetypes
    return accept["application/json"] > accept["text/html"]


def error_response(status, title, detail, code=None, retry_url=None):
    """Render the error page (or JSON) with ``status``."""
    if wants_json():
        body = {"error": code or title, "message": f"{title}：{detail}" if detail else title}
        return jsonify(body), status
    html = render_template(
        "error.html", status=status, title=title, detail=detail, retry_url=retry_url
    )
    return html, status


def wechat_failure(exc):
    """Return (status, title, detail) for a WeChat error, logging only errcode and hint."""
    if exc.hint:
        log.error("wechat %s errcode=%s: %s", exc.path, exc.errcode, exc.hint)
    else:
        log.warning("wechat %s errcode=%s %s", exc.path, exc.errcode, exc.errmsg)
    if isinstance(exc, MediaTooLarge):
        return 413, "文件过大", f"每个文件不能超过 {media_limit()}，请选择小一些的文件。"
    if exc.misconfigured:
        return 503, "服务配置错误", "网站的微信配置有误，请联系管理员。"
    if exc.errcode == protocol.QUOTA_REACHED:
        return 503, "服务繁忙", "微信接口调用次数已达上限，请稍后再试。"
    if exc.unavailable and has_app_context() and current_app.config.get("WX_EMULATOR"):
        url = current_app.config["WXSITE_EMULATOR_URL"]
        if not listening(url):
            return 503, "微信服务暂时不可用", EMULATOR_DOWN.format(url=url)
    return 503, "微信服务暂时不可用", "请稍后重试。"


def media_limit():
    """The largest media file accepted (WXSITE_MEDIA_MAX_BYTES), as people read it: ``10 MB``."""
    limit = current_app.config["WXSITE_MEDIA_MAX_BYTES"] if has_app_context() else None
    if not limit:
        return "大小限制"
    mb = limit / (1024 * 1024)
    return f"{mb:.0f} MB" if mb >= 1 and mb == int(mb) else f"{mb:.1f} MB"


#: Emulator mode, and no emulator answers: what the developer reading the page must do.
EMULATOR_DOWN = (
    "模拟器没有运行（WXSITE_EMULATOR_URL={url} 没有响应）。"
    "请在另一个终端运行 flask --app wsgi wx emulator，"
    "或用 make run 同时启动网站和模拟器，然后重试。"
)


def listening(url, timeout=0.5):
    """Tell whether something accepts connections at *url*'s host and port."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def init_app(app):
    """Register the handlers on ``app``."""

    @app.errorhandler(CSRFError)
    def csrf_error(exc):
        return error_response(
            400,
            "页面已过期，请刷新后重试",
            "页面打开太久，或你已在别处退出登录。请返回上一页，刷新后再提交一次。",
            code="csrf",
        )

    @app.errorhandler(HTTPException)
    def http_error(exc):
        from .inbound import views as inbound  # (imports the pay blueprint, which imports us)

        if request.path in inbound.PATHS:  # WeChat calling with a wrong method: no blueprint
            response = make_response(inbound.refusal(exc.code, exc.name))
        else:
            response = make_response(
                error_response(exc.code, *MESSAGES.get(exc.code, (exc.name, "")))
            )
        if exc.code == 405 and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(WeChatError)
    def wechat_error(exc):
        status, title, detail = wechat_failure(exc)
        return error_response(status, title, detail, code=f"wechat_{exc.errcode or 'unavailable'}")

    @app.errorhandler(store.Busy)
    def database_busy(exc):
        log.error("database busy: %s", exc)
        return error_response(503, "服务繁忙", "请稍后重试。", code="database_busy")

    @app.errorhandler(store.BadValue)
    def database_refused_value(exc):
        log.warning("a value the database cannot hold: %s", exc)
        return error_response(
            400, "请求无效", "请求中含有无法保存的字符，请检查后重试。", code="bad_value"
        )

    @app.errorhandler(store.Unavailable)
    def database_unavailable(exc):
        log.error("database unavailable: %s", exc)
        return error_response(
            503, "服务暂时不可用", "数据库暂时无法访问，请稍后重试。", code="database_unavailable"
        )

    @app.errorhandler(Exception)
    def unexpected(exc):
        log.exception("unhandled error on %s", request.path)
        return error_response(500, *MESSAGES[500])
