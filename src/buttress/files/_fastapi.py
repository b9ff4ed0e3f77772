"""Multipart uploads streamed straight into a :class:`~buttress.files.FileStore` from a FastAPI route.

Starlette's ``UploadFile`` spools each file to a temp file before the handler runs, so a size limit or a
type check comes after the bytes have landed. Here the request body is read as it arrives and fed to
python-multipart's streaming parser; each file part goes to ``FileStore.abegin`` chunk by chunk, so the
size limit, the type check and the quota apply as bytes arrive and no file is ever held whole::

    from buttress.files import FileStore, Uploaded, Uploads, upload_route

    store = FileStore()
    avatar = Uploads(store, max_size=5_000_000, allowed_types=["image/*"])

    @app.post("/avatars", status_code=201)
    async def upload_avatar(upload: Annotated[Uploaded, Depends(avatar)]) -> dict[str, str]:
        return {"id": upload.files[0].id, "caption": upload.fields.get("caption", "")}

    app.include_router(upload_route(store, path="/files", max_files=10))  # POST /files -> 201

- :class:`Uploads` is the dependency; it returns :class:`Uploaded` (``files``: the stored files in the
  order sent, ``fields``: the plain form fields). Files come in the form field ``field`` ("file").
- :func:`upload_route` is a router with one ``POST`` that answers 201 with the stored files as JSON.
- Before anything is read: a Content-Type that is not ``multipart/form-data`` is a 415, one without a
  boundary a 422, and a Content-Length over ``max_files`` * (``max_size`` + part headers) plus the
  plain fields' allowance is a 413. While reading: a file past ``max_size`` (413), a rejected type (415),
  a quota refusal (429, or 413 when it can never fit), a plain field over ``max_field_size`` (413), a
  part in the wrong field, too many files or fields, or a malformed body (422).
- All or nothing per request: when anything fails midway, the client disconnecting included, every
  upload in flight is aborted and the files the request already stored are deleted, so a refused
  request leaves no bytes, temp data or reservation behind. Once the route's own code runs, the files
  are stored: a route that fails after that deletes them itself if it must.
- Errors are :class:`~buttress.errors.ButtressError` subclasses carrying ``Connection: close``: the
  problem+json handler that ``buttress.server.install`` adds answers with their status at once, and
  uvicorn then closes the connection instead of reading (and dropping) the rest of a refused body.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from buttress._extras import require

require("fastapi", "server", "buttress.files' FastAPI upload helper")
require("python_multipart", "files", "buttress.files' FastAPI upload helper")

from fastapi import APIRouter, Request  # noqa: E402 - after the extras check
from python_multipart.exceptions import FormParserError  # noqa: E402 - after the extras check
from python_multipart.multipart import MultipartParser, parse_options_header  # noqa: E402 - after the extras check
from starlette.requests import ClientDisconnect  # noqa: E402 - after the extras check

from buttress.errors import ButtressError, FileTooLarge, ValidationError  # noqa: E402 - after the extras check
from buttress.files._detect import validate_allowed  # noqa: E402 - after the extras check

if TYPE_CHECKING:
    from buttress.files._info import StoredFile
    from buttress.files._store import FileStore
    from buttress.files._upload import AsyncUpload

__all__ = ["Uploaded", "Uploads", "upload_route"]

CHUNK: Final = 1024 * 1024
"""Bytes gathered from the parser's slices before one ``write`` into the store. One such write runs while
the next batch is read and parsed, so hashing and disk writes (in a thread) overlap the network."""
MAX_PART_HEADERS: Final = 8
MAX_HEADER_LINE: Final = 4096 + 128
PART_ALLOWANCE: Final = MAX_PART_HEADERS * (MAX_HEADER_LINE + 2) + 512
"""Most bytes a part can spend outside its content: its header lines and the boundary line before it."""
_CLOSE: Final = {"Connection": "close"}

Owner = Callable[[Request], str | None] | Callable[[Request], Awaitable[str | None]]


@dataclass(frozen=True, slots=True)
class Uploaded:
    """What one multipart request brought: the stored files in the order sent, and the plain fields."""

    files: tuple[StoredFile, ...]
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class _Part:
    """The part being parsed: its form field name, and for a file its filename and declared type."""

    name: str
    filename: str | None
    content_type: str | None


class _Events:
    """python-multipart's callbacks, queued in order for the async side (the parser itself is sync)."""

    def __init__(self) -> None:
        self.queue: list[_Part | bytearray | None] = []  # a part begins, its data, None: it ends
        self.ended = False
        self._field = bytearray()
        self._value = bytearray()
        self._headers: dict[str, str] = {}

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self._headers.clear,
            "on_header_field": lambda data, start, end: self._field.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._value.extend(data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._data,
            "on_part_end": lambda: self.queue.append(None),
            "on_end": self._end,
        }

    def _header_end(self) -> None:
        self._headers[self._field.decode("latin-1").strip().lower()] = self._value.decode("latin-1").strip()
        self._field.clear()
        self._value.clear()

    def _headers_finished(self) -> None:
        disposition, options = parse_options_header(self._headers.get("content-disposition"))
        if disposition != b"form-data" or b"name" not in options:
            raise ValidationError(
                "each multipart part needs 'Content-Disposition: form-data; name=\"...\"'",
                field="body",
            )
        filename = options.get(b"filename")
        self.queue.append(
            _Part(
                name=options[b"name"].decode("utf-8", "replace"),
                filename=None if filename is None else filename.decode("utf-8", "replace"),
                content_type=self._headers.get("content-type") or None,
            )
        )

    def _data(self, data: bytes, start: int, end: int) -> None:
        last = self.queue[-1] if self.queue else None
        if isinstance(last, bytearray):
            last += memoryview(data)[start:end]
        else:
            self.queue.append(bytearray(memoryview(data)[start:end]))

    def _end(self) -> None:
        self.ended = True


