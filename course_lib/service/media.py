"""Real ffmpeg work: probe, thumbnail, trim with progress, and sample generation.

Probe, trim and clip rendering run the ffmpeg/ffprobe command-line tools as asyncio
subprocesses (``run_process``: killed on timeout or cancel), so the event loop keeps
serving while ffmpeg works; a trim streams its ``-progress`` output to the job's
WebSocket watchers. Every ffmpeg command is built with ffmpeg-python
(``ffmpeg.input(...).output(...).compile()``); ffprobe's one fixed command is a plain
list, because ffmpeg-python has no ffprobe builder (only ``ffmpeg.probe``, which runs
it blocking and leaves it running on a timeout).

Thumbnails are decoded *in-process* with PyAV (``av``: Python bindings to FFmpeg's own
libraries, libavformat/libavcodec/libswscale), like the seed's thumbnail service, which
called a native addon instead of a process. The reason is cost: spawning the ffmpeg CLI
costs ~40 ms (process start and dynamic linking of ~200 shared libraries) while seeking,
decoding, scaling and JPEG-encoding one small frame takes ~5 ms. Spawning dominated the
cache-miss latency, so a miss could never meet the 50 ms thumbnail target. Decoding
runs in a small dedicated thread pool (FFmpeg releases the GIL while it decodes), so
the event loop keeps serving meanwhile.

Every run goes through ``VrewCraftMetrics.ffmpeg_job``: duration observed, active
gauge restored and errors counted on every path, CLI or in-process alike.

>>> build_trim_args("ffmpeg", Path("in.mp4"), Path("out.mp4"), 1.0, 3.0)[:4]
['ffmpeg', '-ss', '1.0', '-i']
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import ffmpeg

from .metrics import VrewCraftMetrics

#: Fault switch: appended to any ffmpeg/ffprobe command to make it fail for real.
BROKEN_OPTION = "-vrewcraft_injected_fault"
#: Fault switch: what an in-process thumbnail extraction fails with (there is no command
#: line to break, so the failure is raised where decoding would start).
BROKEN_MESSAGE = "injected fault: ffmpeg is broken (ffmpeg_broken in /admin/faults)"

#: JPEG quantiser of thumbnails: the CLI's ``-q:v 5`` (2 = best .. 31 = worst). ``-q:v``
#: also stamps the quality on every frame, which PyAV can't, so it is set as qmin = qmax
#: = 5 instead: that pins the encoder to it (the CLI gives byte-identical JPEGs either way).
THUMBNAIL_QSCALE = 5
#: A thoroughly corrupt file fails every packet: give up after this many instead of
#: reading it all, while tolerating a damaged packet or two the way the ffmpeg CLI does.
MAX_BAD_PACKETS = 32

#: ffprobe messages that mean "this is not a video" (the client's fault, not ours).
NOT_A_VIDEO_MARKERS = (
    "Invalid data found when processing input",
    "moov atom not found",
    "could not find codec parameters",
    "End of file",
    "Invalid argument",
)

#: Sample clips: (ffmpeg lavfi video source, sine frequency). Small, short, keyframe
#: every second (-g = fps), so seeking anywhere decodes at most 14 extra frames.
SAMPLE_SOURCES = (
    ("testsrc2", 440),
    ("testsrc", 523),
    ("smptebars", 659),
    ("rgbtestsrc", 784),
    ("yuvtestsrc", 880),
    ("pal100bars", 988),
)
SAMPLE_SIZE = "320x180"
SAMPLE_FPS = 15
#: Frame rate of upload test clips (``make_clip``).
CLIP_FPS = 10

PROCESS_TIMEOUT = 60.0


class NotAVideo(ValueError):
    """The file is not something ffprobe recognises as a video."""


class FFmpegError(RuntimeError):
    """ffmpeg, ffprobe or in-process decoding failed; ``stderr`` holds the error output.

    ``returncode`` is the process's exit code, or None for in-process (PyAV) work.

    >>> str(FFmpegError("thumbnail", None, "Invalid data found when processing input"))
    'ffmpeg thumbnail failed: Invalid data found when processing input'
    """

    def __init__(self, operation: str, returncode: int | None, stderr: str) -> None:
        self.operation = operation
        self.returncode = returncode
        self.stderr = stderr
        last = stderr.strip().splitlines()[-1] if stderr.strip() else "no error output"
        exit_code = "" if returncode is None else f" (exit {returncode})"
        super().__init__(f"ffmpeg {operation} failed{exit_code}: {last}")


@dataclass(frozen=True)
class ProbeResult:
    """What ffprobe tells us about a video file."""

    duration: float
    width: int
    height: int
    codec: str


async def _read_tail(stream: asyncio.StreamReader, keep: int = 40) -> str:
    """Drain a stream and return its last ``keep`` lines (ffmpeg can print thousands)."""
    tail: deque[str] = deque(maxlen=keep)
    async for line in stream:
        tail.append(line.decode("utf-8", "replace").rstrip())
    return "\n".join(tail)


async def _kill(proc: asyncio.subprocess.Process) -> None:
    """Kill a subprocess and reap it."""
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    await proc.wait()


async def run_process(
    args: Sequence[str],
    timeout: float = PROCESS_TIMEOUT,
    on_line: Callable[[str], Awaitable[None]] | None = None,
) -> tuple[int, bytes, str]:
    """Run a command; return (exit code, stdout, stderr tail). Killed on timeout or cancel.

    With ``on_line``, stdout is handed over line by line as it arrives (and the returned
    stdout is empty) instead of being collected.
    """
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(timeout):
            assert proc.stdout is not None and proc.stderr is not None
            out, err = await asyncio.gather(
                _read_all(proc.stdout, on_line), _read_tail(proc.stderr)
            )
            code = await proc.wait()
    except BaseException:
        await _kill(proc)
        raise
    return code, out, err


async def _read_all(
    stream: asyncio.StreamReader, on_line: Callable[[str], Awaitable[None]] | None
) -> bytes:
    """Return a stream's bytes, or pass each line to ``on_line`` and return nothing."""
    if on_line is None:
        return await stream.read()
    async for raw in stream:
        await on_line(raw.decode("utf-8", "replace"))
    return b""


