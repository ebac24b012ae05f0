"""Small Flask helpers shared by the emulator's blueprints."""

from flask import current_app, jsonify, request, url_for


def state():
    """Return the running emulator's :class:`~wxsite.emulator.state.EmulatorState`."""
    return current_app.extensions["wxemu"]


def wx_json(payload):
    """Answer *payload* as WeChat does: HTTP 200, JSON, real UTF-8."""
    return jsonify(payload)


def external_url(endpoint, **values):
    """Return an absolute URL of *endpoint*, based on EMU_PUBLIC_URL when it is set."""
    public = current_app.config.get("EMU_PUBLIC_URL")
    if public:
        return public.rstrip("/") + url_for(endpoint, **values)
    return url_for(endpoint, _external=True, **values)


def request_json():
    """Return the request's JSON object whatever its Content-Type, or {}."""
    # The fake JS-SDK posts text/plain to skip CORS preflights, so don't insist on JSON.
    data = request.get_json(force=True, silent=True)
    return data if isinstance(data, dict) else {}


def bad_request(message):
    """Answer a malformed control-API call with HTTP 400 and what is wrong."""
    response = jsonify({"error": message})
    response.status_code = 400
    return response