class Uploads:
    """A FastAPI dependency that streams a multipart request into ``store`` (see the module docstring).

    ``max_size`` and ``allowed_types`` apply to each file (None: the store's defaults); ``max_files`` and
    ``min_files`` bound how many files come in ``field``; ``owner(request)`` names the owner whose quota
    pays (None: no owner); ``tags`` go on every file. At most ``max_fields`` plain fields of at most
    ``max_field_size`` bytes each are kept, decoded as UTF-8.
    """

    def __init__(
        self,
        store: FileStore,
        *,
        field: str = "file",
        max_size: int | None = None,
        allowed_types: Sequence[str] | None = None,
        max_files: int = 1,
        min_files: int = 1,
        owner: Owner | None = None,
        tags: Sequence[str] = (),
        max_fields: int = 16,
        max_field_size: int = 64 * 1024,
    ) -> None:
        _check_options(field, max_size, max_files, min_files, max_fields, max_field_size)
        if allowed_types is not None:
            allowed_types = validate_allowed(allowed_types, "allowed_types")
        if isinstance(tags, str) or not all(isinstance(tag, str) and tag for tag in tags):
            raise ValidationError(f"tags must be a list of non-empty strings, got {tags!r}", field="tags")
        self.store = store
        self.field = field
        self.max_size = max_size
        self.allowed_types = None if allowed_types is None else tuple(allowed_types)
        self.max_files = max_files
        self.min_files = min_files
        self.owner = owner
        self.tags = tuple(tags)
        self.max_fields = max_fields
        self.max_field_size = max_field_size

    def body_limit(self) -> int:
        """The most bytes a request may carry: every file at its limit, every field at its cap, headers."""
        max_size = self.max_size if self.max_size is not None else self.store.settings.max_size
        files = self.max_files * (max_size + PART_ALLOWANCE)
        return files + self.max_fields * (self.max_field_size + PART_ALLOWANCE) + 1024

    def openapi_extra(self) -> dict[str, Any]:
        """The multipart body for a route's ``openapi_extra`` (FastAPI cannot see a body read by hand)."""
        files = {"type": "array", "items": {"type": "string", "format": "binary"}, "maxItems": self.max_files}
        schema = {"type": "object", "properties": {self.field: files}}
        if self.min_files:
            schema["required"] = [self.field]
        return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}

    async def __call__(self, request: Request) -> Uploaded:
        """Read ``request``'s multipart body into the store; all of it is kept, or none of it."""
        boundary = _boundary(request)
        limit = self.body_limit()
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            self.store.telemetry.rejected("too_large")
            raise _closing(
                FileTooLarge(
                    f"the request declares {int(declared)} bytes, over the {limit} this upload accepts "
                    f"({self.max_files} file(s) and the form fields at their limits); nothing was read",
                    context={"content_length": int(declared), "limit": limit},
                )
            )
        receiving = _Receiving(self, request)
        try:
            await receiving.run(boundary, limit)
        except ClientDisconnect:
            await receiving.discard()
            raise _closing(
                ValidationError(
                    "the client closed the connection before the upload ended; nothing was kept",
                    field="body",
                    error_code="client_disconnected",
                    status=400,
                )
            ) from None
        except BaseException as exc:
            await receiving.discard()
            if isinstance(exc, ButtressError):
                _closing(exc)
            raise
        return Uploaded(tuple(receiving.files), receiving.fields)


