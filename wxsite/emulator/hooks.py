"""App-wide request hooks: counters and fault injection, CORS, WeChat error bodies."""

import time

from flask import Response, g, request
from werkzeug.http import HTTP_STATUS_CODES

from . import wechat_facts as facts
from .state import FAULT_PATHS, ApiError
from .web import state, wx_json

_FAULT_PATHS = frozenset(FAULT_PATHS)
#: Pieces of a made-up (zero-padded) media body.
_PAD_CHUNK = 64 * 1024
# Called from the site's pages (another origin): the fake JS-SDK and what it talks to.
_CORS_PREFIXES = (
    "/_emu/jssdk/",
    "/_emu/events",
    "/_emu/avatar/",
    "/_emu/static/",
    "/_emu/pay/confirm",
)


def _gateway_page(status):
    phrase = HTTP_STATUS_CODES.get(status, "Error")
    # What WeChat's front proxies send when the service behind them fails.
    return (
        f"<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {phrase}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    )


def apply_fault():
    """Count a call of a WeChat path and answer with its queued fault, if any."""
    if request.method == "OPTIONS" or request.path not in _FAULT_PATHS:
        return None
    fault = state().hit(request.path)
    if fault is None:
        return None
    if fault.shapes_body:
        g.wxemu_shape = fault
    if fault.stall:
        # Wall-clock sleep: the point is to make the caller's HTTP timeout fire.
        time.sleep(fault.stall)
    if fault.errcode is not None:
        return wx_json(ApiError(fault.errcode, fault.errmsg).body())
    if fault.status is not None:
        return Response(_gateway_page(fault.status), fault.status, content_type="text/html")
    if fault.body is not None:
        return Response(fault.body, 200, content_type=fault.content_type)
    return None


def shape_answer(response):
    """Send a faulted call's answer the way its fault says: dripped, chunked or resized."""
    fault = g.pop("wxemu_shape", None)
    if fault is None:
        return response
    # Only a media answer is resized; WeChat's JSON errors keep their bytes.
    size = fault.size if fault.size is not None and not response.is_json else None
    length = size if size is not None else response.content_length
    delivery = state().add_delivery(request.path, length)
    response.response = _deliver(response.iter_encoded(), fault, size, delivery)
    response.direct_passthrough = True
    if fault.chunked:
        # werkzeug then sends Transfer-Encoding: chunked.
        del response.headers["Content-Length"]
    elif length is not None:
        response.content_length = length
    return response


def _deliver(pieces, fault, size, delivery):
    # Counts what the server really wrote: a piece counts once the next one is asked for.
    try:
        if size is not None:
            pieces = _resized(pieces, size)
        if fault.drip is not None:
            pieces = _dripped(pieces, fault.drip_bytes, fault.drip)
        for piece in pieces:
            yield piece
            delivery.sent += len(piece)
        delivery.state = "done"
    finally:
        if delivery.state == "sending":
            delivery.state = "cut"


def _resized(pieces, size):
    left = size
    for piece in pieces:
        if left <= 0:
            break
        piece = piece[:left]
        left -= len(piece)
        if piece:
            yield piece
    padding = bytes(min(left, _PAD_CHUNK))
    while left > 0:
        piece = padding[: min(left, _PAD_CHUNK)]
        left -= len(piece)
        yield piece


def _dripped(pieces, piece_size, every):
    first = True
    for piece in pieces:
        for start in range(0, len(piece), piece_size):
            if not first:
                # Wall-clock sleep: the point is to outlast the caller's whole budget.
                time.sleep(every)
            first = False
            yield piece[start : start + piece_size]


def add_cors(response):
    """Let the site's pages (another origin) use the fake JS-SDK's endpoints."""
    path = request.path
    if path == facts.EMULATOR_JSSDK_PATH or path.startswith(_CORS_PREFIXES):
        headers = response.headers
        headers["Access-Control-Allow-Origin"] = "*"
        headers["Access-Control-Allow-Methods"] = "GET, POST, DELETE, OPTIONS"
        headers["Access-Control-Allow-Headers"] = "Content-Type"
        headers["Access-Control-Max-Age"] = "600"
        headers["Cross-Origin-Resource-Policy"] = "cross-origin"
        if request.headers.get("Access-Control-Request-Private-Network"):
            headers["Access-Control-Allow-Private-Network"] = "true"
    return response


def api_error(error):
    """Answer an ApiError as WeChat does: HTTP 200 with errcode/errmsg."""
    return wx_json(error.body())


def init_app(app):
    """Register the hooks on the emulator *app*."""
    app.before_request(apply_fault)
    app.after_request(shape_answer)
    app.after_request(add_cors)
    app.register_error_handler(ApiError, api_error)
