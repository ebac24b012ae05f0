"""HD voice: real speex from ffmpeg's libspeex, framed as WeChat frames it, decoded to MP3."""

import logging
import os
import random
import re
import shutil
import struct
import subprocess
import threading
from urllib.parse import parse_qs

import pytest
import requests
from werkzeug.serving import make_server

from media_helpers import JOBS_ON, jobs_settled, stored_files
from support import amr_bytes, site_config
from wxsite import create_app
from wxsite.emulator.media import fake_speex
from wxsite.media import speex
from wxsite.wechat import protocol

FFMPEG = shutil.which("ffmpeg")
FFPROBE = shutil.which("ffprobe")


def _can_encode_speex():
    if not (FFMPEG and FFPROBE):
        return False
    encoders = subprocess.run([FFMPEG, "-hide_banner", "-encoders"], capture_output=True)
    return b"libspeex" in encoders.stdout


pytestmark = pytest.mark.skipif(not _can_encode_speex(), reason="needs ffmpeg with libspeex")

SECONDS = 2.5
# A 440 Hz tone and a 5 kHz one: only a 16 kHz (wideband) stream can carry the second.
TONES = "aevalsrc=0.4*sin(2*PI*440*t)+0.2*sin(2*PI*5000*t):s=16000:d={seconds}"


def encode_ogg(directory, *options, seconds=SECONDS):
    """Return Ogg/Speex bytes that ffmpeg's libspeex encoder made from the tones."""
    out = os.path.join(directory, "source.ogg")
    subprocess.run(
        [FFMPEG, "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi"]
        + ["-i", TONES.format(seconds=seconds), "-c:a", "libspeex", "-ar", "16000", "-ac", "1"]
        + [*options, out],
        check=True,
        capture_output=True,
    )
    with open(out, "rb") as f:
        return f.read()


def ogg_pages(data):
    """Yield (page bytes, header fields, packet lengths' lacing, body) of each Ogg page."""
    pos = 0
    while pos < len(data):
        fields = struct.unpack_from("<4sBBqIIIB", data, pos)
        assert fields[0] == b"OggS"
        lacing = data[pos + 27 : pos + 27 + fields[7]]
        start = pos + 27 + len(lacing)
        end = start + sum(lacing)
        yield data[pos:end], fields, lacing, data[start:end]
        pos = end


def ogg_packets(data):
    """Return the packets of an Ogg stream, checking every page's CRC."""
    packets, current = [], b""
    for page, fields, lacing, body in ogg_pages(data):
        assert speex.ogg_crc(page[:22] + bytes(4) + page[26:]) == fields[6]
        offset = 0
        for size in lacing:
            current += body[offset : offset + size]
            offset += size
            if size < 255:
                packets.append(current)
                current = b""
    return packets


def wechat_framing(packets):
    """Frame speex packets as media/get/jssdk sends them: a length byte before each."""
    return b"".join(bytes([len(p)]) + p for p in packets)


def wechat_speex(directory, *options, seconds=SECONDS):
    """Return a real speex recording in WeChat's framing (header and comment dropped)."""
    return wechat_framing(ogg_packets(encode_ogg(directory, *options, seconds=seconds))[2:])


def probe(path):
    """Return (duration in seconds, sample rate) of an audio file."""
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-show_entries", "format=duration:stream=sample_rate"]
        + ["-of", "default=noprint_wrappers=1", path],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    values = dict(line.split("=", 1) for line in out.split())
    return float(values["duration"]), int(values["sample_rate"])


def mean_volume(path, filters=""):
    """Return ffmpeg's mean volume of a file in dB (after ``filters``)."""
    err = subprocess.run(
        [FFMPEG, "-nostdin", "-hide_banner", "-i", path, "-af", filters + "volumedetect"]
        + ["-f", "null", "-"],
        check=True,
        capture_output=True,
        text=True,
    ).stderr
    return float(re.search(r"mean_volume: (-?[\d.]+|-inf) dB", err).group(1))