class _Receiving:
    """One request's upload in progress: the parser's events turned into store writes and fields."""

    def __init__(self, uploads: Uploads, request: Request) -> None:
        self.uploads = uploads
        self.request = request
        self.files: list[StoredFile] = []
        self.fields: dict[str, str] = {}
        self._part: _Part | None = None
        self._upload: AsyncUpload | None = None  # the store's upload of the current file part
        self._writing: asyncio.Future[None] | None = None  # its write in flight
        self._pending = bytearray()

    async def run(self, boundary: bytes, limit: int) -> None:
        events = _Events()
        parser = MultipartParser(
            boundary,
            events.callbacks(),  # type: ignore[arg-type]  # the TypedDict's keys, built as a plain dict
            max_header_count=MAX_PART_HEADERS,
            max_header_size=MAX_HEADER_LINE,
        )
        read = 0
        async for chunk in self.request.stream():
            read += len(chunk)
            if read > limit:
                self.uploads.store.telemetry.rejected("too_large")
                raise FileTooLarge(
                    f"the request body passed {limit} bytes, the most this upload accepts; it was cut there",
                    context={"limit": limit, "received": read},
                )
            try:
                parser.write(chunk)
            except FormParserError as exc:
                raise ValidationError(f"the multipart body is malformed: {exc}", field="body") from None
            for event in events.queue:
                await self._handle(event)
            events.queue.clear()
        if not events.ended:
            raise ValidationError(
                "the multipart body ended before its closing boundary; send the whole request", field="body"
            )
        if len(self.files) < self.uploads.min_files:
            raise ValidationError(
                f"expected at least {self.uploads.min_files} file(s) in form field "
                f"{self.uploads.field!r}, got {len(self.files)}",
                field=self.uploads.field,
            )

    async def _handle(self, event: _Part | bytearray | None) -> None:
        if isinstance(event, _Part):
            self._begin(event)
        elif isinstance(event, bytearray):
            self._pending += event
            if self._part is not None and self._part.filename is not None:
                if len(self._pending) >= CHUNK:
                    await self._write(self._part, last=False)
            elif len(self._pending) > self.uploads.max_field_size:
                raise ValidationError(
                    f"form field {self._part.name if self._part else ''!r} is over "
                    f"{self.uploads.max_field_size} bytes; send large content as a file",
                    field=self._part.name if self._part else "body",
                    status=413,
                )
        else:
            await self._end()

    def _begin(self, part: _Part) -> None:
        uploads = self.uploads
        if part.filename is not None:
            if part.name != uploads.field:
                raise ValidationError(
                    f"files go in form field {uploads.field!r}, got a file in {part.name!r}", field=part.name
                )
            if len(self.files) + 1 > uploads.max_files:
                raise ValidationError(
                    f"at most {uploads.max_files} file(s) per request in {uploads.field!r}",
                    field=uploads.field,
                )
        elif part.name in self.fields:
            raise ValidationError(f"form field {part.name!r} was sent twice; send it once", field=part.name)
        elif len(self.fields) >= uploads.max_fields:
            raise ValidationError(f"at most {uploads.max_fields} form fields per request", field=part.name)
        self._part = part

    async def _owner(self) -> str | None:
        """The ``owner`` hook's answer for this request (a coroutine function is awaited)."""
        hook = self.uploads.owner
        if hook is None:
            return None
        answer = hook(self.request)
        if inspect.isawaitable(answer):
            answer = await answer
        return answer

    async def _write(self, part: _Part, *, last: bool) -> None:
        """Hand the pending bytes to the store; the previous write must be done (its error raised) first.

        The store's upload begins with the first full batch, or at the part's end: then the file's whole
        length is known and the quota reserves exactly that, not a step of a body of unknown length.
        """
        if self._upload is None:
            uploads = self.uploads
            self._upload = await uploads.store.abegin(
                name=part.filename or None,
                owner=await self._owner(),
                content_type=part.content_type,
                size=len(self._pending) if last else None,
                max_size=uploads.max_size,
                allowed_types=uploads.allowed_types,
                tags=uploads.tags,
            )
        await self._settle()
        if self._pending:
            chunk = bytes(self._pending)
            self._pending = bytearray()
            self._writing = asyncio.ensure_future(self._upload.write(chunk))
        if last:
            await self._settle()

    async def _settle(self) -> None:
        writing, self._writing = self._writing, None
        if writing is not None:
            await writing

    async def _end(self) -> None:
        part, self._part = self._part, None
        if part is None:
            return
        if part.filename is None:
            try:
                self.fields[part.name] = self._pending.decode("utf-8")
            except UnicodeDecodeError:
                raise ValidationError(
                    f"form field {part.name!r} is not UTF-8 text", field=part.name
                ) from None
            self._pending = bytearray()
            return
        if part.filename == "" and not self._pending and self._upload is None:
            return  # a browser's empty file input: no file was chosen
        await self._write(part, last=True)
        upload, self._upload = self._upload, None
        assert upload is not None  # noqa: S101 - _write began it
        self.files.append(await upload.finish())

    async def discard(self) -> None:
        """Abort the upload in flight and delete what this request stored; runs to the end if cancelled."""
        await asyncio.shield(self._discard())

    async def _discard(self) -> None:
        with contextlib.suppress(Exception, asyncio.CancelledError):  # a failed write aborted its upload
            await self._settle()
        upload, self._upload = self._upload, None
        if upload is not None:
            await upload.abort()
        stored, self.files = self.files, []
        for stored_file in stored:
            await self.uploads.store.adelete(stored_file.id)


