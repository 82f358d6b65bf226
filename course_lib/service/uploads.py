"""Receive a multipart upload straight to disk, refusing oversize bodies mid-stream.

FastAPI's ``UploadFile`` would read the whole body before our handler runs. Here the
body is parsed chunk by chunk (python-multipart's streaming parser) and the ``file``
part is written to a temporary file; the moment it passes the size limit we stop
reading and answer 413, and a declared ``Content-Length`` over the limit is refused
before reading anything. On every failure the temporary file is removed.

>>> UploadRejected(413, "too_large", "over the limit").status
413
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

if TYPE_CHECKING:  # python-multipart defines the callback table's type for checkers only
    from python_multipart.multipart import MultipartCallbacks

#: Room for multipart headers and boundaries on top of the file itself.
MULTIPART_OVERHEAD = 64 * 1024


class UploadRejected(Exception):
    """The upload is refused; ``status`` and ``code`` go into the JSON error."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class ReceivedFile:
    """An upload written to a temporary file (the caller moves or deletes it)."""

    path: Path
    filename: str | None
    size: int


class _FilePartWriter:
    """Parser callbacks that copy the ``file`` form field into an open file."""

    def __init__(self, fd: int, max_bytes: int) -> None:
        self.fd = fd
        self.max_bytes = max_bytes
        self.size = 0
        self.found = False
        self.filename: str | None = None
        self._in_file = False
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}

    def callbacks(self) -> MultipartCallbacks:
        """Return the callback table for MultipartParser."""
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field_data,
            "on_header_value": self._header_value_data,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        """Reset per-part header state."""
        self._headers = {}
        self._in_file = False

    def _header_field_data(self, data: bytes, start: int, end: int) -> None:
        """Accumulate a header name."""
        self._header_field += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        """Accumulate a header value."""
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        """Store one complete header."""
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field = b""
        self._header_value = b""

    def _headers_finished(self) -> None:
        """Decide whether this part is the first ``file`` field."""
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        if params.get(b"name") == b"file" and not self.found:
            self.found = True
            self._in_file = True
            raw = params.get(b"filename")
            self.filename = raw.decode("utf-8", "replace") if raw is not None else None

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        """Write file bytes, stopping as soon as the limit is passed."""
        if not self._in_file:
            return
        self.size += end - start
        if self.size > self.max_bytes:
            raise UploadRejected(
                413, "too_large", f"upload exceeds the limit of {self.max_bytes} bytes"
            )
        # Synchronous write of one network chunk (<= 64 KiB): cheaper than a thread hop.
        os.write(self.fd, data[start:end])

    def _part_end(self) -> None:
        """Leave the file part."""
        self._in_file = False


async def receive_upload(request: Request, tmp_dir: Path, max_bytes: int) -> ReceivedFile:
    """Stream the ``file`` field of a multipart request into ``tmp_dir``.

    Raises UploadRejected with 415 (not multipart), 413 (too large), 400 (malformed,
    no file field, empty file, client went away).
    """
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise UploadRejected(
            415,
            "unsupported_media_type",
            "send the video as multipart/form-data in a field named 'file'",
        )
    declared = request.headers.get("content-length")
    limit = max_bytes + MULTIPART_OVERHEAD
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise UploadRejected(413, "too_large", f"upload exceeds the limit of {max_bytes} bytes")

    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="upload-", suffix=".partial", dir=tmp_dir)
    path = Path(name)
    writer = _FilePartWriter(fd, max_bytes)
    try:
        try:
            parser = MultipartParser(boundary, writer.callbacks())
            body_bytes = 0
            async for chunk in request.stream():
                # Bound the whole body too: parts other than 'file' are not written,
                # but a client must not be able to stream them forever.
                body_bytes += len(chunk)
                if body_bytes > max_bytes + MULTIPART_OVERHEAD:
                    raise UploadRejected(
                        413, "too_large", f"upload exceeds the limit of {max_bytes} bytes"
                    )
                if chunk:
                    parser.write(chunk)
            parser.finalize()
        except FormParserError as exc:
            raise UploadRejected(400, "malformed_multipart", f"malformed upload: {exc}") from exc
        except ClientDisconnect as exc:
            raise UploadRejected(400, "client_disconnected", "the upload was interrupted") from exc
        finally:
            os.close(fd)
        if not writer.found:
            raise UploadRejected(400, "missing_file", "no form field named 'file'")
        if writer.size == 0:
            raise UploadRejected(400, "empty_upload", "the uploaded file is empty")
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return ReceivedFile(path=path, filename=writer.filename, size=writer.size)
