"""Temporary media: upload, download, the speex variant, expiry, generated AMR voice."""

import hashlib
import os
import re
import shutil
import subprocess

import pytest

from wxsite.emulator import media as media_bytes
from wxsite.wechat import protocol

from .conftest import APPID, APPID_2, SECRET_2

JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + bytes(range(256)) * 4 + b"\xff\xd9"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def get(emulator, media_id, token=None, path=protocol.MEDIA_GET):
    params = {"access_token": token or emulator.token(), "media_id": media_id}
    return emulator.get(path, params=params)


def upload(emulator, data, kind="image", name="a.jpg", mimetype="image/jpeg", token=None):
    params = {"access_token": token or emulator.token(), "type": kind}
    files = {"media": (name, data, mimetype)}
    return emulator.post(protocol.MEDIA_UPLOAD, params=params, files=files).json()


def test_upload_then_download(emulator):
    body = upload(emulator, JPEG)
    assert body["type"] == "image" and isinstance(body["created_at"], int)
    media_id = body["media_id"]
    r = get(emulator, media_id)
    assert r.status_code == 200
    assert r.content == JPEG
    assert r.headers["Content-Type"] == "image/jpeg"
    assert r.headers["Content-Length"] == str(len(JPEG))
    assert r.headers["Content-Disposition"] == f'attachment; filename="{media_id}.jpg"'


def test_media_id_shape(emulator):
    media_id = upload(emulator, JPEG)["media_id"]
    assert re.fullmatch(protocol.MEDIA_ID_PATTERN, media_id) and len(media_id) == 64


def test_image_type_comes_from_the_bytes(emulator):
    media_id = emulator.control.add_media(PNG, content_type="application/octet-stream")
    r = get(emulator, media_id)
    assert r.headers["Content-Type"] == "image/png"
    assert r.headers["Content-Disposition"].endswith('.png"')


@pytest.mark.parametrize(
    "params, errcode",
    [
        ({"type": "document"}, protocol.INVALID_MEDIA_TYPE),
        ({"access_token": "bogus"}, protocol.INVALID_CREDENTIAL),
    ],
)
def test_upload_errors(emulator, params, errcode):
    full = {"access_token": emulator.token(), "type": "image", **params}
    r = emulator.post(protocol.MEDIA_UPLOAD, params=full, files={"media": ("a", JPEG)})
    assert r.json()["errcode"] == errcode


def test_upload_without_media_field(emulator):
    params = {"access_token": emulator.token(), "type": "image"}
    r = emulator.post(protocol.MEDIA_UPLOAD, params=params, files={"other": ("a", JPEG)})
    assert r.json()["errcode"] == 41005  # 缺少多媒体文件数据 (media data missing)


@pytest.mark.parametrize("media_id", ["unknown-id", ""])
def test_unknown_media_is_40007_json(emulator, media_id):
    r = get(emulator, media_id)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    expected = protocol.INVALID_MEDIA_ID if media_id else protocol.MISSING_MEDIA_ID
    assert r.json()["errcode"] == expected


def test_media_expires_after_three_days(emulator):
    media_id = emulator.control.add_media(JPEG)
    emulator.control.advance(protocol.MEDIA_LIFETIME - 60)
    token = emulator.token()  # fetched on the moved clock
    assert get(emulator, media_id, token).content == JPEG
    emulator.control.advance(61)
    token = emulator.token()
    assert get(emulator, media_id, token).json()["errcode"] == protocol.INVALID_MEDIA_ID


def test_media_needs_a_valid_token(emulator):
    media_id = emulator.control.add_media(JPEG)
    assert get(emulator, media_id, "bogus").json()["errcode"] == protocol.INVALID_CREDENTIAL


def test_media_of_one_account_is_unknown_to_the_other(emulator):
    media_id = upload(emulator, JPEG)["media_id"]
    other = emulator.token(APPID_2, SECRET_2)
    assert get(emulator, media_id, other).json()["errcode"] == protocol.INVALID_MEDIA_ID
    bound = emulator.control.add_media(JPEG, appid=APPID)
    assert get(emulator, bound, other).json()["errcode"] == protocol.INVALID_MEDIA_ID
    unbound = emulator.control.add_media(JPEG)
    assert get(emulator, unbound, other).content == JPEG