def extract_thumbnail(path: Path, t: float, width: int, operation: str = "thumbnail") -> bytes:
    """Return a JPEG, ``width`` pixels wide, of the frame shown at ``t`` seconds (blocking).

    The same frame ``ffmpeg -ss T -i file -vframes 1`` gives: seek to the keyframe at or
    before ``t``, decode forward and keep the first frame whose timestamp is >= ``t``
    (the last frame if ``t`` falls inside it). Raises FFmpegError with FFmpeg's message
    if the file can't be opened or no frame can be decoded.

    >>> from course_lib.service.testing import rendered_samples
    >>> extract_thumbnail(rendered_samples() / "sample-1.mp4", 1.0, 160)[:2]
    b'\\xff\\xd8'
    """
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise FFmpegError(operation, None, "no video stream")
            stream = container.streams.video[0]
            # One thread: a 160 px thumbnail gains nothing from frame threads, and
            # starting them would cost more than the decode itself.
            stream.codec_context.thread_count = 1
            return _encode_jpeg(_frame_at(container, stream, t, operation), width)
    except av.FFmpegError as exc:
        # FFmpeg's own message ("Invalid data found when processing input"), without
        # PyAV's errno and C function name, plus which file it was about.
        raise FFmpegError(operation, None, f"{exc.strerror or exc} ({path.name})") from exc


def _frame_at(
    container: av.container.InputContainer, stream: av.VideoStream, t: float, operation: str
) -> av.VideoFrame:
    """Seek and decode forward to the frame shown at ``t`` seconds of ``stream``."""
    assert stream.time_base is not None
    target = (stream.start_time or 0) + round(t / stream.time_base)
    container.seek(target, stream=stream, backward=True)  # the keyframe at or before
    frame = None
    bad: list[av.FFmpegError] = []
    for packet in container.demux(stream):  # ends with an empty packet that flushes
        try:
            decoded = packet.decode()
        except av.error.InvalidDataError as exc:
            bad.append(exc)
            if len(bad) >= MAX_BAD_PACKETS:
                break
            continue
        for frame in decoded:
            if frame.pts is None or frame.pts >= target:
                return frame
    if frame is None:  # nothing decodable from the keyframe on
        raise bad[-1] if bad else FFmpegError(operation, None, "no frame decoded")
    return frame  # t is inside the last frame


