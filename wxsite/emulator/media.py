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
