"""WeChat's high-quality voice: speex in blocks after a length byte, decoded to MP3.

``cgi-bin/media/get/jssdk`` answers speex framed as ``audio/x-speex-with-header-byte``:
wideband speex (16 kHz, 20 ms frames of 320 samples) in blocks of one length byte followed
by that many bytes of frames, with no stream header. ffmpeg reads speex only from a
container, so the frames are checked bit by bit (which also tells real speex from garbage),
put one per packet into an Ogg/Speex stream built here, and decoded by ffmpeg.
"""

import logging
import os
import shutil
import struct
import subprocess

log = logging.getLogger("wxsite.media")

RATE = 16000
FRAME_SAMPLES = 320
MODE_WIDEBAND = 1
#: The bitstream version of libspeex 1.x modes; speexdec refuses a header with another.
BITSTREAM_VERSION = 4
#: 60 s at 50 blocks a second of the largest blocks (1 + 255 bytes) is 768 000 bytes.
MAX_BYTES = 1 << 20
#: WeChat records at most 60 s (3000 frames); twice that is surely not a voice note.
MAX_FRAMES = 6000
#: Frames per Ogg page: about a second each, the pace speexenc and ffmpeg keep.
FRAMES_PER_PAGE = 50

# Bits of a narrowband frame per submode, its wideband bit and 4-bit submode included.
_NB_BITS = (5, 43, 119, 160, 220, 300, 364, 492, 79)
# Bits of the wideband layer per submode, its wideband bit and 3-bit submode included.
_WB_BITS = (4, 36, 112, 192, 352)
# Narrowband bit 0 then submode 15: libspeex's terminator, the rest is byte padding.
_TERMINATOR = 0b01111
_SERIAL = 0x77787370


class NotSpeex(ValueError):
    """The bytes are not wideband speex in WeChat's framing."""


def frames(data):
    """Return the speex frames of WeChat-framed bytes, each alone and padded to whole bytes."""
    if len(data) > MAX_BYTES:
        raise NotSpeex(f"longer than {MAX_BYTES} bytes")
    out = []
    pos = 0
    while pos < len(data):
        size = data[pos]
        block = data[pos + 1 : pos + 1 + size]
        if size == 0:
            raise NotSpeex(f"empty block at byte {pos}")
        if len(block) < size:
            raise NotSpeex(f"block at byte {pos} cut short")
        out.extend(_split(block, pos))
        if len(out) > MAX_FRAMES:
            raise NotSpeex(f"more than {MAX_FRAMES} frames")
        pos += 1 + size
    if not out:
        raise NotSpeex("no frames")
    return out


def _split(block, offset):
    # A block may hold several frames that do not end on byte boundaries (RFC 5574), so
    # walk the bits the way libspeex's decoder does and cut out each frame.
    total = len(block) * 8
    value = int.from_bytes(block, "big")

    def bits(at, n):
        return (value >> (total - at - n)) & ((1 << n) - 1)

    out = []
    pos = 0
    ended = False
    while total - pos >= 5:
        head = bits(pos, 5)
        if head == _TERMINATOR:
            # Decoders stop at a terminator; encoders flushing a short block add several.
            pos += 5
            ended = True
            continue
        if head == 0 and total - pos < 8:
            break  # zero bits padding the block to a byte, not a silent frame
        if ended:
            raise NotSpeex(f"bits after the terminator in the block at byte {offset}")
        if head >> 4 or (head & 0xF) >= len(_NB_BITS):
            raise NotSpeex(f"no speex frame at bit {pos} of the block at byte {offset}")
        end = pos + _NB_BITS[head & 0xF]
        if end < total and bits(end, 1):
            if total - end < 4 or bits(end + 1, 3) >= len(_WB_BITS):
                raise NotSpeex(f"bad wideband layer in the block at byte {offset}")
            end += _WB_BITS[bits(end + 1, 3)]
        if end > total:
            raise NotSpeex(f"frame cut short in the block at byte {offset}")
        out.append(_padded(bits(pos, end - pos), end - pos))
        pos = end
    return out


