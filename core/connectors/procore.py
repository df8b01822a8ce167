"""Procore Documents of one project, as a connector.

Paths map to Documents folders by name, from the project's root folder; the Recycle Bin and
deleted items are never content. A folder is listed with one "show folder" call. A whole-tree
walk (a job's march) may instead read the project's flat documents index, a page of 2,000
items per call, whichever costs fewer calls (`begin_walk`). What is learned is cached, and
every change this connector makes updates the cache, so a run lists each folder at most once.

Creates are made exactly once: when a create's answer is lost (dropped connection, 5xx), the
connector looks for what it created before trying again.

Every file goes through Procore's Uploads API (tutorials/tutorial_uploads.md): an upload slot,
the bytes to the storage host Procore names (not an API call, and never with the token), then
the create or new version with `file[upload_uuid]`. `file[data]` in the create call itself is
deprecated and slower since 2025-11-01 (announcements/overview.md); `[procore]
direct_upload_max` may still turn it on for small files, with a warning. Files above `[procore]
segment_size_mib` go in segments, each PUT to its own URL; a segmented upload is recorded in
the state DB after every segment, so a killed run's successor sends only the segments missing.

A file keeps every version (`Features.versions`): `versions` lists them oldest first, free
where the folder listing held the file's `file_versions[]` (a folder-by-folder listing does;
the flat index shows only the current version, so a file with several costs one
`GET /files/{id}`), and `read_version` streams one (one download call each).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import mimetypes
import tempfile
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

from core.auth import (
    Authenticator,
    ClientApp,
    SignInError,
    StateTokenStore,
    TokenStore,
    system_default_app,
)
from core.connectors import Opening
from core.connectors.base import (
    AlreadyExists,
    ConnectorError,
    Entry,
    Fatal,
    Features,
    InvalidPath,
    NotFound,
    PathRules,
)
from core.connectors.procore_client import (
    CHUNK,
    PER_PAGE,
    UPLOAD_GONE,
    ProcoreClient,
    UploadGone,
    parse_json,
)
from core.pacer import (
    MAX_RETRIES,
    Pacer,
    ResponseLost,
    Usage,
    backoff,
    budget_store_for,
    pacer_settings,
    server_lead,
)
from core.paths import CONTROL_CHARS, join, match_key
from core.state import Connection, SegmentedUpload, State

# Procore's naming limits, as DryvIQ's Procore page lists them; control characters too, so
# no name uploaded from a disk writes escape sequences into the terminal of whoever lists it
PROCORE_RULES = PathRules(invalid_chars='/<>:\\|?*' + CONTROL_CHARS, max_path_length=255,
                          no_trailing_whitespace=True, no_leading_whitespace=True)
PROCORE_FEATURES = Features(
    mtime_precision=1.0,  # updated_at, to the second; Procore sets it, nobody else can
    can_set_mtime=False, case_insensitive=True, empty_dirs=True, path_rules=PROCORE_RULES,
    versions=True)
SPOOL_IN_MEMORY = 8 << 20
MIB = 1 << 20
SEGMENT_SIZE_MIB = 100  # default: larger files go in segments
MIN_SEGMENT_MIB = 5  # S3 refuses smaller segments, except the last (tutorial_uploads.md)
MAX_SEGMENT_MIB = 4096  # S3 refuses a single PUT over 5 GB
# A segment URL must be used within an hour of the upload's creation (tutorial_uploads.md,
# "Important considerations"); an older record is not worth a try
UPLOAD_WINDOW = 3600.0
RESUME_WITHIN = UPLOAD_WINDOW - 300.0
Notify = Callable[[str, str], Awaitable[None]]


def signed_in_as(user: Mapping[str, Any]) -> str:
    """A Procore user as the product shows one: "Pat Morgan (pm@summit-builders.example)"."""
    return f"{user.get('name') or '?'} ({user.get('login') or user.get('id')})"


def _epoch(stamp: str | None) -> float | None:
    if not stamp:
        return None
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _latest_version(versions: list[dict[str, Any]]) -> dict[str, Any] | None:
    return max(versions, key=lambda v: v.get("number") or 0, default=None)


@dataclass(frozen=True, slots=True)
class FileVersion:
    """One stored version of a file, as Procore lists it in a File's `file_versions[]`
    (OpenAPI: Project Folders and Files, FileVersion): its number (1 the first), size, when
    it was made (`created_at`) and its id. `url` is Procore's opaque download URL for it
    (best_practices/secure_file_access_tips.md: `files[].file_versions[].url`)."""

    number: int
    size: int
    mtime: float | None
    version: str
    url: str | None = field(default=None, repr=False)


def _file_versions(data: list[dict[str, Any]]) -> tuple[FileVersion, ...]:
    """Versions oldest first. Procore's docs name no order for `file_versions[]` (the
    sandbox lists the newest first), so they are sorted by number."""
    versions = [FileVersion(int(v.get("number") or 0), int(v.get("size") or 0),
                            _epoch(v.get("created_at")), str(v["id"]), v.get("url"))
                for v in data if v.get("id") is not None]
    if len(versions) > 1:
        versions.sort(key=lambda v: v.number)
    return tuple(versions)


@dataclass(slots=True)
class _Child:
    entry: Entry
    url: str | None = None  # a file's latest version download URL, where a listing gave it
    # a file's versions, oldest first, where the listing gave them all (a folder's listing
    # does, the flat index only the current one): None when unknown
    versions: tuple[FileVersion, ...] | None = None


@dataclass(slots=True)
class _Folder:
    id: int
    children: dict[str, _Child] | None = None  # by name; None until listed

    def find(self, name: str) -> _Child | None:
        """A child by name; Procore's names are unique regardless of case."""
        assert self.children is not None
        found = self.children.get(name)
        if found is None:
            key = match_key(name, case_insensitive=True)
            found = next((c for n, c in self.children.items()
                          if match_key(n, case_insensitive=True) == key), None)
        return found


