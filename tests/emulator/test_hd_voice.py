"""HD voice: media/get/jssdk answers given speex bytes as is, or made-up real speex frames."""

import os
import shutil
import subprocess

import pytest

from wxsite.emulator import media as media_bytes
from wxsite.wechat import protocol

from .conftest import APPID

FFMPEG = shutil.which("ffmpeg")


def jssdk(emulator, media_id):
    params = {"access_token": emulator.token(), "media_id": media_id}
    return emulator.get(protocol.MEDIA_GET_JSSDK, params=params)


def speex_like(blocks=25):
    # Any bytes will do: the emulator answers them as given.
    return (bytes([10]) + bytes(range(10))) * blocks


def test_speex_body_is_answered_as_is(emulator):
    data = speex_like(25)
    media_id = emulator.control.add_media(
        data, type="voice", content_type="voice/speex", speex=True
    )
    r = jssdk(emulator, media_id)
    assert r.content == data
    assert r.headers["Content-Type"] == "voice/speex"
    assert r.headers["Content-Disposition"] == f'attachment; filename="{media_id}.speex"'
    assert r.headers["Content-Length"] == str(len(data))
    # The AMR copy is silence as long as the speex: 25 blocks of 20 ms.
    amr = emulator.get(
        protocol.MEDIA_GET, params={"access_token": emulator.token(), "media_id": media_id}
    )
    assert amr.headers["Content-Type"] == "audio/amr"
    assert media_bytes.amr_duration_ms(amr.content) == 500


def test_speex_can_be_attached_to_a_voice(emulator):
    amr = media_bytes.amr_nb(1000)
    speex = media_bytes.wechat_speex(1000)
    media_id = emulator.control.add_media(
        amr, type="voice", content_type="audio/amr", appid=APPID, speex=speex
    )
    assert jssdk(emulator, media_id).content == speex
    params = {"access_token": emulator.token(), "media_id": media_id}
    assert emulator.get(protocol.MEDIA_GET, params=params).content == amr


def test_speex_goes_with_voice_only(emulator):
    assert emulator.post("/_emu/media?type=image&speex=1", data=b"x").status_code == 400
    image_id = emulator.control.add_media(b"\xff\xd8\xff" + bytes(100))
    assert emulator.post(f"/_emu/media/{image_id}/speex", data=b"x").status_code == 400
    assert emulator.post("/_emu/media/nothing/speex", data=b"x").status_code == 400
    voice_id = emulator.control.add_media(media_bytes.amr_nb(100), "voice", "audio/amr")
    assert emulator.post(f"/_emu/media/{voice_id}/speex", data=b"").status_code == 400


def test_unframed_speex_body_gets_a_one_second_amr(emulator):
    media_id = emulator.control.add_media(b"\x00garbage", type="voice", speex=True)
    params = {"access_token": emulator.token(), "media_id": media_id}
    amr = emulator.get(protocol.MEDIA_GET, params=params).content
    assert media_bytes.amr_duration_ms(amr) == 1000
    assert jssdk(emulator, media_id).content == b"\x00garbage"


def test_wechat_speex_is_framed_one_frame_per_20ms():
    data = media_bytes.wechat_speex(1000)
    assert len(data) == 50 * 71
    assert data[0] == 70 and data[1:71] == media_bytes.SPEEX_FIRST_FRAME
    for start in range(71, len(data), 71):
        assert data[start] == 70 and data[start + 1 : start + 71] == media_bytes.SPEEX_SILENT_FRAME
    assert media_bytes.speex_duration_ms(data) == 1000
    assert media_bytes.speex_duration_ms(media_bytes.wechat_speex(90_000)) == 60_000
    assert media_bytes.speex_duration_ms(data[:-1]) == 0


def test_made_up_speex_is_the_stand_in_until_switched_to_real(emulator):
    upload = {"kind": "voice", "duration": "1500", "appId": APPID}
    server_id = emulator.post("/_emu/jssdk/upload", data=upload).json()["serverId"]
    assert jssdk(emulator, server_id).content.startswith(media_bytes.SPEEX_MAGIC)
    assert emulator.control.real_speex(True) == {"real": True}
    real = jssdk(emulator, server_id)
    assert real.content == media_bytes.wechat_speex(1500)
    assert real.headers["Content-Length"] == str(75 * 71)
    emulator.control.reset()
    assert emulator.control.call("GET", "/speex") == {"real": False}


def test_real_speex_setting(make_emulator):
    emu = make_emulator(EMU_REAL_SPEEX=True)
    media_id = emu.control.add_media(media_bytes.amr_nb(400), "voice", "audio/amr")
    assert jssdk(emu, media_id).content == media_bytes.wechat_speex(400)


def _libspeex():
    if not FFMPEG:
        return False
    encoders = subprocess.run([FFMPEG, "-hide_banner", "-encoders"], capture_output=True)
    return b"libspeex" in encoders.stdout


def _ogg_packets(data):
    packets, pending, pos = [], b"", 0
    while pos < len(data):
        assert data[pos : pos + 4] == b"OggS"
        count = data[pos + 26]
        lacing = data[pos + 27 : pos + 27 + count]
        body = pos + 27 + count
        for size in lacing:
            pending += data[body : body + size]
            body += size
            if size < 255:
                packets.append(pending)
                pending = b""
        pos = body
    return packets


@pytest.mark.skipif(not _libspeex(), reason="needs ffmpeg with libspeex")
def test_frames_are_what_libspeex_makes_of_silence(tmp_path):
    out = os.path.join(tmp_path, "silence.ogg")
    subprocess.run(
        [FFMPEG, "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi"]
        + ["-i", "anullsrc=r=16000:cl=mono", "-t", "0.2"]
        + ["-c:a", "libspeex", "-ar", "16000", "-ac", "1", out],
        check=True,
        capture_output=True,
    )
    with open(out, "rb") as f:
        header, _comments, *frames = _ogg_packets(f.read())
    assert header.startswith(b"Speex   ")
    assert frames[0] == media_bytes.SPEEX_FIRST_FRAME
    assert set(frames[1:]) == {media_bytes.SPEEX_SILENT_FRAME}


@pytest.mark.skipif(not _libspeex(), reason="needs ffmpeg with libspeex")
def test_the_site_decodes_the_made_up_speex(tmp_path):
    # A cross-check only: the emulator's bytes come from libspeex, not from the site.
    from wxsite.media import speex

    frames = speex.frames(media_bytes.wechat_speex(1000))
    assert len(frames) == 50
    assert speex.to_mp3(frames, str(tmp_path / "voice.mp3"))