def pcm(data_or_path, directory):
    """Return what ffmpeg decodes an Ogg stream (bytes or a path) to, as 16-bit PCM."""
    path = data_or_path
    if isinstance(data_or_path, bytes):
        path = os.path.join(directory, "stream.ogg")
        with open(path, "wb") as f:
            f.write(data_or_path)
    return subprocess.run(
        [FFMPEG, "-nostdin", "-loglevel", "error", "-i", path, "-f", "s16le", "-"],
        check=True,
        capture_output=True,
    ).stdout


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """A 2.5 s speex recording in WeChat's framing."""
    return wechat_speex(str(tmp_path_factory.mktemp("speex")))


def test_decodes_to_an_mp3_of_the_recording(recording, tmp_path):
    dest = str(tmp_path / "voice.mp3")
    frames = speex.frames(recording)
    assert len(frames) == SECONDS * 50
    assert speex.to_mp3(frames, dest)
    duration, rate = probe(dest)
    # MP3 adds an encoder delay and pads its last frame: tens of milliseconds.
    assert duration == pytest.approx(SECONDS, abs=0.15) and rate == 16000
    assert mean_volume(dest) > -20
    # The 5 kHz tone is there: the wideband layer was decoded, not only the 8 kHz core.
    assert mean_volume(dest, "highpass=f=3800,highpass=f=3800,") > -30
    assert os.listdir(tmp_path) == ["voice.mp3"]


def test_decode_reads_a_file(recording, tmp_path):
    src = tmp_path / "voice.speex"
    src.write_bytes(recording)
    assert speex.decode(str(src), str(tmp_path / "voice.mp3"))
    assert probe(str(tmp_path / "voice.mp3"))[1] == 16000


def test_our_ogg_decodes_like_ffmpegs_own(tmp_path):
    source = encode_ogg(str(tmp_path))
    frames = speex.frames(wechat_framing(ogg_packets(source)[2:]))
    ours = speex.ogg_speex(frames)
    assert pcm(ours, str(tmp_path)) == pcm(str(tmp_path / "source.ogg"), str(tmp_path))


def test_ogg_pages_header_and_granules(recording, tmp_path):
    frames = speex.frames(recording)
    data = speex.ogg_speex(frames)
    pages = list(ogg_pages(data))
    flags = [fields[2] for _, fields, _, _ in pages]
    assert flags[0] == 0x02 and flags[-1] == 0x04 and set(flags[1:-1]) == {0}
    assert [fields[5] for _, fields, _, _ in pages] == list(range(len(pages)))
    assert len({fields[4] for _, fields, _, _ in pages}) == 1
    granules = [fields[3] for _, fields, _, _ in pages]
    assert granules[:2] == [0, 0] and granules[-1] == len(frames) * 320
    assert granules == sorted(granules)
    packets = ogg_packets(data)
    header = struct.unpack("<8s20s13i", packets[0])
    assert header[0] == b"Speex   " and header[2:6] == (1, 80, 16000, 1)
    assert header[6:8] == (4, 1) and header[9] == 320 and header[11] == 1
    assert packets[2:] == frames
    path = tmp_path / "ours.ogg"
    path.write_bytes(data)
    # ffprobe takes an Ogg stream's duration from its last granule position.
    assert probe(str(path)) == (SECONDS, 16000)


def test_ogg_crc_known_value():
    # Ogg's CRC is CRC-32/POSIX (cksum) without the final inversion: ~0x765E7680.
    assert speex.ogg_crc(b"123456789") == 0x89A1897F


@pytest.mark.parametrize(
    "options",
    [
        ["-frames_per_packet", "3"],  # several frames in one block, not byte-aligned
        ["-vad", "1", "-dtx", "1"],  # silent and DTX frames of a few bytes
        ["-abr", "1", "-b:a", "16k"],  # variable frame sizes
        ["-cbr_quality", "10"],  # the largest wideband frames
    ],
    ids=["3-per-block", "dtx", "abr", "q10"],
)
def test_encoder_variants_decode(options, tmp_path):
    frames = speex.frames(wechat_speex(str(tmp_path), *options))
    assert len(frames) == SECONDS * 50
    dest = str(tmp_path / "voice.mp3")
    assert speex.to_mp3(frames, dest)
    assert probe(dest)[0] == pytest.approx(SECONDS, abs=0.15)