def _closing(exc: ButtressError) -> ButtressError:
    """``exc`` with ``Connection: close`` on its problem response (the server reads ``response_headers``)."""
    headers = dict(getattr(exc, "response_headers", None) or {})
    exc.response_headers = {**headers, **_CLOSE}  # type: ignore[attr-defined]
    return exc


def _boundary(request: Request) -> bytes:
    """The multipart boundary of ``request``, or a 415/422 before anything is read."""
    media_type, options = parse_options_header(request.headers.get("content-type"))
    if media_type != b"multipart/form-data":
        raise _closing(
            ValidationError(
                f"uploads are sent as multipart/form-data, got {media_type.decode('latin-1') or 'none'!r}",
                field="content-type",
                error_code="unsupported_media_type",
                status=415,
            )
        )
    boundary = options.get(b"boundary")
    if not boundary:
        raise _closing(
            ValidationError(
                "the multipart/form-data Content-Type needs a boundary parameter "
                "(e.g. 'multipart/form-data; boundary=x1y2'); let the HTTP client set it",
                field="content-type",
            )
        )
    return boundary


def _check_options(  # noqa: PLR0917 - the options of Uploads, checked in one place
    field: str, max_size: int | None, max_files: int, min_files: int, max_fields: int, max_field_size: int
) -> None:
    """A misconfigured helper fails when the route is defined, not on the first request."""
    if not isinstance(field, str) or not field:
        raise ValidationError("field must name the form field files come in, e.g. 'file'", field="field")
    numbers = {"max_files": max_files, "min_files": min_files, "max_fields": max_fields}
    numbers["max_field_size"] = max_field_size
    if max_size is not None:
        numbers["max_size"] = max_size
    for name, value in numbers.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(f"{name} must be an int (bytes or a count), got {value!r}", field=name)
    if max_size is not None and max_size <= 0:
        raise ValidationError(f"max_size must be positive bytes, got {max_size}", field="max_size")
    if max_files < 1:
        raise ValidationError(f"max_files must be at least 1, got {max_files}", field="max_files")
    if not 0 <= min_files <= max_files:
        raise ValidationError(
            f"min_files must lie between 0 and max_files ({max_files}), got {min_files}", field="min_files"
        )
    if max_fields < 0 or max_field_size < 0:
        raise ValidationError(
            f"max_fields and max_field_size must be 0 or more, got {max_fields} and {max_field_size}",
            field="max_fields" if max_fields < 0 else "max_field_size",
        )


def upload_route(
    store: FileStore, *, path: str = "/files", name: str = "upload_files", **options: Any
) -> APIRouter:
    """A router with ``POST path``: the :class:`Uploads` dependency (``options`` go to it), 201 and JSON.

    The answer is ``{"files": [...], "fields": {...}}``, each file as ``id``, ``name``, ``content_type``,
    ``size``, ``sha256``, ``owner`` and ``tags``.
    """
    uploads = Uploads(store, **options)
    router = APIRouter()

    async def upload(request: Request) -> dict[str, Any]:
        received = await uploads(request)
        return {"files": [_file_json(stored) for stored in received.files], "fields": received.fields}

    router.add_api_route(
        path,
        upload,
        methods=["POST"],
        status_code=201,
        name=name,
        summary="Upload files (multipart/form-data, streamed into the file store)",
        openapi_extra=uploads.openapi_extra(),
        responses={
            status: {"description": description, "content": {"application/problem+json": {}}}
            for status, description in _REFUSALS.items()
        },
    )
    return router


_REFUSALS: Final = {
    413: "A file, a form field or the whole request is over its limit, or the quota can never fit it.",
    415: "The request is not multipart/form-data, or a file's content is not an allowed type.",
    422: "The multipart body is malformed, or has too many or too few files or fields.",
    429: "The owner's or the store's quota is spent for now.",
}


def _file_json(stored: StoredFile) -> dict[str, Any]:
    return {
        "id": stored.id,
        "name": stored.name,
        "content_type": stored.content_type,
        "size": stored.size,
        "sha256": stored.sha256,
        "owner": stored.owner,
        "tags": list(stored.tags),
    }
