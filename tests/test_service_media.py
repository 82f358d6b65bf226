"""In-process thumbnail extraction (PyAV): right frame, valid JPEG, clear errors, no leaks."""

from __future__ import annotations

import asyncio
import io
import subprocess
import threading

import av
import numpy as np
import psutil
import pytest
from prometheus_client import CollectorRegistry

from course_lib.lesson import sample_value as value
from course_lib.service import media as media_module
from course_lib.service.media import (
    BROKEN_MESSAGE,
    FFmpegError,
    Media,
    extract_thumbnail,
)
from course_lib.service.metrics import VrewCraftMetrics
from course_lib.service.testing import corrupt_video, rendered_samples

# Every test here renders or decodes real video with ffmpeg.
pytestmark = pytest.mark.ffmpeg

WIDTH = 160  # the service's default thumbnail width; samples are 320x180 at 15 fps


@pytest.fixture(scope="module")
def clip():
    """Return a sample clip (testsrc2: every frame differs from the previous one)."""
    return rendered_samples() / "sample-1.mp4"


@pytest.fixture(scope="module")
def corrupt(clip, tmp_path_factory):
    """Return a copy of the clip whose media data is random bytes (header intact)."""
    return corrupt_video(clip, tmp_path_factory.mktemp("corrupt") / "bad.mp4")


def pixels(jpeg: bytes) -> np.ndarray:
    """Decode a JPEG into an RGB array (also proves it is a complete, valid JPEG)."""
    with av.open(io.BytesIO(jpeg), format="image2pipe") as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24").astype(np.int16)


