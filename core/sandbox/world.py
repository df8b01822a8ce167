"""The sandbox's Procore, in memory: companies, projects, Documents folders and files with their
versions, uploads, stored bytes, OAuth clients, codes and tokens, and rate windows.

No HTTP here (app.py speaks it), so tests and the demo build and inspect a world directly. The
server runs in its own thread while a test reads or changes the world, so every public method
holds `lock` (re-entrant: the app holds it around a whole request, helpers take it again).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import math
import mimetypes
import random
import secrets
import threading
import time
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

SANDBOX_CLIENT_ID = "dryviq-sandbox"
SANDBOX_CLIENT_SECRET = "sandbox-secret"
SERVICE_CLIENT_ID = "dryviq-service-account"
SERVICE_CLIENT_SECRET = "service-secret"
SANDBOX_LOGIN = "pm@summit-builders.example"
SANDBOX_PASSWORD = "sandbox"
SANDBOX_USER_NAME = "Pat Morgan"
SERVICE_USER_LOGIN = "service-account@dryviq.example"
SERVICE_USER_NAME = "DryvIQ Service Account"

OOB_REDIRECT = "urn:ietf:wg:oauth:2.0:oob"
# registered on every new Procore app by default (oauth/oauth_keys.md)
DEFAULT_REDIRECT = "http://localhost"
AUTHORIZATION_CODE = "authorization_code"
REFRESH_TOKEN = "refresh_token"
CLIENT_CREDENTIALS = "client_credentials"

FIRST_ID = 560_000_000_000  # Procore's ids exceed 32 bits; so do ours, so clients notice
CODE_LIFETIME = 600.0  # seconds an authorization code may wait to be exchanged
UPLOAD_START_LIMIT = 3600.0  # seconds to start the storage half of an upload
MIN_SEGMENT_SIZE = 5_000_000  # bytes: every segment but the last (S3's part minimum)
MAX_SEGMENT_SIZE = 5 << 30  # bytes: S3's largest single upload
MAX_PATH_LENGTH = 255  # characters, from the project root, '/'-joined
INVALID_NAME_CHARS = '/<>:\\|?*'
RECYCLE_BIN = "Recycle Bin"
DEFAULT_CONTENT_TYPE = "application/octet-stream"


@dataclass
class SandboxConfig:
    """How strict and how unreliable the sandbox is: limits, faults and latency."""

    hourly_limit: int = 3600
    hourly_window: float = 3600.0  # seconds
    spike_limit: int = 100
    spike_window: float = 10.0  # seconds
    access_token_lifetime: int = 5400  # seconds
    fail_rate: float = 0.0  # share of API requests answered 500/502/503 before any change
    drop_rate: float = 0.0  # share of changes made whose response is then lost
    latency: float = 0.0  # seconds added to each API request
    seed: int = 0
    max_per_page: int = 2000
    default_per_page: int = 100
    min_segment_size: int = MIN_SEGMENT_SIZE  # tests lower it to keep files small
    # redirect URIs registered on every client beside out-of-band and http://localhost
    redirect_uris: tuple[str, ...] = ()
    # seconds the sandbox's clock is ahead of the machine's (negative: behind): its Date header,
    # rate-limit resets, token lifetimes, upload expiry and timestamps all follow it
    clock_offset: float = 0.0


class SandboxError(Exception):
    """A request the model refuses; app.py answers each kind as Procore does."""


class Missing(SandboxError):
    """No such object, or not in this project (Procore answers 404 for both)."""


class Denied(SandboxError):
    """The object exists but this user or client may not use it this way."""


class Mismatch(SandboxError):
    """Bytes the storage host refuses: not what was declared (S3's error code in `code`)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Invalid(SandboxError):
    """A field's value is refused, with the human reason Procore gives per field."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(f"{field_name} {reason}")
        self.field = field_name
        self.reason = reason


@dataclass(slots=True, eq=False)
class User:
    id: int
    login: str
    name: str
    password: str | None  # None: cannot sign in (a service account)
    company_ids: list[int] = field(default_factory=list)  # the first is the user's own company
    project_ids: set[int] | None = None  # None: every project of the user's companies

    def may_see(self, project: Project) -> bool:
        return project.company_id in self.company_ids and (
            self.project_ids is None or project.id in self.project_ids)


@dataclass(slots=True, frozen=True)
class Client:
    """An OAuth application; a service account's client acts as its own user. Procore sends
    a browser only to a redirect URI registered on the app, matched exactly: no dynamic
    ports (oauth/oauth_keys.md)."""

    client_id: str
    secret: str
    grants: frozenset[str]
    service_user: User | None = None
    redirect_uris: frozenset[str] = frozenset({OOB_REDIRECT, DEFAULT_REDIRECT})


@dataclass(slots=True, eq=False)
class Company:
    id: int
    name: str


@dataclass(slots=True, eq=False)
class Project:
    id: int
    company_id: int
    name: str
    number: str
    active: bool
    created_at: float
    updated_at: float
    nodes: dict[int, Node] = field(default_factory=dict)  # every folder and file, by id (= age)
    root: Node = field(init=False)
    recycle_bin: Node = field(init=False)


@dataclass(slots=True, eq=False)
class Blob:
    """Bytes on the storage host."""

    id: int
    data: bytes
    content_type: str


@dataclass(slots=True, eq=False)
class Version:
    id: int
    file: Node
    number: int
    blob: Blob
    created_at: float
    created_by: User
    notes: str | None = None
    filename: str = ""  # the stored file's name (its `prostore_file`): the file's name then

    @property
    def size(self) -> int:
        return len(self.blob.data)


@dataclass(slots=True, eq=False)
class Node:
    """A Documents folder or file."""

    id: int
    project: Project
    name: str
    parent: Node | None
    is_folder: bool
    created_at: float
    updated_at: float
    created_by: User
    description: str | None = None
    private: bool = False
    is_deleted: bool = False
    is_recycle_bin: bool = False
    children: dict[int, Node] = field(default_factory=dict)
    # live children by (is_folder, name key), for Procore's one-name-per-kind rule
    names: dict[tuple[bool, str], Node] = field(default_factory=dict)
    versions: list[Version] = field(default_factory=list)

    @property
    def read_only(self) -> bool:
        """The root and the Recycle Bin are the system's, not the user's."""
        return self.parent is None or self.is_recycle_bin

    @property
    def latest(self) -> Version:
        return self.versions[-1]

    @property
    def names_from_root(self) -> list[str]:
        """The names from the root (named after the project) down to this node."""
        names: list[str] = []
        node: Node | None = self
        while node is not None:
            names.append(node.name)
            node = node.parent
        return names[::-1]

    @property
    def name_with_path(self) -> str:
        return "/".join(self.names_from_root)

    @property
    def path(self) -> str:
        """Relative to the project root, '/'-joined ('' for the root)."""
        return "/".join(self.names_from_root[1:])

    def walk(self, depth: int | None = None) -> Iterator[Node]:
        """This node and everything under it (`depth` levels down at most, when given)."""
        yield self
        if depth is None or depth > 0:
            for child in self.children.values():
                yield from child.walk(None if depth is None else depth - 1)


@dataclass(slots=True, eq=False)
class Segment:
    """One declared part of a segmented upload, and what the storage host received."""

    size: int
    sha256: str
    md5: str | None
    data: bytes | None = None
    etag: str | None = None


@dataclass(slots=True, eq=False)
class Upload:
    uuid: str
    project: Project
    client_id: str
    filename: str
    content_type: str
    fields: dict[str, str]
    created_at: float
    blob: Blob | None = None  # set once the storage POST arrived (or the segments completed)
    attached: bool = False
    segments: list[Segment] | None = None  # a segmented upload's parts, in order

    @property
    def status(self) -> str:
        return "complete" if self.blob is not None else "ready"


@dataclass(slots=True, eq=False)
class Code:
    code: str
    client_id: str
    redirect_uri: str
    user: User
    expires_at: float
    used: bool = False


@dataclass(slots=True, eq=False)
class Token:
    access_token: str
    refresh_token: str | None
    client_id: str
    user: User
    created_at: float
    expires_at: float
    access_alive: bool = True
    refresh_alive: bool = True

    @property
    def service_account(self) -> bool:
        """From the client credentials grant: the only tokens without a refresh token."""
        return self.refresh_token is None


@dataclass(slots=True)
class Window:
    """A fixed rate window that starts at the first call after the previous one reset."""

    limit: int
    length: float
    started: float = 0.0
    count: int = 0
    past: list[int] = field(default_factory=list)  # calls counted in each earlier window

    def roll(self, now: float) -> None:
        if self.count == 0 or now >= self.started + self.length:
            if self.count:
                self.past.append(self.count)
            self.started, self.count = now, 0

    @property
    def remaining(self) -> int:
        return self.limit - self.count


@dataclass(slots=True, frozen=True)
class Rate:
    """One counted request's verdict and the window its headers describe."""

    allowed: bool
    limit: int
    remaining: int
    reset: int  # Unix seconds, on the sandbox's clock
    window: float  # the binding window's length in seconds
    retry_after: int  # refused: whole seconds until every spent window has reset; else 0


def name_key(name: str) -> str:
    """Procore compares names without regard to case."""
    return unicodedata.normalize("NFC", name).casefold()


def split_extension(name: str) -> tuple[str, str]:
    """('plan', '.pdf'); a leading dot is part of the stem ('.env' has no extension)."""
    stem, dot, extension = name.rpartition(".")
    return (stem, dot + extension) if stem else (name, "")


def name_problem(name: str) -> str | None:
    """Why Procore refuses `name` by itself (the path length and clashes are checked apart)."""
    if not name:
        return "can't be blank"
    if any(c in INVALID_NAME_CHARS for c in name):
        return "can't contain any of the characters / < > : \\ | ? *"
    if name != name.strip():
        return "can't begin or end with whitespace"
    stem, extension = split_extension(name)
    if extension and stem != stem.rstrip():
        return "can't have whitespace before the extension"
    return None


def _split_path(path: str) -> list[str]:
    return [part for part in path.split("/") if part]


class World:
    """Everything the sandbox knows; see the module docstring."""

    def __init__(self, config: SandboxConfig | None = None, *,
                 base_url: str = "http://procore.sandbox",
                 storage_url: str = "http://storage.sandbox") -> None:
        self.config = config or SandboxConfig()
        self.base_url = base_url
        self.storage_url = storage_url
        self.lock = threading.RLock()
        self.clock = self._now  # a test may replace it to move time along
        self.rng = random.Random(self.config.seed)
        self._ids = itertools.count(FIRST_ID)
        self._signing_key = secrets.token_bytes(32)
        self.users: dict[int, User] = {}
        self.clients: dict[str, Client] = {}
        self.companies: dict[int, Company] = {}
        self.projects: dict[int, Project] = {}
        self.nodes: dict[int, Node] = {}
        self.file_versions: dict[int, Version] = {}
        self.blobs: dict[int, Blob] = {}
        self.uploads: dict[str, Upload] = {}
        self.codes: dict[str, Code] = {}
        self.tokens: dict[str, Token] = {}  # by access token
        self.refresh_tokens: dict[str, Token] = {}
        self.windows: dict[str, tuple[Window, Window]] = {}  # client_id -> (spike, hourly)
        self.requests: Counter[str] = Counter()  # "METHOD /route/template" -> requests
        self.api_calls = 0  # requests counted against a rate limit
        self.rate_limited = 0  # 429s sent
        self.storage_auth_refusals = 0  # storage requests refused for carrying Authorization
        self.segment_puts: Counter[tuple[str, int]] = Counter()  # (uuid, index) -> stored
        self.segment_puts_begun = 0  # segment PUTs that reached the storage host
        # a test's hold: segment PUTs from this index on wait (unstored) until it is cleared
        self.hold_segments_from: int | None = None
        self.download_url = base_url  # the version-download host (app.py: like storage.procore)
        self.user = self.add_user(SANDBOX_LOGIN, SANDBOX_USER_NAME, SANDBOX_PASSWORD)
        self.service_user = self.add_user(SERVICE_USER_LOGIN, SERVICE_USER_NAME, None,
                                          project_ids=set())
        self.add_client(SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET,
                        {AUTHORIZATION_CODE, REFRESH_TOKEN})
        self.add_client(SERVICE_CLIENT_ID, SERVICE_CLIENT_SECRET, {CLIENT_CREDENTIALS},
                        service_user=self.service_user)

    def _id(self) -> int:
        return next(self._ids)

    def _now(self) -> float:
        """The sandbox's time: the machine's, shifted by `clock_offset`."""
        return time.time() + self.config.clock_offset

    def _sign(self, text: str) -> str:
        return hmac.new(self._signing_key, text.encode(), hashlib.sha256).hexdigest()

    # -- people, companies, projects --------------------------------------------------------

    def add_user(self, login: str, name: str, password: str | None, *,
                 project_ids: set[int] | None = None) -> User:
        with self.lock:
            user = User(self._id(), login, name, password, project_ids=project_ids)
            self.users[user.id] = user
            return user

    def add_client(self, client_id: str, secret: str, grants: set[str], *,
                   service_user: User | None = None) -> Client:
        """A client with the default redirect URIs and the config's."""
        with self.lock:
            client = Client(client_id, secret, frozenset(grants), service_user)
            client = replace(client, redirect_uris=client.redirect_uris | set(
                self.config.redirect_uris))
            self.clients[client_id] = client
            return client

    def register_redirect_uri(self, client_id: str, uri: str) -> None:
        """Add `uri` to the client's redirect URIs, as its developer would in the portal."""
        with self.lock:
            client = self.clients[client_id]
            self.clients[client_id] = replace(client, redirect_uris=client.redirect_uris | {uri})

    def add_company(self, name: str) -> Company:
        """A company the sign-in user belongs to (the first one added is the user's own)."""
        with self.lock:
            company = Company(self._id(), name)
            self.companies[company.id] = company
            self.user.company_ids.append(company.id)
            return company

    def add_project(self, company_id: int, name: str, *, number: str = "", active: bool = True,
                    created_at: float | None = None) -> Project:
        """A project with its Documents root (named after it) and Recycle Bin."""
        with self.lock:
            at = self.clock() if created_at is None else created_at
            project = Project(self._id(), company_id, name, number, active, at, at)
            self.projects[project.id] = project
            project.root = self._new_node(project, name, None, True, self.user, at)
            project.recycle_bin = self._new_node(project, RECYCLE_BIN, project.root, True,
                                                 self.user, at)
            project.recycle_bin.is_recycle_bin = True
            return project

    def permit_service_account(self, project_id: int) -> None:
        """Let the service account's tokens use this project (and see its company)."""
        with self.lock:
            project = self.projects[project_id]
            user = self.service_user
            if project.company_id not in user.company_ids:
                user.company_ids.append(project.company_id)
            assert user.project_ids is not None
            user.project_ids.add(project.id)

    def company_for(self, user: User, company_id: int | None) -> Company:
        with self.lock:
            if company_id not in user.company_ids:
                raise Denied("You do not have access to this company")
            return self.companies[company_id]

    def project_for(self, user: User, company: Company, project_id: int) -> Project:
        with self.lock:
            project = self.projects.get(project_id)
            if project is None:
                raise Missing("Not Found")
            if project.company_id != company.id or not user.may_see(project):
                raise Denied("You do not have access to this project")
            return project

    def visible_projects(self, user: User, company: Company) -> list[Project]:
        with self.lock:
            return [p for p in self.projects.values()
                    if p.company_id == company.id and user.may_see(p)]

    # -- OAuth --------------------------------------------------------------------------------

    def client(self, client_id: str, secret: str) -> Client | None:
        """The client these credentials authenticate, or None."""
        found = self.clients.get(client_id)
        if found is None or not hmac.compare_digest(found.secret.encode(), secret.encode()):
            return None
        return found

    def sign_in(self, login: str, password: str) -> User | None:
        with self.lock:
            for user in self.users.values():
                if (user.password is not None and user.login.casefold() == login.casefold()
                        and hmac.compare_digest(user.password.encode(), password.encode())):
                    return user
            return None

    def issue_code(self, client_id: str, redirect_uri: str, user: User | None = None) -> str:
        """An authorization code, as if `user` (the sign-in user) signed in and approved."""
        with self.lock:
            code = Code(secrets.token_hex(32), client_id, redirect_uri, user or self.user,
                        self.clock() + CODE_LIFETIME)
            self.codes[code.code] = code
            return code.code

    def redeem_code(self, client: Client, code: str, redirect_uri: str) -> Token | None:
        """Tokens for an unused, unexpired code issued to this client for this redirect URI."""
        with self.lock:
            found = self.codes.get(code)
            if (found is None or found.used or self.clock() >= found.expires_at
                    or found.client_id != client.client_id or found.redirect_uri != redirect_uri):
                return None
            found.used = True
            return self._new_token(client, found.user, refreshable=True)

    def refresh(self, client: Client, refresh_token: str) -> Token | None:
        """A new pair; the old pair dies at once, whatever becomes of the answer."""
        with self.lock:
            old = self.refresh_tokens.get(refresh_token)
            if old is None or not old.refresh_alive or old.client_id != client.client_id:
                return None
            old.access_alive = old.refresh_alive = False
            return self._new_token(client, old.user, refreshable=True)

    def client_token(self, client: Client) -> Token:
        """A service account's token: no refresh token; the grant is repeated on expiry."""
        assert client.service_user is not None
        with self.lock:
            return self._new_token(client, client.service_user, refreshable=False)

    def _new_token(self, client: Client, user: User, *, refreshable: bool) -> Token:
        now = self.clock()
        token = Token(secrets.token_urlsafe(32), secrets.token_hex(32) if refreshable else None,
                      client.client_id, user, now, now + self.config.access_token_lifetime)
        self.tokens[token.access_token] = token
        if token.refresh_token is not None:
            self.refresh_tokens[token.refresh_token] = token
        return token

    def authenticate(self, access_token: str | None) -> Token | None:
        """The token behind a Bearer value, if it is still good."""
        with self.lock:
            token = self.tokens.get(access_token or "")
            if token is None or not token.access_alive or self.clock() >= token.expires_at:
                return None
            return token

    def issuer(self, access_token: str | None) -> str | None:
        """The client an access token was issued to, alive or not (None: never issued here).
        A 401 for an expired or revoked token is still that client's request."""
        with self.lock:
            token = self.tokens.get(access_token or "")
            return token.client_id if token is not None else None

    def revoke(self, client: Client, value: str) -> None:
        """Kill the access/refresh pair `value` belongs to, if it is this client's. An access
        token revokes the pair only while it is valid: an expired one revokes nothing and the
        refresh token lives on, as on Doorkeeper-style servers such as Procore's login service
        (oauth/oauth_endpoints.md says only that the pair dies, and that the answer is 200
        either way; it is silent on expired access tokens). A refresh token always revokes."""
        with self.lock:
            token = self.tokens.get(value)
            if token is not None and (not token.access_alive or self.clock() >= token.expires_at):
                return
            token = token or self.refresh_tokens.get(value)
            if token is not None and token.client_id == client.client_id:
                token.access_alive = token.refresh_alive = False

    def expire_access_tokens(self) -> None:
        """Every access token issued so far now answers 401 (refresh tokens still work)."""
        with self.lock:
            for token in self.tokens.values():
                token.access_alive = False

    def revoke_refresh_tokens(self) -> None:
        """Every refresh token issued so far is dead: the user must sign in again."""
        with self.lock:
            for token in self.tokens.values():
                token.refresh_alive = False

    # -- rate limits and faults ---------------------------------------------------------------

    def charge(self, client_id: str) -> Rate:
        """Count one request against the client's windows, unless either is used up."""
        config = self.config
        with self.lock:
            now = self.clock()
            windows = self.windows.setdefault(client_id, (
                Window(config.spike_limit, config.spike_window),
                Window(config.hourly_limit, config.hourly_window)))
            for window in windows:
                window.roll(now)
            allowed = all(window.remaining > 0 for window in windows)
            if allowed:
                for window in windows:
                    window.count += 1
                self.api_calls += 1
            else:
                self.rate_limited += 1
            binding = min(windows, key=lambda w: w.remaining)  # the spike window wins a tie
            spent = [w.started + w.length for w in windows if w.remaining <= 0]
            retry_after = 0 if allowed else max(1, math.ceil(max(spent) - now))
            return Rate(allowed, binding.limit, binding.remaining,
                        math.ceil(binding.started + binding.length), binding.length, retry_after)

    def fault(self) -> int | None:
        """The 5xx status to fail this request with, by `fail_rate`, or None."""
        with self.lock:
            if self.config.fail_rate > 0 and self.rng.random() < self.config.fail_rate:
                return self.rng.choice((500, 502, 503))
            return None

    def drops(self) -> bool:
        """Whether to lose this change's response, by `drop_rate`."""
        with self.lock:
            return self.config.drop_rate > 0 and self.rng.random() < self.config.drop_rate

    def count(self, method: str, template: str) -> None:
        with self.lock:
            self.requests[f"{method} {template}"] += 1

    # -- Documents ----------------------------------------------------------------------------

    def _new_node(self, project: Project, name: str, parent: Node | None, is_folder: bool,
                  user: User, at: float) -> Node:
        node = Node(self._id(), project, name, parent, is_folder, at, at, user)
        self.nodes[node.id] = node
        project.nodes[node.id] = node
        if parent is not None:
            self._attach(parent, node)
        return node

    @staticmethod
    def _attach(parent: Node, node: Node) -> None:
        node.parent = parent
        parent.children[node.id] = node
        if not parent.is_recycle_bin:  # deleted items may share names
            parent.names[(node.is_folder, name_key(node.name))] = node

    @staticmethod
    def _detach(node: Node) -> None:
        parent = node.parent
        assert parent is not None
        del parent.children[node.id]
        key = (node.is_folder, name_key(node.name))
        if parent.names.get(key) is node:
            del parent.names[key]

    def node(self, project: Project, node_id: int, *, folder: bool) -> Node:
        """A folder or file of this project, deleted or not."""
        with self.lock:
            found = self.nodes.get(node_id)
            if found is None or found.project is not project or found.is_folder != folder:
                raise Missing("Not Found")
            return found

    def _parent(self, project: Project, folder_id: int | None) -> Node:
        """A folder that may receive items (the root when None)."""
        if folder_id is None:
            return project.root
        parent = self.node(project, folder_id, folder=True)
        if parent.is_deleted:
            raise Missing("Not Found")
        if parent.is_recycle_bin:
            raise Denied("Items cannot be added to the Recycle Bin")
        return parent

    def _check_name(self, parent: Node, name: str, is_folder: bool,
                    moving: Node | None = None) -> None:
        problem = name_problem(name)
        if problem is not None:
            raise Invalid("name", problem)
        path = "/".join([*parent.names_from_root[1:], name])
        if len(path) > MAX_PATH_LENGTH:
            raise Invalid("name", f"makes the path longer than {MAX_PATH_LENGTH} characters")
        taken = parent.names.get((is_folder, name_key(name)))
        if taken is not None and taken is not moving:
            raise Invalid("name", "has already been taken")

    def _free_name(self, parent: Node, name: str, is_folder: bool) -> str:
        """`name`, or 'name (1).ext', 'name (2).ext', ... whichever is free."""
        stem, extension = split_extension(name)
        candidate, number = name, 0
        while (is_folder, name_key(candidate)) in parent.names:
            number += 1
            candidate = f"{stem} ({number}){extension}"
        return candidate

    def create_folder(self, project: Project, parent_id: int | None, name: str, user: User, *,
                      private: bool = False) -> Node:
        with self.lock:
            parent = self._parent(project, parent_id)
            self._check_name(parent, name, True)
            node = self._new_node(project, name, parent, True, user, self.clock())
            node.private = private
            return node

    def create_file(self, project: Project, parent_id: int | None, name: str,
                    content: Blob | Upload, user: User, *, description: str | None = None,
                    unique: bool = False) -> Node:
        with self.lock:
            parent = self._parent(project, parent_id)
            if unique and name_problem(name) is None:
                name = self._free_name(parent, name, False)
            self._check_name(parent, name, False)
            now = self.clock()
            node = self._new_node(project, name, parent, False, user, now)
            node.description = description
            self._add_version(node, content, user, now)
            return node

    def add_version(self, node: Node, content: Blob | Upload, user: User) -> Version:
        with self.lock:
            if node.is_deleted:
                raise Missing("Not Found")
            return self._add_version(node, content, user, self.clock())

    def _add_version(self, node: Node, content: Blob | Upload, user: User,
                     at: float) -> Version:
        if isinstance(content, Upload):
            assert content.blob is not None
            content.attached = True
            blob = content.blob
        else:
            blob = content
        version = Version(self._id(), node, len(node.versions) + 1, blob, at, user,
                          filename=node.name)
        node.versions.append(version)
        node.updated_at = at
        self.file_versions[version.id] = version
        return version

    def change(self, node: Node, *, name: str | None = None, parent_id: int | None = None,
               description: str | None = None) -> Node:
        """Rename and/or move a live item (and set a file's description)."""
        with self.lock:
            if node.is_deleted:
                raise Missing("Not Found")
            if node.read_only:
                raise Denied("This folder cannot be changed")
            assert node.parent is not None
            parent = node.parent if parent_id is None else self._parent(node.project, parent_id)
            if node.is_folder and any(n is node for n in _ancestry(parent)):
                raise Invalid("parent_id", "can't be the folder itself or one of its subfolders")
            new_name = node.name if name is None else name
            if parent is not node.parent or new_name != node.name:
                self._check_name(parent, new_name, node.is_folder, moving=node)
                self._detach(node)
                node.name = new_name
                self._attach(parent, node)
                node.updated_at = self.clock()
            if description is not None:
                node.description = description
                node.updated_at = self.clock()
            return node

    def delete(self, node: Node) -> None:
        """To the Recycle Bin: the item and everything under it are deleted."""
        with self.lock:
            if node.is_deleted:
                raise Missing("Not Found")
            if node.read_only:
                raise Denied("The root folder and the Recycle Bin cannot be deleted")
            now = self.clock()
            for item in node.walk():
                item.is_deleted = True
            node.updated_at = now
            self._detach(node)
            self._attach(node.project.recycle_bin, node)

    # -- bytes, uploads and downloads -------------------------------------------------------

    def add_blob(self, data: bytes, content_type: str = DEFAULT_CONTENT_TYPE) -> Blob:
        with self.lock:
            blob = Blob(self._id(), data, content_type)
            self.blobs[blob.id] = blob
            return blob

    def blob_signature(self, blob: Blob) -> str:
        return self._sign(f"blob:{blob.id}")

    def signed_blob(self, blob_id: int, signature: str) -> Blob:
        """A blob by a pre-signed URL's id and signature."""
        with self.lock:
            blob = self.blobs.get(blob_id)
            if blob is None:
                raise Missing("The specified key does not exist.")
            if not hmac.compare_digest(self.blob_signature(blob), signature):
                raise Denied("The request signature we calculated does not match the "
                             "signature you provided.")
            return blob

    def version_for(self, user: User, version_id: int) -> Version:
        """A file version the user may download."""
        with self.lock:
            version = self.file_versions.get(version_id)
            if version is None:
                raise Missing("Not Found")
            if not user.may_see(version.file.project):
                raise Denied("You do not have access to this project")
            return version

    def create_upload(self, project: Project, client_id: str, filename: str,
                      content_type: str) -> Upload:
        """An upload and the form fields its storage POST must carry unchanged."""
        with self.lock:
            now = self.clock()
            uuid = secrets.token_hex(13).upper()
            key = f"uploads/{uuid}"
            stamp = time.strftime("%Y%m%d", time.gmtime(now))
            policy = base64.b64encode(json.dumps({
                "expiration": iso_time(now + UPLOAD_START_LIMIT),
                "conditions": [{"bucket": "sandbox-uploads"}, {"key": key},
                               {"Content-Type": content_type}]}).encode()).decode()
            fields = {"key": key, "policy": policy, "x-amz-signature": self._sign(policy),
                      "x-amz-credential": f"SANDBOX/{stamp}/us-east-1/s3/aws4_request",
                      "x-amz-algorithm": "AWS4-HMAC-SHA256",
                      "x-amz-date": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now)),
                      "Content-Type": content_type}
            upload = Upload(uuid, project, client_id, filename, content_type, fields, now)
            self.uploads[uuid] = upload
            return upload

    def create_segmented_upload(self, project: Project, client_id: str,
                                declared: object) -> Upload:
        """An upload in declared segments, each with a signed URL of its own. Every segment
        but the last must be at least `min_segment_size`, each carries its `sha256` (and may
        carry its `md5`), as Procore's Uploads tutorial ("Segmented Direct File Uploads")
        describes."""
        with self.lock:
            segments = self._declared_segments(declared)
            uuid = secrets.token_hex(13).upper()
            upload = Upload(uuid, project, client_id, "upload", DEFAULT_CONTENT_TYPE, {},
                            self.clock(), segments=segments)
            self.uploads[uuid] = upload
            return upload

    def _declared_segments(self, declared: object) -> list[Segment]:
        if not isinstance(declared, list) or not declared:
            raise Invalid("segments", "must be a list of {size, sha256, md5} objects")
        segments = []
        for number, item in enumerate(declared):
            where = f"segments[{number}]"
            item = item if isinstance(item, dict) else {}
            size, sha256, md5 = item.get("size"), item.get("sha256"), item.get("md5")
            if type(size) is not int or not 0 < size <= MAX_SEGMENT_SIZE:
                raise Invalid(where, f"size must be a number of bytes up to {MAX_SEGMENT_SIZE}")
            if not _is_hex(sha256, 64):
                raise Invalid(where, "sha256 is required: the segment's SHA-256, in hex")
            if md5 is not None and not _is_hex(md5, 32):
                raise Invalid(where, "md5 must be the segment's MD5, in hex")
            if number < len(declared) - 1 and size < self.config.min_segment_size:
                raise Invalid(where, f"size is below the minimum of "
                                     f"{self.config.min_segment_size} bytes (only the last "
                                     "segment may be smaller)")
            segments.append(Segment(size, str(sha256).lower(),
                                    str(md5).lower() if md5 is not None else None))
        return segments

    def segment_signature(self, upload: Upload, index: int) -> str:
        return self._sign(f"segment:{upload.uuid}:{index}")

    def begin_segment_put(self, index: int) -> bool:
        """Count a segment PUT that reached the storage host; False while a test holds it."""
        with self.lock:
            self.segment_puts_begun += 1
            return self.hold_segments_from is None or index < self.hold_segments_from

    def holding(self, index: int) -> bool:
        with self.lock:
            return self.hold_segments_from is not None and index >= self.hold_segments_from

    def store_segment(self, uuid: str, index: int, signature: str, headers: dict[str, str],
                      data: bytes) -> str:
        """A segment's PUT: its signed headers as handed out, its bytes as declared. Returns
        the ETag (S3's: the quoted MD5 of the bytes)."""
        with self.lock:
            upload = self.uploads.get(uuid)
            if upload is None or upload.segments is None or not 0 <= index < len(
                    upload.segments):
                raise Missing("The specified upload does not exist.")
            if not hmac.compare_digest(self.segment_signature(upload, index), signature):
                raise Denied("The request signature we calculated does not match the "
                             "signature you provided.")
            if self.clock() > upload.created_at + UPLOAD_START_LIMIT:
                raise Denied("Request has expired")
            if upload.blob is not None:
                raise Missing("The specified upload does not exist (it was completed).")
            segment = upload.segments[index]
            if headers.get("x-amz-content-sha256", "").lower() != segment.sha256:
                raise Denied("The x-amz-content-sha256 header is not the signed value.")
            if segment.md5 is not None and "content-md5" not in headers:
                raise Denied("There were headers present in the request which were not "
                             "signed: Content-MD5 is missing")
            if len(data) != segment.size:
                raise Mismatch("IncompleteBody", f"{len(data)} bytes sent, {segment.size} "
                                                 "declared")
            if hashlib.sha256(data).hexdigest() != segment.sha256:
                raise Mismatch("XAmzContentSHA256Mismatch", "The provided "
                               "'x-amz-content-sha256' header does not match what was computed.")
            md5 = hashlib.md5(data)
            if "content-md5" in headers and headers["content-md5"] != base64.b64encode(
                    md5.digest()).decode():
                raise Mismatch("BadDigest", "The Content-MD5 you specified did not match what "
                                            "we received.")
            segment.data, segment.etag = data, f'"{md5.hexdigest()}"'
            self.segment_puts[(uuid, index)] += 1
            return segment.etag

    def complete_upload(self, project: Project, uuid: str, client_id: str,
                        etags: object) -> Upload:
        """Join a segmented upload's parts, given every ETag in order (again: a no-op)."""
        with self.lock:
            upload = self.upload(project, uuid)
            if upload.client_id != client_id:
                raise Denied("This upload belongs to another application")
            if upload.segments is None:
                raise Invalid("segments", "this upload was not created in segments")
            given = [item.get("etag") if isinstance(item, dict) else None
                     for item in (etags if isinstance(etags, list) else [])]
            if len(given) != len(upload.segments):
                raise Invalid("segments", f"expected {len(upload.segments)} etags in the "
                                          f"order of the segments, got {len(given)}")
            for number, (etag, segment) in enumerate(zip(given, upload.segments, strict=True)):
                if segment.etag is None:
                    raise Invalid(f"segments[{number}]", "was never uploaded")
                if str(etag or "").strip('"') != segment.etag.strip('"'):
                    raise Invalid(f"segments[{number}]", "etag does not match the uploaded "
                                                         "segment")
            if upload.blob is None:
                upload.blob = self.add_blob(b"".join(s.data or b"" for s in upload.segments),
                                            upload.content_type)
                for segment in upload.segments:
                    segment.data = None
            return upload

    def upload(self, project: Project, uuid: str) -> Upload:
        with self.lock:
            found = self.uploads.get(uuid)
            if found is None or found.project is not project:
                raise Missing("Not Found")
            return found

    def store_upload(self, uuid: str, fields: dict[str, str], data: bytes) -> None:
        """The storage POST: accepted only with every field exactly as handed out."""
        with self.lock:
            upload = self.uploads.get(uuid)
            if upload is None or upload.segments is not None or fields != upload.fields:
                raise Denied("Invalid according to Policy: Policy Condition failed")
            if upload.attached:
                raise Denied("Invalid according to Policy: the upload was already used")
            if self.clock() > upload.created_at + UPLOAD_START_LIMIT:
                raise Denied("Invalid according to Policy: Policy expired.")
            upload.blob = self.add_blob(data, upload.content_type)

    def upload_for(self, project: Project, uuid: str, client_id: str) -> Upload:
        """An upload that may be attached by this client now (attaching marks it used)."""
        with self.lock:
            upload = self.uploads.get(uuid)
            if upload is None or upload.project is not project:
                raise Invalid("upload_uuid", "is invalid")
            if upload.client_id != client_id:
                raise Denied("This upload belongs to another application")
            if upload.attached:
                raise Invalid("upload_uuid", "has already been used")
            if upload.blob is None:
                raise Invalid("upload_uuid", "has no uploaded content yet")
            return upload

    # -- helpers for tests and the demo -------------------------------------------------------

    def node_at(self, project_id: int, path: str) -> Node:
        """The live folder or file at `path` (relative to the project root, '/'-joined)."""
        with self.lock:
            node = self.projects[project_id].root
            for part in _split_path(path):
                key = name_key(part)
                found = node.names.get((True, key)) or node.names.get((False, key))
                if found is None:
                    raise Missing(f"no such item: {path}")
                node = found
            return node

    def add_folder(self, project_id: int, path: str, *, at: float | None = None) -> Node:
        """The folder at `path`, created with any missing parents."""
        with self.lock:
            project = self.projects[project_id]
            node, when = project.root, self.clock() if at is None else at
            for part in _split_path(path):
                found = node.names.get((True, name_key(part)))
                if found is None:
                    self._check_name(node, part, True)
                    found = self._new_node(project, part, node, True, self.user, when)
                node = found
            return node

    def add_file(self, project_id: int, path: str, content: bytes, *, at: float | None = None,
                 content_type: str | None = None) -> Node:
        """A file at `path` (parents created); a new version if the file is already there."""
        with self.lock:
            when = self.clock() if at is None else at
            folder, _, name = path.strip("/").rpartition("/")
            parent = self.add_folder(project_id, folder, at=when)
            blob = self.add_blob(content, content_type or guess_type(name))
            node = parent.names.get((False, name_key(name)))
            if node is None:
                self._check_name(parent, name, False)
                node = self._new_node(parent.project, name, parent, False, self.user, when)
            self._add_version(node, blob, self.user, when)
            return node

    def versions(self, project_id: int, path: str) -> int:
        """How many versions the file at `path` has."""
        with self.lock:
            return len(self.node_at(project_id, path).versions)

    def tree(self, project_id: int) -> dict[str, bytes | None]:
        """Every live item by path: a file's latest bytes, None for a folder."""
        with self.lock:
            root = self.projects[project_id].root
            found: dict[str, bytes | None] = {}
            for node in root.walk():
                if node is root or node.is_deleted or node.is_recycle_bin:
                    continue
                found[node.path] = None if node.is_folder else node.latest.blob.data
            return dict(sorted(found.items()))


def _is_hex(value: object, digits: int) -> bool:
    return isinstance(value, str) and len(value) == digits and all(
        c in "0123456789abcdefABCDEF" for c in value)


def _ancestry(node: Node | None) -> Iterator[Node]:
    while node is not None:
        yield node
        node = node.parent


def iso_time(epoch: float) -> str:
    """ISO 8601 in UTC to the second, as Procore writes times."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def guess_type(name: str) -> str:
    return mimetypes.guess_type(name)[0] or DEFAULT_CONTENT_TYPE
