"""The request line and the records of its request carry the id the response names."""

import io
import logging
import re


def _site_handler():
    return next(h for h in logging.getLogger("wxsite").handlers if getattr(h, "_wxsite", False))


def test_the_request_line_and_other_records_carry_the_response_id(app):
    @app.get("/noted")
    def noted():
        logging.getLogger("wxsite.test").warning("inside")
        return "ok"

    handler = _site_handler()
    stream = io.StringIO()
    saved, handler.stream = handler.stream, stream
    try:
        response = app.test_client().get("/noted?code=SECRET")
    finally:
        handler.stream = saved
    rid = response.headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{12}", rid)
    assert response.headers.getlist("X-Request-Id") == [rid]
    lines = stream.getvalue().splitlines()
    inside = [line for line in lines if line.endswith("wxsite.test: inside")]
    request = [line for line in lines if " wxsite.request: GET /noted 200 " in line]
    assert len(inside) == 1 and f" WARNING [{rid}] " in inside[0]
    assert len(request) == 1 and f" INFO [{rid}] " in request[0]
    assert request[0].endswith(" user=-") and "SECRET" not in stream.getvalue()


def test_records_outside_a_request_say_dash(app):
    handler = _site_handler()
    stream = io.StringIO()
    saved, handler.stream = handler.stream, stream
    try:
        logging.getLogger("wxsite.test").warning("outside")
    finally:
        handler.stream = saved
    assert " WARNING [-] wxsite.test: outside" in stream.getvalue()
