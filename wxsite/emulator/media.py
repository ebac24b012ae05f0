"""Media bytes the emulator makes up: AMR-NB voice, fake speex, and type sniffing."""

#: AMR-NB storage format magic (RFC 4867 section 5).
AMR_MAGIC = b"#!AMR\n"
#: Frame header of mode 7 (12.2 kbit/s) with the quality bit set: (7 << 3) | 0b100.
AMR_MODE7_HEADER = 0x3C
#: 244 speech bits of a mode 7 frame, padded to whole bytes.
AMR_MODE7_PAYLOAD = 31
AMR_FRAME_MS = 20
#: Recognisable prefix of the emulator's stand-in for WeChat's "high quality" speex.
SPEEX_MAGIC = b"#!SPEEX-WXEMU\n"
#: Bytes per 20 ms frame of the fake speex (about wideband quality 8, 28 kbit/s).
_SPEEX_FRAME = 70
#: WeChat stops a JS-SDK recording after 60 seconds.
VOICE_LIMIT_MS = 60_000
SPEEX_FRAME_MS = 20
# Wideband speex (16 kHz, quality 8, 70 bytes per 20 ms) of silence, as libspeex 1.2.1
# encodes it: made once with `ffmpeg -f lavfi -i anullsrc=r=16000:cl=mono -t 0.2
# -c:a libspeex -ar 16000 -ac 1 silence.ogg` and cut out of the Ogg packets. The first
# frame differs from the rest by one bit of encoder state; after it every frame is alike.
SPEEX_FIRST_FRAME = bytes.fromhex(
    "369d1b9a20000168e8e8e8e8e8e8e88400b47474747474747442005a3a3a3a3a3a3a3a"
    "21002d1d1d1d1d1d1d1d1b3b60ababababab0ababababab0ababababab0ababababab7"
)
SPEEX_SILENT_FRAME = bytes.fromhex(
    "369d1b9a20080168e8e8e8e8e8e8e88400b47474747474747442005a3a3a3a3a3a3a3a"
    "21002d1d1d1d1d1d1d1d1b3b60ababababab0ababababab0ababababab0ababababab7"
)


def amr_nb(duration_ms):
    """Return a valid AMR-NB file of *duration_ms* of near-silence (mode 7 frames)."""
    frames = max(1, round(min(duration_ms, VOICE_LIMIT_MS) / AMR_FRAME_MS))
    # Zero speech bits decode to silence; ffmpeg and phones accept them.
    frame = bytes([AMR_MODE7_HEADER]) + bytes(AMR_MODE7_PAYLOAD)
    return AMR_MAGIC + frame * frames


def amr_duration_ms(data):
    """Return the duration of an AMR-NB file made of mode 7 frames, else 0."""
    if not data.startswith(AMR_MAGIC):
        return 0
    return (len(data) - len(AMR_MAGIC)) // (1 + AMR_MODE7_PAYLOAD) * AMR_FRAME_MS


def fake_speex(duration_ms):
    """Return stand-in bytes for media/get/jssdk: a marker header, then zero frames."""
    frames = max(1, round(duration_ms / AMR_FRAME_MS))
    header = SPEEX_MAGIC + b"duration_ms=%d\n" % duration_ms
    return header + bytes(_SPEEX_FRAME * frames)


def wechat_speex(duration_ms):
    """Return *duration_ms* of silence as WeChat frames speex: a length byte before each frame."""
    frames = max(1, round(min(duration_ms, VOICE_LIMIT_MS) / SPEEX_FRAME_MS))
    first = bytes([len(SPEEX_FIRST_FRAME)]) + SPEEX_FIRST_FRAME
    rest = bytes([len(SPEEX_SILENT_FRAME)]) + SPEEX_SILENT_FRAME
    return first + rest * (frames - 1)


def speex_duration_ms(data):
    """Return 20 ms per length-prefixed block of WeChat-framed speex, or 0 if it is not framed."""
    pos = blocks = 0
    while pos < len(data):
        size = data[pos]
        if size == 0 or pos + 1 + size > len(data):
            return 0
        pos += 1 + size
        blocks += 1
    return blocks * SPEEX_FRAME_MS


def sniff_image_type(data, default="image/jpeg"):
    """Return the image MIME type the bytes start with, or *default*."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return default


#: File extension WeChat's Content-Disposition uses per content type.
EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "audio/amr": ".amr",
    "voice/speex": ".speex",
}