def _folder_entry(data: dict[str, Any]) -> Entry:
    return Entry(data["name"], True, 0, _epoch(data.get("updated_at")), str(data["id"]))


def _file_child(data: dict[str, Any]) -> _Child:
    listed = data.get("file_versions") or []
    latest = _latest_version(listed) or {}
    entry = Entry(data["name"], False, int(data.get("size") or latest.get("size") or 0),
                  _epoch(data.get("updated_at")), str(data["id"]),
                  str(latest["id"]) if latest.get("id") else None)
    return _Child(entry, latest.get("url"), _file_versions(listed))


def _is_content(data: dict[str, Any]) -> bool:
    return not (data.get("is_recycle_bin") or data.get("is_deleted"))


@dataclass
class _Walk:
    """What a whole-tree walk costs each way, for choosing between them."""

    index_calls: int
    folder_calls: int
    folders: list[dict[str, Any]] = field(default_factory=list)


class ProcoreConnector:
    """The Documents tool of one project of one company."""

    features = PROCORE_FEATURES

    def __init__(self, client: ProcoreClient, project_id: int, *, direct_upload_max: int = 0,
                 segment_size: int = SEGMENT_SIZE_MIB * MIB, state: State | None = None,
                 notify: Notify | None = None) -> None:
        self.client = client
        self.project_id = project_id
        self.direct_upload_max = direct_upload_max  # bytes; 0: never the deprecated path
        self.segment_size = segment_size  # bytes; larger files go in segments of this size
        self.state = state  # where segmented uploads are recorded for resuming (None: not)
        self.notify = notify
        self.direct_uploads = 0  # files sent by the deprecated one-call path
        self.segments_sent = 0  # segment PUTs made
        self.segments_resumed = 0  # segments a resumed upload did not need to send again
        self._folders: dict[str, _Folder] = {}

    @property
    def usage(self) -> Usage:
        return self.client.usage

    @property
    def _params(self) -> dict[str, Any]:
        return {"project_id": self.project_id}

    async def close(self) -> None:
        await self.client.close()
        await self.client.pacer.store.close()

    async def identity(self) -> str:
        """Who this connection is signed in as (`/me`)."""
        return signed_in_as(await self.client.get_json("/rest/v1.0/me",
                                                       what="read the signed-in user"))

    def forget(self) -> None:
        """Drop every cached listing (a browser's refresh)."""
        self._folders.clear()

    # -- listing ----------------------------------------------------------------------------

    async def _show(self, folder_id: int | None) -> dict[str, Any]:
        path = "/rest/v1.0/folders" + (f"/{folder_id}" if folder_id is not None else "")
        return await self.client.get_json(path, what="list a Documents folder",
                                          params=self._params)

    def _children(self, data: dict[str, Any]) -> dict[str, _Child]:
        children = {f["name"]: _Child(_folder_entry(f)) for f in data.get("folders") or []
                    if _is_content(f)}
        children.update((f["name"], _file_child(f)) for f in data.get("files") or []
                        if _is_content(f))
        return children

    async def _listed(self, path: str) -> _Folder:
        """The folder at `path`, with its children listed (one call if not yet known)."""
        folder = await self._folder(path)
        if folder.children is None:
            try:
                data = await self._show(folder.id if path else None)
            except NotFound:
                self._folders.pop(path, None)
                raise NotFound(f"/{path}: no such folder in the project") from None
            folder.children = self._children(data)
        return folder

    async def _folder(self, path: str) -> _Folder:
        known = self._folders.get(path)
        if known is not None:
            return known
        if not path:
            data = await self._show(None)
            root = self._folders[""] = _Folder(int(data["id"]), self._children(data))
            return root
        parent_path, _, name = path.rpartition("/")
        child = (await self._listed(parent_path)).find(name)
        if child is None or not child.entry.is_dir:
            raise NotFound(f"/{path}: no such folder in the project")
        folder = self._folders[path] = _Folder(int(child.entry.native_id or 0))
        return folder

    async def connect(self) -> None:
        pass  # nothing to start: features are known from the start

    async def list_dir(self, path: str) -> list[Entry]:
        return [child.entry for child in (await self._listed(path)).children.values()]  # type: ignore[union-attr]

    async def stat(self, path: str) -> Entry:
        if not path:
            root = await self._folder("")
            return Entry("", True, native_id=str(root.id))
        parent_path, _, name = path.rpartition("/")
        child = (await self._listed(parent_path)).find(name)
        if child is None:
            raise NotFound(f"/{path}: not found in the project")
        return child.entry

    async def begin_walk(self, path: str) -> None:
        """A job is about to list the whole tree under `path`: read the flat documents index
        instead of one folder at a time when that costs fewer calls."""
        index = f"/rest/v1.0/projects/{self.project_id}/documents"
        params = {"view": "extended", "filters[is_in_recycle_bin]": "false",
                  "per_page": PER_PAGE, "page": 1}
        response = await self.client.send("GET", index, what="read the documents index",
                                          params=params)
        first = parse_json(response, "read the documents index")
        following = response.links.get("next", {}).get("url")
        remaining = math.ceil(int(response.headers.get("total") or 0) / PER_PAGE) - 1
        # weighing the folders costs a call, walking them at least one more: with two pages
        # left or fewer, the rest of the index is never dearer
        if following and remaining > 2:
            walk = await self._walk_costs(index, path, remaining)
            if walk.folder_calls < walk.index_calls:
                self._prime(walk.folders)
                return
        items = list(first)
        while following:
            response = await self.client.send("GET", following,
                                              what="read the documents index")
            items.extend(parse_json(response, "read the documents index"))
            following = response.links.get("next", {}).get("url")
        self._build(items)

    async def _walk_costs(self, index: str, path: str, remaining: int) -> _Walk:
        """The calls left either way: the `remaining` pages of the index, or one per folder
        under `path` (counted from the folders-only index, which is small)."""
        folders = [item async for page in self.client.pages(
            index, what="read the folders index",
            params={"filters[document_type]": "folder", "filters[is_in_recycle_bin]": "false"})
            for item in page]
        paths = _paths(folders)
        under = [f for f in folders if _is_content(f) and paths.get(f["id"]) is not None
                 and (not path or paths[f["id"]] == path
                      or paths[f["id"]].startswith(path + "/"))]
        return _Walk(remaining, len(under) + 1, folders)

    def _prime(self, folders: list[dict[str, Any]]) -> None:
        """Learn every folder's id, so walking to one costs no calls."""
        for folder_id, path in _paths(folders).items():
            if path is not None:
                self._folders.setdefault(path, _Folder(folder_id))

    def _build(self, items: list[dict[str, Any]]) -> None:
        """Every folder's listing from the flat index."""
        paths = _paths([i for i in items if i.get("document_type") == "folder"])
        folders = {fid: _Folder(fid, {}) for fid, path in paths.items() if path is not None}
        for item in items:
            parent = folders.get(item.get("parent_id"))  # type: ignore[arg-type]
            if parent is None or not _is_content(item):
                continue
            assert parent.children is not None
            if item.get("document_type") == "folder":
                parent.children[item["name"]] = _Child(_folder_entry(item))
            else:
                current = (item.get("file") or {}).get("current_version") or {}
                size = (item.get("file") or {}).get("size", current.get("size", 0))
                parent.children[item["name"]] = _Child(
                    Entry(item["name"], False, int(size or 0), _epoch(item.get("updated_at")),
                          str(item["id"]), str(current["id"]) if current.get("id") else None),
                    current.get("url"),
                    # the current version is the whole history when it is the first
                    _file_versions([current]) if current.get("number") == 1 else None)
        self._folders = {paths[fid]: folder for fid, folder in folders.items()}  # type: ignore[misc]

    # -- reading ----------------------------------------------------------------------------

    async def read(self, path: str, entry: Entry) -> AsyncIterator[bytes]:
        parent_path, _, name = path.rpartition("/")
        child = (await self._listed(parent_path)).find(name)
        url = child.url if child and child.entry.native_id == entry.native_id else None
        if url is None:
            data = await self.client.get_json(f"/rest/v1.0/files/{entry.native_id}",
                                              what=f"/{path}", params=self._params)
            url = (_latest_version(data.get("file_versions") or []) or {}).get("url")
            if not url:
                raise ConnectorError(f"/{path}: Procore lists no downloadable version")
        async for chunk in self.client.download(url, what=f"download /{path}"):
            yield chunk

    # -- versions ---------------------------------------------------------------------------

    async def versions(self, path: str, entry: Entry) -> list[FileVersion]:
        """The versions of the file `entry` listed at `path`, oldest first. Free where its
        folder was listed folder by folder (a listing holds every file's `file_versions[]`)
        or the index shows one version; otherwise one `GET /files/{id}`."""
        parent_path, _, name = path.rpartition("/")
        child = (await self._listed(parent_path)).find(name)
        if (child is not None and child.versions is not None
                and child.entry.native_id == entry.native_id
                and child.entry.version == entry.version):
            return list(child.versions)
        data = await self.client.get_json(f"/rest/v1.0/files/{entry.native_id}",
                                          what=f"/{path}", params=self._params)
        return list(_file_versions(data.get("file_versions") or []))

    async def read_version(self, path: str, entry: Entry,
                           version: FileVersion) -> AsyncIterator[bytes]:
        """Stream one version of the file `entry` at `path`, as `versions` listed it."""
        url = version.url
        if url is None:
            found = {v.version: v for v in await self.versions(path, entry)}.get(version.version)
            url = found.url if found else None
            if url is None:
                raise NotFound(f"/{path}: Procore no longer lists version {version.number}")
        async for chunk in self.client.download(
                url, what=f"download /{path} (version {version.number})"):
            yield chunk

    # -- writing ----------------------------------------------------------------------------

    async def write(self, path: str, chunks: AsyncIterable[bytes], *, size: int,
                    mtime: float | None, replacing: Entry | None = None) -> Entry:
        parent_path, _, name = path.rpartition("/")
        parent = await self._listed(parent_path)
        with tempfile.SpooledTemporaryFile(SPOOL_IN_MEMORY) as body:
            segments = await _spool(chunks, body, self.segment_size
                                    if size > self.segment_size else None)
            spooled, fields = body.tell(), dict[str, str]()
            segmented: SegmentedUpload | None = None
            if self.direct_upload_max > 0 and spooled <= self.direct_upload_max:
                await self._direct_upload_warning()
            elif spooled > self.segment_size:
                segments = segments or _hash_segments(body, self.segment_size)
                segmented = await self._upload_in_segments(path, body, segments)
                fields["file[upload_uuid]"] = segmented.uuid
            else:
                fields["file[upload_uuid]"] = await self._upload(name, body)
            if replacing is None:
                # never a silent "name (1)" copy: a clash is an error the engine handles
                fields |= {"file[name]": name, "file[parent_id]": str(parent.id),
                           "file[unique_name]": "false"}
            try:
                data = await self._exactly_once(
                    lambda: self._send_file(fields, name, body, replacing),
                    lambda: self._written(parent_path, name, replacing), what=f"upload /{path}")
            except AlreadyExists as exc:
                if replacing is not None:
                    raise
                raise AlreadyExists(str(exc), await self._relisted(parent, parent_path, name),
                                    ) from exc
        if segmented is not None and self.state is not None:
            await self.state.forget_segmented_upload(segmented.uuid)
        child = _file_child(data)
        parent.children[child.entry.name] = child  # type: ignore[index]
        return child.entry

    async def _direct_upload_warning(self) -> None:
        """The deprecated path is in use: say so once per run (stderr, log and audit)."""
        self.direct_uploads += 1
        if self.direct_uploads == 1 and self.notify is not None:
            await self.notify("warning", (
                f"files up to {self.direct_upload_max:,} bytes are sent with file[data] "
                "because config.toml sets [procore] direct_upload_max; Procore deprecated "
                "that path and answers it more slowly since 2025-11-01: set it to 0 to send "
                "every file through the Uploads API"))

    @property
    def _uploads(self) -> str:
        return f"/rest/v1.1/projects/{self.project_id}/uploads"

    async def _upload(self, name: str, body: IO[bytes]) -> str:
        """Uploads API v1.1, non-segmented: ask for a slot, post the file to storage."""
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        slot = parse_json(await self.client.send(
            "POST", self._uploads, what=f"start the upload of {name}",
            json_body={"response_filename": name, "response_content_type": content_type},
        ), f"start the upload of {name}")
        await self.client.upload_to_storage(slot["url"], slot.get("fields") or {}, name, body,
                                            what=f"upload {name}")
        return str(slot["uuid"])

    async def _send_file(self, fields: dict[str, str], name: str, body: IO[bytes],
                         replacing: Entry | None) -> dict[str, Any]:
        files = None if "file[upload_uuid]" in fields else {"file[data]": (name, body)}
        method, url = (("PATCH", f"/rest/v1.0/files/{replacing.native_id}") if replacing
                       else ("POST", "/rest/v1.0/files"))
        response = await self.client.send(method, url, what=f"store {name}", idempotent=False,
                                          params=self._params, data=fields, files=files,
                                          rewind=body)
        return response.json()

    # -- segmented uploads ------------------------------------------------------------------

    @property
    def _destination(self) -> str:
        """This project, as the state DB's records of segmented uploads name it."""
        return f"{self.client.app.domain} company {self.client.company_id} " \
               f"project {self.project_id}"

    async def _upload_in_segments(self, path: str, body: IO[bytes],
                                  segments: list[dict[str, Any]]) -> SegmentedUpload:
        """Resume the recorded upload of this content to `path` if Procore still takes it,
        else make a new one; either way, PUT the segments not yet stored and complete it."""
        upload = await self._resumable(path, segments)
        if upload is not None:
            try:
                return await self._send_segments(upload, body, path)
            except UploadGone:
                await self._forget(upload)  # expired or gone meanwhile: start again
        upload, created = await self._new_upload(path, segments)
        try:
            return await self._send_segments(upload, body, path)
        except UploadGone as exc:
            # the segments stored so far are no use to anyone: their URLs are refused too
            await self._forget(upload)
            # both times are the servers' own (Dates, whole seconds, so a minute's slack);
            # ours may be off theirs, and a test moves theirs
            if exc.server_time is None or exc.server_time - created < UPLOAD_WINDOW - 60:
                raise
            raise ConnectorError(_window_missed(path, upload, exc.server_time - created),
                                 ) from None

    async def _resumable(self, path: str, segments: list[dict[str, Any]],
                         ) -> SegmentedUpload | None:
        """The recorded upload for `path`, if it holds these very segments (by size and
        sha256), is recent enough, and still has segments to send.

        Procore's Uploads tutorial (tutorials/tutorial_uploads.md) documents only the create
        (POST) and the completion (PATCH) of a v1.1 upload, no call that reports its status,
        so none is made. A record with every segment stored may have been completed and
        attached already (a run killed after the create landed), and an upload is attached
        once only: it is dropped and the file starts afresh. A record with a segment still
        missing cannot have been completed, and a PUT to an upload that expired or vanished
        meanwhile raises UploadGone, which starts a fresh one."""
        if self.state is None:
            return None
        upload = await self.state.segmented_upload(self._destination, path)
        if upload is None:
            return None
        if ([(s["size"], s["sha256"]) for s in upload.segments]
                != [(s["size"], s["sha256"]) for s in segments]
                or time.time() - upload.started_at > RESUME_WITHIN
                or len(upload.etags) == len(segments)):
            await self._forget(upload)
            return None
        if upload.etags and self.notify is not None:
            await self.notify("info", f"/{path}: resuming its upload; {len(upload.etags)} of "
                                      f"{len(segments)} segments are already stored")
        return upload

    async def _new_upload(self, path: str, segments: list[dict[str, Any]],
                          ) -> tuple[SegmentedUpload, float]:
        """A new upload, recorded, and when it was created on Procore's clock (its Date)."""
        what = f"start the upload of /{path}"
        response = await self.client.send("POST", self._uploads, what=what,
                                          json_body={"segments": segments})
        now = time.time()
        data = parse_json(response, what)
        given = data.get("segments") or []
        if len(given) != len(segments):
            raise ConnectorError(f"{what}: Procore answered {len(given)} segments for "
                                 f"{len(segments)}")
        upload = SegmentedUpload(
            self._destination, path, str(data["uuid"]),
            [{**mine, "url": theirs["url"], "headers": theirs.get("headers") or {}}
             for mine, theirs in zip(segments, given, strict=True)], now)
        if self.state is not None:
            await self.state.start_segmented_upload(upload)
        return upload, now - server_lead(response.headers, now)

    async def _send_segments(self, upload: SegmentedUpload, body: IO[bytes],
                             path: str) -> SegmentedUpload:
        """PUT each segment not yet stored, recording its ETag durably, then complete."""
        offset, count = 0, len(upload.segments)
        for number, segment in enumerate(upload.segments):
            if number in upload.etags:
                self.segments_resumed += 1
            else:
                etag = await self.client.put_segment(
                    segment["url"], segment["headers"], body, offset, segment["size"],
                    what=f"upload /{path} (segment {number + 1} of {count})")
                self.segments_sent += 1
                upload.etags[number] = etag
                if self.state is not None:
                    await self.state.record_segment(upload.uuid, number, etag)
            offset += segment["size"]
        what = f"complete the upload of /{path}"
        response = await self.client.send(
            "PATCH", f"{self._uploads}/{upload.uuid}", what=what, ok=(*UPLOAD_GONE, 422),
            json_body={"segments": [{"etag": upload.etags[n]} for n in range(count)]})
        if not response.is_success:
            raise UploadGone(f"{what}: Procore refused it (HTTP {response.status_code})")
        return upload

    async def _forget(self, upload: SegmentedUpload) -> None:
        if self.state is not None:
            await self.state.forget_segmented_upload(upload.uuid)

    async def _written(self, parent_path: str, name: str, replacing: Entry | None,
                       ) -> dict[str, Any] | None:
        """After a lost answer: the file as stored if the write took effect, else None."""
        if replacing is not None:
            data = await self.client.get_json(f"/rest/v1.0/files/{replacing.native_id}",
                                              what=f"check {name}", params=self._params)
            latest = _latest_version(data.get("file_versions") or []) or {}
            if replacing.version is None:  # nothing to compare with: send it again
                return None
            return data if str(latest.get("id")) != replacing.version else None
        folder = await self._folder(parent_path)
        data = await self._show(folder.id if parent_path else None)
        return next((f for f in data.get("files") or []
                     if f["name"] == name and _is_content(f)), None)

    async def _relisted(self, parent: _Folder, parent_path: str, name: str) -> Entry | None:
        """What stands at `name` now, from a fresh listing of its folder (one call): another
        job may have put a file there since the folder was listed."""
        parent.children = self._children(await self._show(parent.id if parent_path else None))
        found = parent.find(name)
        return found.entry if found else None

    async def _exactly_once(self, attempt: Any, check: Any, *, what: str) -> dict[str, Any]:
        """Run a create; when its answer is lost, look before trying again."""
        for failures in range(MAX_RETRIES + 1):
            try:
                return await attempt()
            except ResponseLost:
                await self.client.pacer.sleep(backoff(failures))
                found = await check()
                if found is not None:
                    return found
        raise ConnectorError(f"{what}: no answer after {MAX_RETRIES + 1} tries")

    async def mkdir(self, path: str) -> Entry:
        parent_path, _, name = path.rpartition("/")
        parent = await self._listed(parent_path)
        body = {"folder": {"name": name, **({"parent_id": parent.id} if parent_path else {})}}

        async def create() -> dict[str, Any]:
            return (await self.client.send("POST", "/rest/v1.0/folders",
                                           what=f"create folder /{path}", idempotent=False,
                                           params=self._params, json_body=body)).json()

        async def created() -> dict[str, Any] | None:
            data = await self._show(parent.id if parent_path else None)
            return next((f for f in data.get("folders") or []
                         if f["name"] == name and _is_content(f)), None)

        try:
            data = await self._exactly_once(create, created, what=f"create folder /{path}")
            children: dict[str, _Child] | None = {}
        except AlreadyExists:
            # the name was taken since the parent was listed (another job made the folder):
            # that folder is the one wanted, its content unknown until listed
            found = await created()
            if found is None:
                raise
            data, children = found, None
        entry = _folder_entry(data)
        parent.children[entry.name] = _Child(entry)  # type: ignore[index]
        self._folders[path] = _Folder(int(data["id"]), children)
        return entry

    async def _delete(self, kind: str, path: str, entry: Entry) -> None:
        # already gone (or an earlier answer was lost): the outcome is the same
        with contextlib.suppress(NotFound):
            await self.client.send("DELETE", f"/rest/v1.0/{kind}/{entry.native_id}",
                                   what=f"delete /{path}", params=self._params)
        parent_path, _, name = path.rpartition("/")
        parent = self._folders.get(parent_path)
        if parent is not None and parent.children is not None:
            gone = parent.find(name)
            if gone is not None:
                parent.children.pop(gone.entry.name, None)
        for known in [p for p in self._folders if p == path or p.startswith(path + "/")]:
            del self._folders[known]

    async def remove(self, path: str, entry: Entry) -> None:
        await self._delete("files", path, entry)

    async def rmdir(self, path: str, entry: Entry) -> None:
        await self._delete("folders", path, entry)

    async def trash(self, path: str, entry: Entry) -> None:
        """Procore's deletes go to the project's Recycle Bin (procore-api.md: Delete file and
        Delete folder answer 200, "moved to Recycle Bin")."""
        await self._delete("folders" if entry.is_dir else "files", path, entry)

    async def rename(self, path: str, entry: Entry, new_name: str) -> Entry:
        """Rename a file or folder in place; a file keeps its version history."""
        what = f"rename /{path}"
        if entry.is_dir:
            data = (await self.client.send(
                "PATCH", f"/rest/v1.0/folders/{entry.native_id}", what=what,
                params=self._params, json_body={"folder": {"name": new_name}})).json()
        else:
            data = (await self.client.send(
                "PATCH", f"/rest/v1.0/files/{entry.native_id}", what=what,
                params=self._params, data={"file[name]": new_name})).json()
        self.forget()
        return _folder_entry(data) if entry.is_dir else _file_child(data).entry

    async def move(self, path: str, entry: Entry, new_path: str) -> Entry:
        """Move a file to another folder and name in one call (PATCH /files/{id} with
        file[parent_id] and file[name], procore-api.md "Rename / move"); its version history
        goes with it. The new folder exists."""
        new_parent, _, new_name = new_path.rpartition("/")
        target = await self._listed(new_parent)
        if target.find(new_name) is not None:
            raise AlreadyExists(f"/{new_path} already exists")
        data = (await self.client.send(
            "PATCH", f"/rest/v1.0/files/{entry.native_id}", what=f"move /{path}",
            params=self._params,
            data={"file[name]": new_name, "file[parent_id]": str(target.id)})).json()
        moved = _file_child(data)
        old = self._folders.get(path.rpartition("/")[0])
        if old is not None and old.children is not None:
            gone = old.find(path.rpartition("/")[2])
            if gone is not None:
                old.children.pop(gone.entry.name, None)
        if target.children is not None:
            target.children[moved.entry.name] = moved
        return moved.entry

    async def set_mtime(self, path: str, mtime: float) -> None:
        raise InvalidPath("Procore sets modification times itself")