def _encode_jpeg(frame: av.VideoFrame, width: int) -> bytes:
    """Scale ``frame`` to ``width`` (even height, aspect kept) and encode it as a JPEG."""
    # The CLI's scale=WIDTH:-2: height from the aspect ratio, rounded to an even number.
    height = max(2, round(width * frame.height / (frame.width * 2)) * 2)
    # yuvj420p (full range) is what the CLI converts to for mjpeg; bicubic is its scaler.
    image = frame.reformat(
        width=width, height=height, format="yuvj420p", interpolation="BICUBIC", threads=1
    )
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuvj420p"
    encoder.time_base = Fraction(1, 1)
    encoder.thread_count = 1
    encoder.options = {"qmin": str(THUMBNAIL_QSCALE), "qmax": str(THUMBNAIL_QSCALE)}
    return b"".join(bytes(packet) for packet in [*encoder.encode(image), *encoder.encode(None)])


def build_trim_args(ffmpeg_bin: str, src: Path, dst: Path, start: float, end: float) -> list[str]:
    """Return the trim command: re-encode [start, end) and report progress on stdout."""
    stream = ffmpeg.input(str(src), ss=start)
    # One encoder thread: trims are background work and must leave CPU for requests.
    return (
        stream.output(
            str(dst),
            t=round(end - start, 3),
            vcodec="libx264",
            preset="ultrafast",
            threads=1,
            g=SAMPLE_FPS,
            pix_fmt="yuv420p",
            acodec="aac",
            movflags="+faststart",
            format="mp4",
        )
        .global_args(
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-y",
            "-progress",
            "pipe:1",
            "-stats_period",
            "0.1",
        )
        .compile(cmd=ffmpeg_bin)
    )


def build_clip_args(
    ffmpeg_bin: str,
    dst: Path,
    seconds: float,
    source: str = "testsrc2",
    size: str = SAMPLE_SIZE,
    fps: int = SAMPLE_FPS,
    tone: int | None = None,
) -> list[str]:
    """Return the command that renders a clip from ffmpeg's test sources (+ a sine tone).

    >>> build_clip_args("ffmpeg", Path("c.mp4"), 1.0)[:5]
    ['ffmpeg', '-f', 'lavfi', '-i', 'testsrc2=size=320x180:rate=15:duration=1.0']
    """
    streams = [ffmpeg.input(f"{source}=size={size}:rate={fps}:duration={seconds}", f="lavfi")]
    audio: dict[str, object] = {}
    if tone is not None:
        streams.append(ffmpeg.input(f"sine=frequency={tone}:duration={seconds}", f="lavfi"))
        audio = {"acodec": "aac", "audio_bitrate": "32k", "ac": 1, "shortest": None}
    # One encoder thread per clip: clips are rendered in parallel, and x264's thread
    # start-up costs more than it saves at these sizes. A keyframe every second (-g).
    return (
        ffmpeg.output(
            *streams,
            str(dst),
            vcodec="libx264",
            preset="ultrafast",
            threads=1,
            g=fps,
            pix_fmt="yuv420p",
            movflags="+faststart",
            format="mp4",
            **audio,
        )
        .global_args("-hide_banner", "-loglevel", "error", "-nostdin", "-y")
        .compile(cmd=ffmpeg_bin)
    )


def parse_progress(line: str, total_seconds: float) -> float | None:
    """Return progress 0..1 from one ``-progress`` line, or None if it carries none.

    >>> parse_progress("out_time_us=1500000", 3.0)
    0.5
    >>> parse_progress("progress=end", 3.0), parse_progress("bitrate=N/A", 3.0)
    (1.0, None)
    """
    key, _, value = line.strip().partition("=")
    if key == "progress" and value == "end":
        return 1.0
    if key in ("out_time_us", "out_time_ms") and value.lstrip("-").isdigit():
        # Both keys are in microseconds (out_time_ms is misnamed in ffmpeg).
        seconds = int(value) / 1_000_000
        return max(0.0, min(1.0, seconds / total_seconds)) if total_seconds > 0 else None
    return None


