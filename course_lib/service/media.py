"""Real ffmpeg work: probe, thumbnail, trim with progress, and sample generation.

Commands are built with ffmpeg-python (``ffmpeg.input(...).output(...).compile()``)
and run as asyncio subprocesses, so the event loop keeps serving while ffmpeg works.
Every run goes through ``VrewCraftMetrics.ffmpeg_job``: duration observed, active
gauge restored and errors counted on every path.

Why a *warm pool* for thumbnails: starting ffmpeg costs ~120 ms on the course machine
(it loads ~200 shared libraries) while extracting one small frame takes ~15 ms. So a
few ffmpeg processes are started ahead of time, already running with the concat
demuxer waiting on stdin; a cache miss writes "file X / inpoint T" to one of them.
Each process still does one real extraction and exits; the pool is refilled behind.

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
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import ffmpeg

from .metrics import VrewCraftMetrics

#: Fault switch: appended to any ffmpeg command to make it fail for real.
BROKEN_OPTION = "-vrewcraft_injected_fault"

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

PROCESS_TIMEOUT = 60.0


class NotAVideo(ValueError):
    """The file is not something ffprobe recognises as a video."""


class FFmpegError(RuntimeError):
    """ffmpeg or ffprobe failed; ``stderr`` holds the tail of its error output."""

    def __init__(self, operation: str, returncode: int | None, stderr: str) -> None:
        self.operation = operation
        self.returncode = returncode
        self.stderr = stderr
        last = stderr.strip().splitlines()[-1] if stderr.strip() else "no error output"
        super().__init__(f"ffmpeg {operation} failed (exit {returncode}): {last}")


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


async def run_process(args: Sequence[str], stdin: bytes | None = None,
                      timeout: float = PROCESS_TIMEOUT) -> tuple[int, bytes, str]:
    """Run a command; return (exit code, stdout, stderr tail). Killed on timeout or cancel."""
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    return await _communicate(proc, stdin, timeout)


async def _communicate(proc: asyncio.subprocess.Process, stdin: bytes | None,
                       timeout: float) -> tuple[int, bytes, str]:
    """Feed stdin, collect stdout and the stderr tail, wait for exit."""
    try:
        async with asyncio.timeout(timeout):
            if stdin is not None and proc.stdin is not None:
                proc.stdin.write(stdin)
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    await proc.stdin.drain()
                proc.stdin.close()
            assert proc.stdout is not None and proc.stderr is not None
            out, err = await asyncio.gather(proc.stdout.read(), _read_tail(proc.stderr))
            code = await proc.wait()
    except BaseException:
        await _kill(proc)
        raise
    return code, out, err


def _concat_list(path: Path, inpoint: float) -> bytes:
    """Return an ffconcat script that opens ``path`` at ``inpoint`` seconds."""
    quoted = str(path.resolve()).replace("'", "'\\''")
    return f"ffconcat version 1.0\nfile 'file:{quoted}'\ninpoint {inpoint:.3f}\n".encode()


def build_thumbnail_args(ffmpeg_bin: str, width: int) -> list[str]:
    """Return the warm-pool thumbnail command: read an ffconcat script on stdin, emit a JPEG.

    ``-copyts`` keeps the timestamps relative to the inpoint, so ``select=gte(t,0)``
    drops the frames decoded between the previous keyframe and the requested time:
    the output is the exact frame, the same one ``ffmpeg -ss T -i file`` gives.
    """
    # threads=1 everywhere: one small frame gains nothing from threads, and creating
    # them costs ~6 ms per process.
    stream = ffmpeg.input("pipe:0", f="concat", safe=0, protocol_whitelist="file,pipe",
                          copyts=None, threads=1)
    return (stream.video.filter("select", "gte(t,0)").filter("scale", width, -2)
            .output("pipe:1", vframes=1, format="image2", vcodec="mjpeg", threads=1,
                    **{"q:v": 5})
            .global_args("-hide_banner", "-loglevel", "error", "-filter_threads", "1")
            .compile(cmd=ffmpeg_bin))


def build_trim_args(ffmpeg_bin: str, src: Path, dst: Path, start: float, end: float) -> list[str]:
    """Return the trim command: re-encode [start, end) and report progress on stdout."""
    stream = ffmpeg.input(str(src), ss=start)
    # One encoder thread: trims are background work and must leave CPU for requests.
    return (stream.output(str(dst), t=round(end - start, 3), vcodec="libx264",
                          preset="ultrafast", threads=1, g=SAMPLE_FPS, pix_fmt="yuv420p",
                          acodec="aac", movflags="+faststart", format="mp4")
            .global_args("-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                         "-progress", "pipe:1", "-stats_period", "0.1")
            .compile(cmd=ffmpeg_bin))


def build_sample_args(ffmpeg_bin: str, dst: Path, source: str, tone: int,
                      seconds: float) -> list[str]:
    """Return the command that renders one sample clip from ffmpeg's test sources."""
    video = ffmpeg.input(f"{source}=size={SAMPLE_SIZE}:rate={SAMPLE_FPS}:duration={seconds}",
                         f="lavfi")
    audio = ffmpeg.input(f"sine=frequency={tone}:duration={seconds}", f="lavfi")
    # One encoder thread per clip: clips are rendered in parallel, and x264's thread
    # start-up costs more than it saves at 320x180.
    return (ffmpeg.output(video, audio, str(dst), vcodec="libx264", preset="ultrafast",
                          threads=1, g=SAMPLE_FPS, pix_fmt="yuv420p", acodec="aac",
                          audio_bitrate="32k", ac=1, movflags="+faststart", format="mp4",
                          shortest=None)
            .global_args("-hide_banner", "-loglevel", "error", "-nostdin", "-y")
            .compile(cmd=ffmpeg_bin))


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

    def __init__(self, metrics: VrewCraftMetrics, broken: Callable[[], bool],
                 ffmpeg_bin: str = "ffmpeg", ffprobe_bin: str = "ffprobe",
                 thumbnail_width: int = 160, warm: int = 2, max_extractions: int = 4) -> None:
        self.metrics = metrics
        self.broken = broken
        self.ffmpeg_bin = ffmpeg_bin
        self.ffprobe_bin = ffprobe_bin
        self.thumbnail_width = thumbnail_width
        self.warm_target = warm
        self._warm: deque[asyncio.subprocess.Process] = deque()
        self._refills: set[asyncio.Task[None]] = set()
        self._closed = False
        # Bound concurrent extractions so a burst of misses can't fork-bomb a laptop.
        self._extract_slots = asyncio.Semaphore(max_extractions)

    def _args(self, args: list[str]) -> list[str]:
        """Return ``args``, broken on purpose when the fault switch says so."""
        return [*args, BROKEN_OPTION] if self.broken() else args

    # --- warm pool -------------------------------------------------------------------

    def start(self) -> None:
        """Start filling the warm pool (call from a running event loop)."""
        for _ in range(self.warm_target):
            self._schedule_refill()

    def _schedule_refill(self) -> None:
        """Start one warm process in the background."""
        if self._closed or self.warm_target <= 0:
            return
        task = asyncio.get_running_loop().create_task(self._refill())
        self._refills.add(task)
        task.add_done_callback(self._refills.discard)

    async def _refill(self) -> None:
        """Spawn one waiting thumbnail process and put it in the pool."""
        proc = await self._spawn_thumbnail(background=True)
        if self._closed:
            await _kill(proc)
        else:
            self._warm.append(proc)

    async def _spawn_thumbnail(self, background: bool = False) -> asyncio.subprocess.Process:
        """Start a thumbnail process that waits for its ffconcat script on stdin.

        Pool refills start at low priority (their expensive start-up is background work);
        a process started because the pool is empty has a request waiting on it.
        """
        args = build_thumbnail_args(self.ffmpeg_bin, self.thumbnail_width)
        if background:
            args = _niced(args)
        return await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)

    async def _take_thumbnail_process(self) -> asyncio.subprocess.Process:
        """Return a warm process if one is ready (and refill), else start one cold."""
        while self._warm:
            proc = self._warm.popleft()
            self._schedule_refill()
            if proc.returncode is None:
                return proc
            await proc.wait()  # died while waiting (e.g. killed): use the next one
        return await self._spawn_thumbnail()

    async def close(self) -> None:
        """Stop refilling and kill the waiting processes."""
        self._closed = True
        for task in list(self._refills):
            task.cancel()
        await asyncio.gather(*self._refills, return_exceptions=True)
        while self._warm:
            await _kill(self._warm.popleft())

    # --- operations ------------------------------------------------------------------

    async def probe(self, path: Path) -> ProbeResult:
        """Return duration and video stream facts; raise NotAVideo if it isn't one.

        A file ffprobe can't parse is the client's problem (415), not an ffmpeg failure,
        so it is not counted in ``vrewcraft_ffmpeg_errors_total``; ffprobe itself failing
        (e.g. the fault switch) is.
        """
        args = self._args([self.ffprobe_bin, "-v", "error", "-print_format", "json",
                           "-show_format", "-show_streams", str(path)])
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
        video = next((s for s in info.get("streams", []) if s.get("codec_type") == "video"
                      and s.get("codec_name") not in ("mjpeg", "png", "bmp")), None)
        duration = _float(info.get("format", {}).get("duration"))
        if video is None or duration is None or duration <= 0:
            raise NotAVideo("no video stream with a duration")
        return ProbeResult(duration=duration, width=int(video.get("width") or 0),
                           height=int(video.get("height") or 0),
                           codec=str(video.get("codec_name")))

    async def thumbnail(self, path: Path, t: float, duration: float,
                        operation: str = "thumbnail") -> bytes:
        """Return a JPEG of the frame at ``t`` seconds (raises FFmpegError on failure)."""
        # The last frame starts up to one frame before the end; don't seek past it.
        inpoint = max(0.0, min(t, duration - 0.1))
        async with self._extract_slots:
            with self.metrics.ffmpeg_job(operation):
                if self.broken():
                    proc_args = self._args(build_thumbnail_args(self.ffmpeg_bin,
                                                                self.thumbnail_width))
                    code, out, err = await run_process(proc_args, stdin=b"")
                else:
                    proc = await self._take_thumbnail_process()
                    code, out, err = await _communicate(proc, _concat_list(path, inpoint),
                                                        PROCESS_TIMEOUT)
                if code != 0 or not out:
                    raise FFmpegError(operation, code, err or "no frame decoded")
        return out

    async def trim(self, src: Path, dst: Path, start: float, end: float,
                   on_progress: Callable[[float], Awaitable[None]]) -> None:
        """Re-encode [start, end) of ``src`` into ``dst``; report progress as it runs.

        Output is written next to ``dst`` under a temporary name and renamed only on
        success, so a failed or cancelled trim leaves no partial file behind.
        """
        partial = dst.with_name(f".{dst.name}.partial")
        args = _niced(self._args(build_trim_args(self.ffmpeg_bin, src, partial, start, end)))
        try:
            with self.metrics.ffmpeg_job("trim"):
                proc = await asyncio.create_subprocess_exec(
                    *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE)
                try:
                    assert proc.stdout is not None and proc.stderr is not None
                    err_task = asyncio.ensure_future(_read_tail(proc.stderr))
                    async with asyncio.timeout(PROCESS_TIMEOUT):
                        async for raw in proc.stdout:
                            progress = parse_progress(raw.decode("ascii", "replace"),
                                                      end - start)
                            if progress is not None and progress < 1.0:
                                await on_progress(progress)
                        err = await err_task
                        code = await proc.wait()
                except BaseException:
                    await _kill(proc)
                    raise
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
                build_sample_args(self.ffmpeg_bin, partial, source, tone, seconds))
            if code != 0:
                raise FFmpegError("sample", code, err)
            os.replace(partial, dst)
        finally:
            partial.unlink(missing_ok=True)


def _niced(args: list[str]) -> list[str]:
    """Return ``args`` run under ``nice -n 10`` (when available).

    On a 2-core laptop, ffmpeg start-up (~100 ms of CPU per process, mostly dynamic
    linking) would otherwise compete head-on with the Python process serving requests:
    cache hits would queue behind misses and trims. At lower priority ffmpeg still gets
    every idle cycle, and the API keeps its latency.
    """
    nice = shutil.which("nice")
    return [nice, "-n", "10", *args] if nice else args


def _float(value: object) -> float | None:
    """Return ``value`` as a finite float, or None."""
    try:
        result = float(value)  # type: ignore[arg-type]
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