def _padded(value, nbits):
    # libspeex pads a packet with a 0 and then 1s, which its decoder reads as "no more".
    pad = -nbits % 8
    if pad:
        value = (value << pad) | ((1 << (pad - 1)) - 1)
    return value.to_bytes((nbits + pad) // 8, "big")


def speex_header():
    """Return the 80-byte Speex header packet for WeChat's wideband mono stream."""
    return struct.pack(
        "<8s20s13i",
        b"Speex   ",
        b"1.2.1",  # the libspeex release whose bitstream the frames follow
        1,  # speex_version_id
        80,  # header_size
        RATE,
        MODE_WIDEBAND,
        BITSTREAM_VERSION,
        1,  # nb_channels
        -1,  # bitrate: unknown (WeChat does not say, and it may be VBR)
        FRAME_SAMPLES,
        0,  # vbr: unknown, which decoders ignore
        1,  # frames_per_packet: frames() gives each frame a packet of its own
        0,  # extra_headers
        0,  # reserved1
        0,  # reserved2
    )


def ogg_speex(frame_list, vendor=b"wxsite"):
    """Return an Ogg/Speex stream with ``frame_list``'s frames, one per packet."""
    comment = struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", 0)
    pages = [
        _page([speex_header()], 0, 0, 0x02),  # beginning of stream, header alone
        _page([comment], 0, 1, 0),
    ]
    last = len(frame_list)
    for start in range(0, last, FRAMES_PER_PAGE):
        chunk = frame_list[start : start + FRAMES_PER_PAGE]
        done = start + len(chunk)
        # The granule position is the sample count at the end of the page's last packet.
        flags = 0x04 if done == last else 0
        pages.append(_page(chunk, done * FRAME_SAMPLES, len(pages), flags))
    return b"".join(pages)


def _page(packets, granule, sequence, flags):
    lacing = bytearray()
    for packet in packets:
        lacing += b"\xff" * (len(packet) // 255) + bytes([len(packet) % 255])
    if len(lacing) > 255:
        raise ValueError("too many segments for one Ogg page")
    header = struct.pack(
        "<4sBBqIIIB", b"OggS", 0, flags, granule, _SERIAL, sequence, 0, len(lacing)
    )
    page = header + bytes(lacing) + b"".join(packets)
    return page[:22] + struct.pack("<I", ogg_crc(page)) + page[26:]


def _crc_table():
    table = []
    for byte in range(256):
        crc = byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
        table.append(crc & 0xFFFFFFFF)
    return tuple(table)


_CRC_TABLE = _crc_table()


def ogg_crc(data):
    """Return Ogg's CRC-32 of ``data`` (polynomial 0x04C11DB7, not reflected, from 0)."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC_TABLE[(crc >> 24) ^ byte]
    return crc


def read_frames(path):
    """Return the frames of a WeChat speex file, or None (logged) if it is not one."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
        return frames(data)
    except NotSpeex as exc:
        log.info("high-quality voice is not WeChat speex: %s", exc)
    except OSError as exc:
        log.warning("reading high-quality voice failed: %s", exc.strerror)
    return None


def decode(src, dest, timeout=30):
    """Decode a WeChat speex file to an MP3 at ``dest``; return True if one was written."""
    frame_list = read_frames(src)
    return bool(frame_list) and to_mp3(frame_list, dest, timeout)


def to_mp3(frame_list, dest, timeout=30):
    """Decode speex frames to an MP3 at ``dest`` with ffmpeg; return True if one was written."""
    ffmpeg = shutil.which("ffmpeg")
    if not ffmpeg or not frame_list:
        return False
    # ".part.mp3" is what the sweep removes if this process dies before the rename.
    tmp = dest + ".part.mp3"
    command = [ffmpeg, "-nostdin", "-loglevel", "error", "-xerror", "-y"]
    command += ["-f", "ogg", "-i", "pipe:0", "-ac", "1", "-b:a", "48k", "-f", "mp3", tmp]
    try:
        subprocess.run(
            command,
            input=ogg_speex(frame_list),
            check=True,
            timeout=timeout,
            capture_output=True,
        )
        if os.path.getsize(tmp) == 0:
            raise OSError(0, "ffmpeg wrote nothing")
        os.replace(tmp, dest)
        return True
    except (subprocess.SubprocessError, OSError) as exc:
        log.warning("speex decode failed: %s", type(exc).__name__)
        try:
            os.unlink(tmp)
        except OSError:
            pass  # never written, or not ours to remove: either way nothing to undo
        return False