class Media:
    """ffmpeg operations for one service instance.

    >>> from prometheus_client import CollectorRegistry
    >>> media = Media(VrewCraftMetrics(CollectorRegistry()), broken=lambda: False)
    >>> media.ffmpeg_bin
    'ffmpeg'
    """

    def __init__(
        self,
        metrics: VrewCraftMetrics,
        broken: Callable[[], bool],
        ffmpeg_bin: str = "ffmpeg",
        ffprobe_bin: str = "ffprobe",
        thumbnail_width: int = 160,
        thumbnail_threads: int = 2,
    ) -> None:
        self.metrics = metrics
        self.broken = broken
        self.ffmpeg_bin = ffmpeg_bin
        self.ffprobe_bin = ffprobe_bin
        self.thumbnail_width = thumbnail_width
        self.thumbnail_threads = max(1, thumbnail_threads)
        # Thumbnail decoding gets its own threads rather than asyncio.to_thread's shared
        # default pool: SQLite queries run there, and must not queue behind a burst of
        # cache misses. Created on first use (most Media objects never decode) and
        # shut down by close().
        self._decoder: ThreadPoolExecutor | None = None
        # As many extractions at once as there are decoding threads: a burst of misses
        # waits here, so vrewcraft_ffmpeg_jobs_active and the thumbnail ffmpeg duration
        # count decoding, not time spent queued behind other decodes.
        self._extract_slots = asyncio.Semaphore(self.thumbnail_threads)

    def _args(self, args: list[str]) -> list[str]:
        """Return ``args``, broken on purpose when the fault switch says so."""
        return [*args, BROKEN_OPTION] if self.broken() else args

    def _decoder_pool(self) -> ThreadPoolExecutor:
        """Return the thumbnail decoding threads, starting the pool if needed."""
        if self._decoder is None:
            self._decoder = ThreadPoolExecutor(
                max_workers=self.thumbnail_threads, thread_name_prefix="vrewcraft-thumbnail"
            )
        return self._decoder

    async def close(self) -> None:
        """Stop the decoding threads (after any extraction still running)."""
        decoder, self._decoder = self._decoder, None
        if decoder is not None:
            # In a thread: waiting for a running decode (a few ms) must not block the loop.
            await asyncio.to_thread(decoder.shutdown, wait=True, cancel_futures=True)

    # --- operations ------------------------------------------------------------------

    async def probe(self, path: Path) -> ProbeResult:
        """Return duration and video stream facts; raise NotAVideo if it isn't one.

        A file ffprobe can't parse is the client's problem (415), not an ffmpeg failure,
        so it is not counted in ``vrewcraft_ffmpeg_errors_total``; ffprobe itself failing
        (e.g. the fault switch) is.
        """
        args = self._args(
            [
                self.ffprobe_bin,
                "-v",
                "error",
                "-print_format",
                "json",
                "-show_format",
                "-show_streams",
                str(path),
            ]
        )
        with self.metrics.ffmpeg_job("probe"):
            code, out, err = await run_process(args)
            if code != 0 and not any(marker in err for marker in NOT_A_VIDEO_MARKERS):
                raise FFmpegError("probe", code, err)
        if code != 0:
            raise NotAVideo(err.strip().splitlines()[-1] if err.strip() else "unreadable")
        try:
            info = json.loads(out)
        except ValueError as exc:
            raise NotAVideo("ffprobe output was not JSON") from exc
        video = next(
            (
                s
                for s in info.get("streams", [])
                if s.get("codec_type") == "video"
                and s.get("codec_name") not in ("mjpeg", "png", "bmp")
            ),
            None,
        )
        duration = _float(info.get("format", {}).get("duration"))
        if video is None or duration is None or duration <= 0:
            raise NotAVideo("no video stream with a duration")
        return ProbeResult(
            duration=duration,
            width=int(video.get("width") or 0),
            height=int(video.get("height") or 0),
            codec=str(video.get("codec_name")),
        )

    async def thumbnail(
        self, path: Path, t: float, duration: float, operation: str = "thumbnail"
    ) -> bytes:
        """Return a JPEG of the frame at ``t`` seconds (raises FFmpegError on failure).

        Decoded in-process with PyAV on the decoding threads (see the module doc).
        ``t`` beyond the last frame's start gives the last frame; ``duration`` bounds it.
        """
        t = max(0.0, min(t, duration))
        async with self._extract_slots:
            with self.metrics.ffmpeg_job(operation):
                if self.broken():
                    raise FFmpegError(operation, None, BROKEN_MESSAGE)
                return await asyncio.get_running_loop().run_in_executor(
                    self._decoder_pool(),
                    extract_thumbnail,
                    path,
                    t,
                    self.thumbnail_width,
                    operation,
                )

    async def trim(
        self,
        src: Path,
        dst: Path,
        start: float,
        end: float,
        on_progress: Callable[[float], Awaitable[None]],
    ) -> None:
        """Re-encode [start, end) of ``src`` into ``dst``; report progress as it runs.

        Output is written next to ``dst`` under a temporary name and renamed only on
        success, so a failed or cancelled trim leaves no partial file behind.
        """
        partial = dst.with_name(f".{dst.name}.partial")
        args = _niced(self._args(build_trim_args(self.ffmpeg_bin, src, partial, start, end)))

        async def on_line(line: str) -> None:
            """Forward progress below 100 % (the job itself reports the end)."""
            progress = parse_progress(line, end - start)
            if progress is not None and progress < 1.0:
                await on_progress(progress)

        try:
            with self.metrics.ffmpeg_job("trim"):
                code, _, err = await run_process(args, on_line=on_line)
                if code != 0:
                    raise FFmpegError("trim", code, err)
            os.replace(partial, dst)
        finally:
            partial.unlink(missing_ok=True)

    async def generate_sample(self, dst: Path, index: int, seconds: float) -> None:
        """Render sample clip number ``index`` into ``dst`` (atomically)."""
        source, tone = SAMPLE_SOURCES[index % len(SAMPLE_SOURCES)]
        partial = dst.with_name(f".{dst.name}.partial")
        try:
            code, _, err = await run_process(
                build_clip_args(self.ffmpeg_bin, partial, seconds, source=source, tone=tone)
            )
            if code != 0:
                raise FFmpegError("sample", code, err)
            os.replace(partial, dst)
        finally:
            partial.unlink(missing_ok=True)