def test_twenty_megabytes_stream(emulator):
    data = os.urandom(1024) * (20 * 1024)
    media_id = emulator.control.add_media(b"\xff\xd8\xff" + data)
    r = emulator.http.get(
        emulator.url(protocol.MEDIA_GET),
        params={"access_token": emulator.token(), "media_id": media_id},
        stream=True,
    )
    assert int(r.headers["Content-Length"]) == len(data) + 3
    digest = hashlib.sha256()
    for chunk in r.iter_content(256 * 1024):
        digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(b"\xff\xd8\xff" + data).hexdigest()


def test_amr_is_valid_for_the_duration():
    data = media_bytes.amr_nb(2500)
    assert data[:6] == b"#!AMR\n"
    frames = data[6:]
    assert len(frames) == 125 * 32  # 50 frames per second, 32 bytes each (mode 7)
    for offset in range(0, len(frames), 32):
        assert frames[offset] == 0x3C  # FT=7 (12.2 kbit/s), Q=1
    assert media_bytes.amr_duration_ms(data) == 2500
    assert media_bytes.amr_duration_ms(media_bytes.amr_nb(90_000)) == 60_000


def test_jssdk_voice_upload_becomes_amr_and_speex(emulator):
    r = emulator.post(
        "/_emu/jssdk/upload", data={"kind": "voice", "duration": "1500", "appId": APPID}
    )
    server_id = r.json()["serverId"]
    r = get(emulator, server_id)
    assert r.headers["Content-Type"] == "audio/amr"
    assert r.headers["Content-Disposition"] == f'attachment; filename="{server_id}.amr"'
    assert r.content.startswith(b"#!AMR\n") and len(r.content) == 6 + 75 * 32
    r = get(emulator, server_id, path=protocol.MEDIA_GET_JSSDK)
    assert r.headers["Content-Type"] == "voice/speex"
    assert r.headers["Content-Disposition"] == f'attachment; filename="{server_id}.speex"'
    assert r.content.startswith(media_bytes.SPEEX_MAGIC)
    assert b"duration_ms=1500" in r.content


def test_speex_only_for_voice(emulator):
    media_id = emulator.control.add_media(JPEG)
    r = get(emulator, media_id, path=protocol.MEDIA_GET_JSSDK)
    assert r.json()["errcode"] == protocol.INVALID_MEDIA_ID


def test_voice_uploaded_through_the_api_keeps_its_bytes(emulator):
    amr = media_bytes.amr_nb(1000)
    body = upload(emulator, amr, kind="voice", name="v.amr", mimetype="audio/amr")
    assert body["type"] == "voice"
    assert get(emulator, body["media_id"]).content == amr
    speex = get(emulator, body["media_id"], path=protocol.MEDIA_GET_JSSDK).content
    assert b"duration_ms=1000" in speex


def test_jssdk_image_upload_and_download(emulator):
    files = {"file": ("photo.jpg", JPEG, "image/jpeg")}
    r = emulator.post("/_emu/jssdk/upload", data={"kind": "image", "appId": APPID}, files=files)
    server_id = r.json()["serverId"]
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert get(emulator, server_id).content == JPEG
    r = emulator.get(f"/_emu/jssdk/media/{server_id}")
    assert r.content == JPEG and r.headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize(
    "data",
    [{"kind": "image"}, {"kind": "video"}, {"kind": "voice", "appId": "wx0000000000000bad"}],
)
def test_jssdk_upload_refuses_bad_input(emulator, data):
    r = emulator.post("/_emu/jssdk/upload", data=data)
    assert "serverId" not in r.json()


def test_control_media_needs_body_and_known_type(emulator):
    assert emulator.post("/_emu/media?type=image").status_code == 400
    assert emulator.post("/_emu/media?type=video", data=b"x").status_code == 400
    assert emulator.post("/_emu/media?type=image&appid=nope", data=b"x").status_code == 400


def test_reset_forgets_media(emulator):
    media_id = emulator.control.add_media(JPEG)
    emulator.control.reset()
    assert get(emulator, media_id).json()["errcode"] == protocol.INVALID_MEDIA_ID


@pytest.mark.skipif(not shutil.which("ffmpeg"), reason="ffmpeg not installed")
def test_ffmpeg_decodes_the_amr(tmp_path):
    source = tmp_path / "voice.amr"
    source.write_bytes(media_bytes.amr_nb(2000))
    target = tmp_path / "voice.wav"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(source), "-f", "wav", "-y", str(target)],
        check=True,
        timeout=20,
    )
    # 2 s of 8 kHz 16-bit mono PCM, plus the WAV header.
    assert 32_000 <= target.stat().st_size <= 32_200