def _paths(folders: list[dict[str, Any]]) -> dict[int, str | None]:
    """Each content folder's path from the project root ('' for the root), from parent ids;
    None for the Recycle Bin, deleted folders and anything under them."""
    by_id = {f["id"]: f for f in folders}
    paths: dict[int, str | None] = {}

    def path_of(folder_id: int) -> str | None:
        if folder_id in paths:
            return paths[folder_id]
        paths[folder_id] = None  # guards against a cycle in bad data
        folder = by_id.get(folder_id)
        if folder is None or not _is_content(folder):
            return None
        parent = folder.get("parent_id")
        if parent is None:
            found: str | None = ""
        else:
            above = path_of(parent)
            found = None if above is None else join(above, folder["name"])
        paths[folder_id] = found
        return found

    for folder_id in by_id:
        path_of(folder_id)
    return paths


def procore_app(config: dict[str, Any], secrets: dict[str, Any],
                installation: dict[str, Any]) -> ClientApp:
    """The API client a connection signs in with: its own custom credentials, or the
    installation's default ones (config.toml or the environment)."""
    if config.get("credentials") == "custom":
        return ClientApp(config["domain"], config["client_id"], secrets["client_secret"],
                         config.get("login_url"))
    try:
        app = system_default_app(installation)
    except SignInError as exc:  # a bad domain or login URL in the installation's settings
        raise Fatal(f"the system default client credentials: {exc}") from None
    if app is None:
        raise Fatal("this connection uses the system default client credentials, and none are "
                    "configured: set DRYVIQ_PROCORE_CLIENT_ID and DRYVIQ_PROCORE_CLIENT_SECRET, "
                    "or [procore] client_id and client_secret in config.toml")
    return app