def make_clip(path: Path | str, seconds: float = 1.0, size: str = "160x90") -> Path:
    """Render a small real MP4 (ffmpeg's test pattern, no audio) to ``path`` (blocking).

    The clip learners and tests upload. Raises FFmpegError with ffmpeg's message.

    >>> import tempfile
    >>> make_clip(Path(tempfile.mkdtemp()) / "clip.mp4").stat().st_size > 1000
    True
    """
    path = Path(path)
    args = build_clip_args("ffmpeg", path, seconds, size=size, fps=CLIP_FPS)
    done = subprocess.run(args, capture_output=True, text=True, timeout=PROCESS_TIMEOUT)
    if done.returncode != 0:
        raise FFmpegError("clip", done.returncode, done.stderr)
    return path


def _niced(args: list[str]) -> list[str]:
    """Return ``args`` run under ``nice -n 10`` (when available).

    On a 2-core laptop, a trim (ffmpeg start-up, ~40 ms of CPU mostly spent on dynamic
    linking, then a re-encode) would otherwise compete head-on with the Python process
    serving requests: cache hits and thumbnail decodes would queue behind it. At lower
    priority ffmpeg still gets every idle cycle, and the API keeps its latency.
    """
    nice = shutil.which("nice")
    return [nice, "-n", "10", *args] if nice else args


def _float(value: Any) -> float | None:
    """Return ``value`` as a finite float, or None."""
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if result == result and result not in (float("inf"), float("-inf")) else None


def safe_filename(name: str | None, default: str = "upload.mp4") -> str:
    """Return a display-only file name: no directories, no control characters, bounded.

    >>> safe_filename("../../etc/passwd"), safe_filename(None)
    ('passwd', 'upload.mp4')
    """
    base = re.split(r"[\\/]", name or "")[-1]
    base = re.sub(r"[^\w.\- ]", "_", base).strip(" .")[:120]
    return base or default
