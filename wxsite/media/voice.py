"""Voice notes: WeChat gives AMR (and high-quality speex); browsers play neither."""

import logging
import os
import shutil
import subprocess

log = logging.getLogger("wxsite.media")

AMR_MAGIC = b"#!AMR\n"
#: An MP3 decoded from WeChat's speex ends so, which templates/media/voice.html checks to
#: label it 高清 (the uploads table has no column for where the MP3 came from).
HD_MP3 = ".hd.mp3"
#: AMR-NB is 50 frames a second; a frame's size depends on its mode (header bits 3–6).
_FRAME_BYTES = (13, 14, 16, 18, 20, 21, 27, 32, 6, 1, 1, 1, 1, 1, 1, 1)


def is_amr(head):
    """Return True if the bytes start like an AMR-NB file."""
    return head.startswith(AMR_MAGIC)


def amr_duration(path):
    """Return the length of an AMR-NB file in seconds (frames / 50)."""
    frames = 0
    with open(path, "rb") as f:
        f.seek(len(AMR_MAGIC))
        while True:
            header = f.read(1)
            if not header:
                break
            frames += 1
            f.seek(_FRAME_BYTES[(header[0] >> 3) & 0x0F] - 1, os.SEEK_CUR)
    return frames / 50.0


def ffmpeg_available():
    """Return True if ffmpeg is on the PATH (without it voice notes stay AMR)."""
    return shutil.which("ffmpeg") is not None


def transcode(src, dest, timeout=30):
    """Convert AMR to MP3 with ffmpeg; return True if a playable file was written."""
    ffmpeg = shutil.which("ffmpeg")
    if not ffmpeg:
        return False
    tmp = dest + ".part.mp3"
    try:
        subprocess.run(
            [
                ffmpeg,
                "-nostdin",
                "-loglevel",
                "error",
                "-y",
                "-i",
                src,
                "-ac",
                "1",
                "-b:a",
                "48k",
                tmp,
            ],
            check=True,
            timeout=timeout,
            capture_output=True,
        )
        os.replace(tmp, dest)
        return True
    except (subprocess.SubprocessError, OSError) as exc:
        log.warning("voice transcode failed: %s", type(exc).__name__)
        if os.path.exists(tmp):
            os.unlink(tmp)
        return False