def procore_client(app: ClientApp, store: TokenStore, opening: Opening, *,
                   company_id: int | None = None) -> ProcoreClient:
    """A client paced on the installation's shared budget for this API client."""
    pacer = Pacer(budget_store_for(opening.state), app.budget_key,
                  interactive=opening.interactive, wait=opening.wait_for_budget,
                  stop=opening.stop, **pacer_settings(opening.home.config()))
    return ProcoreClient(app, Authenticator(app, store), pacer, company_id=company_id)


def open_procore(connection: Connection, secrets: dict[str, Any],
                 opening: Opening) -> ProcoreConnector:
    config, installation = connection.config, opening.home.config()
    app = procore_app(config, secrets, installation)
    store = StateTokenStore(opening.state, opening.home, connection.id)
    client = procore_client(app, store, opening, company_id=int(config["company_id"]))
    return ProcoreConnector(client, int(config["project_id"]),
                            direct_upload_max=direct_upload_max(installation),
                            segment_size=segment_size(installation), state=opening.state,
                            notify=opening.notify)


def direct_upload_max(installation: dict[str, Any]) -> int:
    """config.toml's [procore] direct_upload_max: the largest file (bytes) still sent with
    the deprecated `file[data]` in the create call itself; 0 (the default) sends every file
    through the Uploads API."""
    value = (installation.get("procore") or {}).get("direct_upload_max", 0)
    if type(value) is not int or value < 0:
        raise Fatal(f"config.toml [procore] direct_upload_max = {value!r}: use 0 (every file "
                    "through the Uploads API) or a size in bytes, such as 1048576")
    return value