def cli_thumbnail(path, t: float) -> bytes:
    """Return the frame at ``t`` as the ffmpeg CLI extracts it (the old implementation)."""
    return subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-ss",
            str(t),
            "-i",
            str(path),
            "-vf",
            f"scale={WIDTH}:-2",
            "-vframes",
            "1",
            "-q:v",
            "5",
            "-f",
            "image2",
            "pipe:1",
        ],
        capture_output=True,
        check=True,
    ).stdout


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Return the mean absolute pixel difference of two images."""
    return float(np.abs(a - b).mean())


def new_media(broken: bool = False, threads: int = 2) -> tuple[Media, CollectorRegistry]:
    """Return a Media on a fresh registry, and that registry."""
    registry = CollectorRegistry()
    return (
        Media(VrewCraftMetrics(registry), broken=lambda: broken, thumbnail_threads=threads),
        registry,
    )


def test_thumbnail_is_a_complete_jpeg_of_the_configured_width(clip):
    jpeg = extract_thumbnail(clip, 1.0, WIDTH)
    assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9"  # SOI ... EOI
    assert pixels(jpeg).shape == (90, WIDTH, 3)  # 320x180 scaled, aspect kept
    with av.open(io.BytesIO(jpeg), format="image2pipe") as container:
        assert container.streams.video[0].codec_context.name == "mjpeg"


@pytest.mark.parametrize("t", [0.0, 1.0, 2.47, 4.2, 5.9])
def test_seek_gives_the_same_frame_as_the_ffmpeg_cli(clip, t):
    ours = pixels(extract_thumbnail(clip, t, WIDTH))
    # Compared with the CLI's frame at t and with its neighbours one frame (1/15 s)
    # away: ours must be closest to the frame at t, by a wide margin. Scaler and encoder
    # versions differ (PyAV bundles its own FFmpeg), so the bytes themselves may differ.
    same = distance(ours, pixels(cli_thumbnail(clip, t)))
    for other in (t - 1 / 15, t + 1 / 15):
        if 0 <= other < 5.9:
            assert same * 2 < distance(ours, pixels(cli_thumbnail(clip, other))), (t, other)
    assert same < 4.0


def test_different_times_give_different_frames_and_same_frame_same_image(clip):
    # At 15 fps, 2.47 s and 2.50 s both show the frame starting at 2.533 s (the first
    # frame at or after t), and 2.40 s shows the frame at 2.40 s.
    at_247, at_250, at_240 = (extract_thumbnail(clip, t, WIDTH) for t in (2.47, 2.50, 2.40))
    assert at_247 == at_250
    assert at_247 != at_240
    assert len({extract_thumbnail(clip, t, WIDTH) for t in (0.5, 1.5, 3.0, 4.5)}) == 4


def test_time_inside_the_last_frame_gives_the_last_frame(clip):
    last = extract_thumbnail(clip, 5.95, WIDTH)
    assert last == extract_thumbnail(clip, 6.0, WIDTH)
    # The last frame starts at 89/15 = 5.933 s; the CLI finds nothing at or after 5.95.
    assert distance(pixels(last), pixels(cli_thumbnail(clip, 5.9))) < 4.0


def test_corrupt_and_missing_files_raise_a_clear_ffmpeg_error(corrupt, tmp_path):
    with pytest.raises(FFmpegError, match="thumbnail failed: .*Invalid data") as caught:
        extract_thumbnail(corrupt, 2.0, WIDTH)
    assert caught.value.operation == "thumbnail" and caught.value.returncode is None
    with pytest.raises(FFmpegError, match="probe failed: .*No such file"):
        extract_thumbnail(tmp_path / "nope.mp4", 0.0, WIDTH, operation="probe")
    not_video = tmp_path / "notes.mp4"
    not_video.write_bytes(b"just some text, not a video at all\n" * 10)
    with pytest.raises(FFmpegError, match="thumbnail failed"):
        extract_thumbnail(not_video, 0.0, WIDTH)


def test_media_thumbnail_is_measured_as_an_ffmpeg_job(clip):
    media, registry = new_media()

    async def scenario():
        try:
            return await media.thumbnail(clip, 1.0, 6.0)
        finally:
            await media.close()

    assert asyncio.run(scenario())[:2] == b"\xff\xd8"
    assert value(registry, "vrewcraft_ffmpeg_duration_seconds_count", operation="thumbnail") == 1
    assert value(registry, "vrewcraft_ffmpeg_errors_total", operation="thumbnail") == 0
    assert value(registry, "vrewcraft_ffmpeg_jobs_active") == 0


@pytest.mark.parametrize("case", ["broken", "corrupt"])
def test_failures_are_counted_and_leave_the_gauge_at_zero(clip, corrupt, case):
    media, registry = new_media(broken=case == "broken")
    path = clip if case == "broken" else corrupt

    async def scenario():
        try:
            await media.thumbnail(path, 2.0, 6.0)
        finally:
            await media.close()

    with pytest.raises(FFmpegError) as caught:
        asyncio.run(scenario())
    assert "thumbnail failed" in str(caught.value)
    if case == "broken":
        assert BROKEN_MESSAGE in str(caught.value)
    assert value(registry, "vrewcraft_ffmpeg_errors_total", operation="thumbnail") == 1
    assert value(registry, "vrewcraft_ffmpeg_duration_seconds_count", operation="thumbnail") == 1
    assert value(registry, "vrewcraft_ffmpeg_jobs_active") == 0


def test_extractions_are_bounded_by_the_decoding_threads(clip, monkeypatch):
    running, peak = 0, 0
    lock = threading.Lock()
    real = media_module.extract_thumbnail

    def counting(*args):
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            return real(*args)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(media_module, "extract_thumbnail", counting)
    media, registry = new_media(threads=2)

    async def scenario():
        try:
            return await asyncio.gather(*(media.thumbnail(clip, i * 0.25, 6.0) for i in range(12)))
        finally:
            await media.close()

    images = asyncio.run(scenario())
    assert len(set(images)) == 12
    assert peak == 2
    assert value(registry, "vrewcraft_ffmpeg_jobs_active") == 0


def test_no_file_descriptor_or_thread_leaks(clip, corrupt):
    media, registry = new_media(threads=2)

    def open_fds() -> int:
        return psutil.Process().num_fds()

    async def burst():
        results = await asyncio.gather(
            *(media.thumbnail(clip if i % 3 else corrupt, (i % 24) * 0.25, 6.0) for i in range(60)),
            return_exceptions=True,
        )
        assert sum(isinstance(r, FFmpegError) for r in results) == 20
        assert all(isinstance(r, bytes | FFmpegError) for r in results)

    async def scenario():
        await burst()  # first use starts the decoding threads
        fds, threads = open_fds(), threading.active_count()
        await burst()
        assert open_fds() == fds  # every container closed, on errors too
        assert threading.active_count() == threads
        await media.close()

    before = threading.active_count()
    asyncio.run(scenario())
    assert not [t for t in threading.enumerate() if t.name.startswith("vrewcraft-thumbnail")]
    assert threading.active_count() <= before
    assert value(registry, "vrewcraft_ffmpeg_jobs_active") == 0
    assert value(registry, "vrewcraft_ffmpeg_errors_total", operation="thumbnail") == 40