def garbage_inputs(recording):
    """Return (name, bytes) of inputs that are not WeChat speex."""
    noise = random.Random(16).randbytes(4000)
    ogg_like = b"OggS\x00\x02" + bytes(80)
    first = recording[1 : 1 + recording[0]]
    return [
        ("empty", b""),
        ("zero length byte", b"\x00" + recording),
        ("cut in a block", recording[:-1]),
        ("length past the end", recording + b"\x40\x01\x02"),
        ("noise", noise),
        ("amr", amr_bytes(1)),
        ("emulator stand-in", fake_speex(1000)),
        ("ogg", ogg_like),
        ("json error", b'{"errcode":40007,"errmsg":"invalid media_id"}'),
        ("junk after a frame", bytes([len(first) + 2]) + first + b"\xff\xff"),
    ]


def test_garbage_is_refused_and_leaves_no_file(recording, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="wxsite.media")
    for name, data in garbage_inputs(recording):
        with pytest.raises(speex.NotSpeex):
            speex.frames(data)
        src = tmp_path / "in.speex"
        src.write_bytes(data)
        caplog.clear()
        assert speex.read_frames(str(src)) is None, name
        assert len(caplog.records) == 1, name
        assert not speex.decode(str(src), str(tmp_path / "out.mp3")), name
        assert sorted(os.listdir(tmp_path)) == ["in.speex"], name