def segment_size(installation: dict[str, Any]) -> int:
    """config.toml's [procore] segment_size_mib, in bytes: larger files go in segments."""
    value = (installation.get("procore") or {}).get("segment_size_mib", SEGMENT_SIZE_MIB)
    if type(value) is not int or not MIN_SEGMENT_MIB <= value <= MAX_SEGMENT_MIB:
        raise Fatal(f"config.toml [procore] segment_size_mib = {value!r}: use a whole number "
                    f"of MiB from {MIN_SEGMENT_MIB} (the storage host's smallest segment) to "
                    f"{MAX_SEGMENT_MIB}, such as {SEGMENT_SIZE_MIB}")
    return value * MIB


class _SegmentHashes:
    """Each segment's size, sha256 and md5, as bytes go by (Procore asks for them up front)."""

    def __init__(self, segment_size: int) -> None:
        self.segment_size = segment_size
        self.segments: list[dict[str, Any]] = []
        self._size, self._sha256, self._md5 = 0, hashlib.sha256(), hashlib.md5()

    def update(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            part = view[:self.segment_size - self._size]
            self._sha256.update(part)
            self._md5.update(part)
            self._size += len(part)
            view = view[len(part):]
            if self._size == self.segment_size:
                self._close()

    def _close(self) -> None:
        self.segments.append({"size": self._size, "sha256": self._sha256.hexdigest(),
                              "md5": self._md5.hexdigest()})
        self._size, self._sha256, self._md5 = 0, hashlib.sha256(), hashlib.md5()

    def done(self) -> list[dict[str, Any]]:
        if self._size:
            self._close()
        return self.segments


def _window_missed(path: str, upload: SegmentedUpload, took: float) -> str:
    """Why a file that outlasted its upload's hour failed, and that no setting helps."""
    size = sum(s["size"] for s in upload.segments)
    sent = sum(upload.segments[n]["size"] for n in upload.etags)
    return (f"/{path} could not be sent within Procore's one-hour upload window: "
            f"{_mib(sent)} of its {_mib(size)} MiB reached the storage host in "
            f"{took / 60:,.0f} minutes, and Procore's storage refuses every segment an hour "
            "after the upload is created (tutorials/tutorial_uploads.md). The segments sent "
            "are lost with it, and a smaller segment_size_mib does not help (every segment "
            "shares that hour): over this link the file cannot be sent this way; send it "
            "from a faster connection.")


def _mib(size: int) -> str:
    return f"{size / MIB:,.1f}"


async def _spool(chunks: AsyncIterable[bytes], body: IO[bytes],
                 segment_size: int | None) -> list[dict[str, Any]] | None:
    """Write the file to `body`, hashing its segments on the way when `segment_size` is given
    (the file is expected to need them)."""
    hashes = _SegmentHashes(segment_size) if segment_size else None
    async for chunk in chunks:
        body.write(chunk)
        if hashes is not None:
            hashes.update(chunk)
    return hashes.done() if hashes is not None else None


def _hash_segments(body: IO[bytes], segment_size: int) -> list[dict[str, Any]]:
    """Segment hashes of a spooled file that turned out larger than its listed size."""
    hashes = _SegmentHashes(segment_size)
    body.seek(0)
    while chunk := body.read(CHUNK):
        hashes.update(chunk)
    return hashes.done()
