"""App-wide error pages and JSON errors: a clear Chinese-first answer, never a traceback."""

import logging

from flask import jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from . import store
from .wechat import MediaTooLarge, WeChatError
from .wechat import protocol

log = logging.getLogger("wxsite")

#: status → (title, detail) shown to people.
MESSAGES = {
    400: ("请求无效", "链接或表单内容有误，请返回重试。"),
    403: ("没有权限", "你无权访问这个页面。"),
    404: ("页面不存在", "你要找的页面不存在或已被删除。"),
    405: ("请求方式不正确", "请从页面上的按钮操作。"),
    413: ("内容过大", "上传的内容超过了大小限制。"),
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
        return 413, "文件过大", "请选择小一些的文件。"
    if exc.misconfigured:
        return 503, "服务配置错误", "网站的微信配置有误，请联系管理员。"
    if exc.errcode == protocol.QUOTA_REACHED:
        return 503, "服务繁忙", "微信接口调用次数已达上限，请稍后再试。"
    return 503, "微信服务暂时不可用", "请稍后重试。"


def init_app(app):
    """Register the handlers on ``app``."""

    @app.errorhandler(CSRFError)
    def csrf_error(exc):
        return error_response(400, "页面已过期，请刷新后重试", "", code="csrf")

    @app.errorhandler(HTTPException)
    def http_error(exc):
        title, detail = MESSAGES.get(exc.code, (exc.name, ""))
        response = error_response(exc.code, title, detail)
        if exc.code == 405 and exc.valid_methods:
            response = (*response, {"Allow": ", ".join(exc.valid_methods)})
        return response

    @app.errorhandler(WeChatError)
    def wechat_error(exc):
        status, title, detail = wechat_failure(exc)
        return error_response(status, title, detail, code=f"wechat_{exc.errcode or 'unavailable'}")

    @app.errorhandler(store.Busy)
    def database_busy(exc):
        log.error("database busy: %s", exc)
        return error_response(503, "服务繁忙", "请稍后重试。", code="database_busy")

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