def test_too_long_is_refused():
    with pytest.raises(speex.NotSpeex, match="bytes"):
        speex.frames(b"\x01\x00" * (speex.MAX_BYTES // 2 + 1))
    with pytest.raises(speex.NotSpeex, match="frames"):
        # Blocks of at least five 5-bit silent frames: few bytes, yet too long a recording.
        speex.frames((b"\x05" + bytes(5)) * (speex.MAX_FRAMES // 5 + 1))


def test_missing_file_is_false(tmp_path):
    assert not speex.decode(str(tmp_path / "nothing.speex"), str(tmp_path / "out.mp3"))
    assert os.listdir(tmp_path) == []


def test_decode_that_does_not_finish_leaves_nothing(recording, tmp_path):
    dest = str(tmp_path / "voice.mp3")
    assert not speex.to_mp3(speex.frames(recording), dest, timeout=1e-6)
    assert os.listdir(tmp_path) == []


# -- through the site: POST /voice with WeChat's real speex -------------------------------


class JssdkFront:
    """WeChat's API: the emulator, except that media/get/jssdk answers ``self.speex``."""

    def __init__(self, emulator_url):
        self.emulator_url = emulator_url
        self.speex = b""
        self.server = make_server("127.0.0.1", 0, self, threaded=True)
        self.base_url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def __call__(self, environ, start_response):
        query = environ.get("QUERY_STRING", "")
        if environ["PATH_INFO"] == protocol.MEDIA_GET_JSSDK:
            media_id = parse_qs(query).get("media_id", [""])[0]
            headers = [
                ("Content-Type", "voice/speex"),
                ("Content-Length", str(len(self.speex))),
                ("Content-Disposition", f'attachment; filename="{media_id}.speex"'),
            ]
            start_response("200 OK", headers)
            return [self.speex]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        upstream = requests.request(
            environ["REQUEST_METHOD"],
            self.emulator_url + environ["PATH_INFO"] + ("?" + query if query else ""),
            data=environ["wsgi.input"].read(length) if length else None,
            headers={"Content-Type": environ.get("CONTENT_TYPE", "")},
            timeout=10,
        )
        keep = ("Content-Type", "Content-Disposition")
        headers = [(k, v) for k, v in upstream.headers.items() if k in keep]
        start_response(f"{upstream.status_code} {upstream.reason}", headers)
        return [upstream.content]

    def shutdown(self):
        self.server.shutdown()
        self.thread.join()


@pytest.fixture
def front(emu):
    server = JssdkFront(emu.base_url)
    yield server
    server.shutdown()


@pytest.fixture
def app(tmp_path, emu, front, media_config):
    return create_app(
        site_config(tmp_path, emu, WX_API_BASE=front.base_url, **JOBS_ON, **media_config)
    )


def voice_files(app):
    return stored_files(app, "voice")


def test_site_plays_the_hd_voice(front, emu, wechat, logged_in, live, app, tmp_path):
    front.speex = wechat_speex(str(tmp_path), seconds=2)
    media_id = emu.upload_media(amr_bytes(2), "audio/amr", kind="voice")
    response = wechat.post_json("/voice", {"server_id": media_id})
    assert response.status_code == 200, response.text
    item = response.json()["item"]
    assert emu.count(protocol.MEDIA_GET) == 1
    assert jobs_settled(app)[0]["result"] == "playable (from speex)"
    mp3 = tmp_path / "played.mp3"
    mp3.write_bytes(logged_in.get(live.url(f"/uploads/{item['id']}/play")).content)
    duration, rate = probe(str(mp3))
    # 16 kHz with sound: the AMR copy is 8 kHz (and silent here).
    assert rate == 16000 and duration == pytest.approx(2.0, abs=0.15)
    assert mean_volume(str(mp3)) > -20
    hq = logged_in.get(live.url(item["url"] + "?v=hq"))
    assert hq.content == front.speex and hq.headers["Content-Type"] == "audio/speex"
    page = logged_in.get(live.url("/voice")).text
    assert "高清</span>" in page and ".speex" not in page  # kept, served to its owner, not offered
    assert [name.rsplit(".", 1)[-1] for name in voice_files(app)] == ["amr", "mp3", "speex"]
    assert any(name.endswith(".hd.mp3") for name in voice_files(app))


def test_site_falls_back_to_the_amr(front, emu, wechat, logged_in, live, app, tmp_path):
    front.speex = wechat_speex(str(tmp_path), seconds=1)[:-3]
    media_id = emu.upload_media(amr_bytes(1), "audio/amr", kind="voice")
    item = wechat.post_json("/voice", {"server_id": media_id}).json()["item"]
    assert item["status"] == "ok" and jobs_settled(app)[0]["result"] == "playable"
    mp3 = tmp_path / "played.mp3"
    mp3.write_bytes(logged_in.get(live.url(f"/uploads/{item['id']}/play")).content)
    assert probe(str(mp3))[1] == 8000
    page = logged_in.get(live.url("/voice")).text
    assert "高清</span>" not in page and "高清原始语音" not in page
    # The broken speex is not kept, and no temp file is left behind.
    files = voice_files(app)
    assert len(files) == 2 and {f.rsplit(".", 1)[-1] for f in files} == {"amr", "mp3"}
    assert not any(f.endswith(".hd.mp3") for f in files)


def test_site_keeps_real_speex_without_ffmpeg(
    front, emu, wechat, logged_in, live, app, tmp_path, monkeypatch
):
    front.speex = wechat_speex(str(tmp_path), seconds=1)
    monkeypatch.setenv("PATH", str(tmp_path / "no-ffmpeg-here"))
    media_id = emu.upload_media(amr_bytes(1), "audio/amr", kind="voice")
    item = wechat.post_json("/voice", {"server_id": media_id}).json()["item"]
    assert item["status"] == "ok" and item["play_url"] is None
    # The job finds no ffmpeg: done, the note stays AMR (not 处理中 for ever).
    assert jobs_settled(app)[0]["result"] == "no ffmpeg: kept as AMR"
    page = logged_in.get(live.url("/voice")).text
    assert "处理中" not in page
    # The HD original is kept for a later transcode, not offered: no browser plays its framing.
    assert "下载 AMR" in page and ".speex" not in page and "高清</span>" not in page
    assert [name.rsplit(".", 1)[-1] for name in voice_files(app)] == ["amr", "speex"]
