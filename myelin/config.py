"""Typed configuration: one YAML file, every key with a default and a comment.

The dataclasses below are the single source of truth: the loader checks a YAML file against
them (unknown keys, wrong types and bad values stop start-up with one line naming the key), and
``render_config`` writes the commented ``homeserver.yaml`` from the same fields, so the generated
file can never drift from what the loader accepts.
"""

from __future__ import annotations

import dataclasses
import secrets
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from myelin import config_checks as checks
from myelin.config_checks import Check


class ConfigError(Exception):
    """A configuration problem, worded for the admin reading one line in a terminal."""


def _key(
    doc: str,
    default: Any = dataclasses.MISSING,
    *,
    check: Check | None = None,
    factory: Callable[[], Any] | None = None,
) -> Any:
    metadata = {"doc": doc, "check": check}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class ListenConfig:
    host: str = _key("Address the client and federation HTTP API listens on.", "127.0.0.1")
    port: int = _key("TCP port of the HTTP API (0 picks a free one).", 8008, check=checks.port)
    x_forwarded: bool = _key(
        "Trust X-Forwarded-For from a reverse proxy for client addresses (logs, rate limits).",
        False,
    )
    max_json_body_bytes: int = _key(
        "Largest JSON request body accepted; larger ones get 413 M_TOO_LARGE.",
        10 * 1024 * 1024,
        check=checks.positive,
    )
    shutdown_grace_seconds: float = _key(
        "On SIGTERM/SIGINT, how long in-flight requests may take to finish.", 10.0,
        check=checks.non_negative,
    )


@dataclass(frozen=True)
class DatabaseConfig:
    engine: str = _key(
        "'sqlite' (embedded, zero setup) or 'postgresql' (recommended for production).",
        "sqlite",
        check=checks.one_of("sqlite", "postgresql"),
    )
    sqlite_path: str = _key("SQLite database file, relative to data_dir.", "homeserver.db")
    postgres_dsn: str = _key(
        "PostgreSQL connection URL, e.g. postgresql://myelin:secret@127.0.0.1:5432/myelin.", ""
    )
    pool_size: int = _key("Most PostgreSQL connections held open at once.", 10,
                          check=checks.positive)


@dataclass(frozen=True)
class RateLimit:
    per_second: float = _key("Sustained requests per second allowed.", 1.0, check=checks.positive)
    burst: int = _key("Requests allowed in a burst before limiting starts.", 10,
                      check=checks.positive)


@dataclass(frozen=True)
class RateLimitsConfig:
    enabled: bool = _key("Rate-limit clients (off only for benchmarks and load tests).", True)
    message: RateLimit = _key(
        "Sending events, per user.", factory=lambda: RateLimit(per_second=0.2, burst=10)
    )
    login: RateLimit = _key(
        "Login attempts, per client address.", factory=lambda: RateLimit(per_second=0.17, burst=3)
    )
    registration: RateLimit = _key(
        "Registrations, per client address.", factory=lambda: RateLimit(per_second=0.17, burst=3)
    )
    join: RateLimit = _key(
        "Room joins and knocks, per user.", factory=lambda: RateLimit(per_second=0.1, burst=10)
    )
    invite: RateLimit = _key(
        "Invites sent, per user.", factory=lambda: RateLimit(per_second=0.3, burst=10)
    )
    reports: RateLimit = _key(
        "Reports of events, rooms and users to the server admins, per user.",
        factory=lambda: RateLimit(per_second=1.0, burst=5),
    )
    media_create: RateLimit = _key(
        "Media IDs reserved with /_matrix/media/v1/create, per user.",
        factory=lambda: RateLimit(per_second=10.0, burst=50),
    )
    url_preview: RateLimit = _key(
        "URL preview requests, per user.", factory=lambda: RateLimit(per_second=5.0, burst=20)
    )


@dataclass(frozen=True)
class RegistrationConfig:
    enabled: bool = _key("Let anyone create an account through /register.", False)
    tokens: tuple[str, ...] = _key(
        "If not empty, /register requires one of these registration tokens "
        "(m.login.registration_token), even when registration is enabled.",
        (),
    )
    allow_guests: bool = _key("Let clients register guest accounts (kind=guest).", False)
    shared_secret: str = _key(
        "Secret for Synapse-style shared-secret registration by admin tools; empty disables it.",
        "",
    )


@dataclass(frozen=True)
class PasswordsConfig:
    bcrypt_rounds: int = _key(
        "bcrypt cost for password hashes (Synapse's default is 12; each +1 doubles the work).",
        12,
        check=checks.bcrypt_rounds,
    )


@dataclass(frozen=True)
class SessionsConfig:
    refreshable_access_token_lifetime_s: int = _key(
        "Lifetime of access tokens given to clients that support refresh tokens.", 300,
        check=checks.positive,
    )


@dataclass(frozen=True)
class RoomsConfig:
    default_room_version: str = _key(
        "Room version of new rooms unless the client asks for another.", "12",
        check=checks.one_of(*[str(v) for v in range(1, 13)]),
    )


@dataclass(frozen=True)
class PresenceConfig:
    enabled: bool = _key("Track and share online/idle/offline status.", True)
    idle_after_s: float = _key(
        "Seconds without activity before an online user shows as unavailable.", 300.0,
        check=checks.positive,
    )
    offline_after_s: float = _key(
        "Seconds without a sync before a user shows as offline.", 30.0, check=checks.positive
    )


@dataclass(frozen=True)
class PushConfig:
    enabled: bool = _key(
        "Send push notifications to the push gateways of users' HTTP pushers (off: pushers "
        "can still be set and /notifications still lists notifications).", True,
    )
    include_content: bool = _key(
        "Put the event's content in pushes that are not event_id_only (off: push gateways "
        "never see message text).", True,
    )
    concurrency: int = _key("New events evaluated against push rules at once.", 4,
                            check=checks.positive)
    max_requests: int = _key("Push gateway requests in flight at once.", 32, check=checks.positive)
    request_timeout_s: float = _key("Timeout of one push gateway request.", 15.0,
                                    check=checks.positive)
    max_attempts: int = _key(
        "Attempts at delivering one notification to a failing gateway before giving up on it.",
        6, check=checks.positive,
    )
    initial_backoff_s: float = _key(
        "Wait before the first retry; doubled after each failed attempt.", 1.0,
            check=checks.positive
    )
    max_backoff_s: float = _key("Longest wait between two attempts.", 60.0, check=checks.positive)


@dataclass(frozen=True)
class MetricsConfig:
    enabled: bool = _key("Serve Prometheus metrics on a separate listener.", False)
    host: str = _key("Address of the metrics listener (keep it private).", "127.0.0.1")
    port: int = _key("Port of the metrics listener.", 9008, check=checks.port)


@dataclass(frozen=True)
class LoggingConfig:
    level: str = _key(
        "Least severe level logged.", "INFO",
        check=checks.one_of("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
    )
    format: str = _key(
        "'text' for people, 'json' for log collectors.", "text", check=checks.one_of("text", "json")
    )
    access_log: bool = _key(
        "Log one line per HTTP request (request ID, user, status, duration).", True
    )


@dataclass(frozen=True)
class UserDirectoryConfig:
    enabled: bool = _key("Answer user directory searches (off: every search finds nobody).", True)
    search_all_users: bool = _key(
        "Search every local user, not only those sharing a room with the searcher or joined to "
        "a public room.",
        False,
    )


@dataclass(frozen=True)
class VoipConfig:
    turn_uris: tuple[str, ...] = _key(
        "TURN server URIs given to clients for calls, e.g. "
        "turn:turn.example.org:3478?transport=udp; empty: no TURN server is offered.",
        (),
        check=checks.turn_uris,
    )
    turn_shared_secret: str = _key(
        "Secret shared with the TURN server (coturn's static-auth-secret) for time-limited "
        "credentials.",
        "",
    )
    turn_username: str = _key("Fixed TURN username, used only without turn_shared_secret.", "")
    turn_password: str = _key("Fixed TURN password, used with turn_username.", "")
    turn_user_lifetime_s: int = _key(
        "How long time-limited TURN credentials stay valid, in seconds.", 3600,
            check=checks.positive
    )
    turn_allow_guests: bool = _key("Give TURN credentials to guest users too.", True)




@dataclass(frozen=True)
class MediaConfig:
    max_upload_bytes: int = _key(
        "Largest file accepted for upload; larger ones get 413 M_TOO_LARGE.", 50 * 1024 * 1024,
        check=checks.positive,
    )
    user_quota_bytes: int = _key(
        "Total size of the media one local user may store (0: no quota); uploads beyond it get "
        "403 M_FORBIDDEN.", 0, check=checks.non_negative,
    )
    max_pending_uploads: int = _key(
        "Media IDs a user may hold reserved (POST /create) without having uploaded to them.", 5,
        check=checks.positive,
    )
    pending_upload_lifetime_s: int = _key(
        "How long a reserved media ID waits for its upload before it expires.", 24 * 3600,
        check=checks.positive,
    )
    legacy_endpoints: bool = _key(
        "Serve the deprecated unauthenticated /_matrix/media/v3/download and thumbnail "
        "endpoints (only for media stored while freeze_unauthenticated was off).", True,
    )
    freeze_unauthenticated: bool = _key(
        "Media stored from now on is served only through the authenticated "
        "/_matrix/client/v1/media endpoints, as the spec asks of servers since Matrix 1.12.", True,
    )
    max_image_pixels: int = _key(
        "Images with more pixels than this are never decoded (no thumbnails): a guard against "
        "decompression bombs.", 32_000_000, check=checks.positive,
    )
    thumbnail_sizes: tuple[str, ...] = _key(
        "Thumbnails made when an image is uploaded; other sizes are made when first asked for.",
        ("32x32 crop", "96x96 crop", "320x240 scale", "640x480 scale", "800x600 scale"),
        check=checks.thumbnail_sizes,
    )
    max_cached_thumbnails: int = _key(
        "Thumbnails of sizes not listed above kept per image; more are made for each request.",
        16, check=checks.non_negative,
    )
    local_retention_days: float = _key(
        "Delete local media not downloaded for this many days (0: keep forever).", 0.0,
        check=checks.non_negative,
    )
    remote_retention_days: float = _key(
        "Delete cached copies of other servers' media not downloaded for this many days "
        "(0: keep forever); they are fetched again when asked for.", 90.0,
            check=checks.non_negative,
    )


@dataclass(frozen=True)
class UrlPreviewConfig:
    enabled: bool = _key("Answer /media/preview_url by fetching the page for the client.", True)
    denied_ip_ranges: tuple[str, ...] = _key(
        "Addresses never fetched, checked after DNS resolution and on every redirect; empty "
        "means the built-in list (private, loopback, link-local, multicast and reserved ranges).",
        (), check=checks.ip_ranges,
    )
    allowed_ip_ranges: tuple[str, ...] = _key(
        "Addresses fetched even when a denied range contains them.", (), check=checks.ip_ranges
    )
    denied_hosts: tuple[str, ...] = _key(
        "Host name patterns never fetched, e.g. '*.internal' ('*' and '?' wildcards).", ()
    )
    max_page_bytes: int = _key("Largest page or image downloaded for a preview.",
                               10 * 1024 * 1024, check=checks.positive)
    timeout_s: float = _key("Time allowed for fetching one page.", 10.0, check=checks.positive)
    cache_s: int = _key("How long a preview is reused before the page is fetched again.", 3600,
                        check=checks.non_negative)


@dataclass(frozen=True)
class FederationConfig:
    enabled: bool = _key("Take part in federation: share rooms with other Matrix servers.", True)
    listen: str = _key(
        "HOST:PORT of a separate listener for the server-server API (served over TLS when "
        "tls_certificate_path is set); empty: federation is served only on the main listener, "
        "e.g. behind a TLS-terminating reverse proxy.", "", check=checks.host_port_or_empty,
    )
    tls_certificate_path: str = _key(
        "PEM certificate chain of the federation listener, relative to data_dir.", ""
    )
    tls_private_key_path: str = _key(
        "PEM private key of the federation listener, relative to data_dir.", ""
    )
    verify_certificates: bool = _key(
        "Check other servers' TLS certificates (turn off only for test setups with "
        "self-signed certificates).", True,
    )
    allow_private_destinations: bool = _key(
        "Connect to servers on private, loopback and link-local addresses (only for test "
        "setups on one machine or a private network).", False,
    )
    trusted_key_servers: tuple[str, ...] = _key(
        "Notary servers asked for other servers' signing keys when those servers cannot be "
        "reached, each as 'SERVER ed25519:KEYID=BASE64KEY'; empty: keys are fetched only "
        "from the servers themselves.", (), check=checks.notary,
    )
    signing_key_validity_s: int = _key(
        "How long other servers may cache this server's signing key before asking again.",
        24 * 3600, check=checks.positive,
    )
    old_signing_keys: tuple[str, ...] = _key(
        "Keys this server signed with before its current one, published as old_verify_keys so "
        "other servers can still check events signed with them; each 'ed25519:KEYID "
        "BASE64_VERIFY_KEY EXPIRED_TS_MS' (when the key stopped being used, in ms since the "
        "epoch). After replacing the signing key, list the old one here.", (),
        check=checks.old_signing_key,
    )


@dataclass(frozen=True)
class WellKnownConfig:
    client_base_url: str = _key(
        "base_url served in /.well-known/matrix/client; empty means public_baseurl.", "",
        check=checks.http_url_or_empty,
    )
    server: str = _key(
        "Delegated host:port served in /.well-known/matrix/server; empty derives it from "
        "public_baseurl.",
        "",
    )


@dataclass(frozen=True)
class Config:
    server_name: str = _key(
        "The domain in user IDs and room aliases (@alice:SERVER_NAME). It cannot be changed once "
        "users exist.",
        "localhost:8008",
        check=checks.server_name,
    )
    public_baseurl: str = _key(
        "URL clients use to reach this server; empty means http://<listen.host>:<listen.port>/.",
        "",
        check=checks.http_url_or_empty,
    )
    data_dir: str = _key(
        "Folder for the database, media and signing key; relative to this file's folder.", "."
    )
    signing_key_path: str = _key(
        "ed25519 signing key in Synapse's format, relative to data_dir. Generated on first start; "
        "keep it safe, other servers remember it.",
        "signing.key",
    )
    media_store_path: str = _key("Folder for uploaded media, relative to data_dir.", "media")
    listen: ListenConfig = _key("The HTTP listener.", factory=ListenConfig)
    database: DatabaseConfig = _key("Where Myelin keeps its data.", factory=DatabaseConfig)
    registration: RegistrationConfig = _key("Account creation.", factory=RegistrationConfig)
    passwords: PasswordsConfig = _key("Password hashing.", factory=PasswordsConfig)
    sessions: SessionsConfig = _key("Access and refresh tokens.", factory=SessionsConfig)
    rooms: RoomsConfig = _key("Rooms.", factory=RoomsConfig)
    presence: PresenceConfig = _key("Presence.", factory=PresenceConfig)
    push: PushConfig = _key("Push notifications.", factory=PushConfig)
    rate_limits: RateLimitsConfig = _key(
        "Per-client request rate limits.", factory=RateLimitsConfig
    )
    metrics: MetricsConfig = _key("Prometheus metrics.", factory=MetricsConfig)
    logging: LoggingConfig = _key("Logging.", factory=LoggingConfig)
    well_known: WellKnownConfig = _key("Server discovery documents.", factory=WellKnownConfig)
    user_directory: UserDirectoryConfig = _key(
        "User directory search.", factory=UserDirectoryConfig
    )
    voip: VoipConfig = _key("TURN servers for voice and video calls.", factory=VoipConfig)
    media: MediaConfig = _key("The media repository (uploads, downloads, thumbnails).",
                              factory=MediaConfig)
    url_preview: UrlPreviewConfig = _key("Previews of links posted in rooms.",
                                         factory=UrlPreviewConfig)
    federation: FederationConfig = _key("The server-server API.", factory=FederationConfig)
    # Where the file was read from: relative paths are resolved against it. Not a YAML key.
    config_dir: str = field(default=".", metadata={"internal": True})

    # -- derived values: computed here so no caller re-derives them differently --

    def resolve(self, relative_to_data_dir: str) -> Path:
        return (Path(self.config_dir) / self.data_dir / relative_to_data_dir).resolve()

    @property
    def data_path(self) -> Path:
        return (Path(self.config_dir) / self.data_dir).resolve()

    @property
    def base_url(self) -> str:
        if self.public_baseurl:
            return self.public_baseurl.rstrip("/") + "/"
        host = self.listen.host
        if ":" in host:
            host = f"[{host}]"
        elif host in ("0.0.0.0", ""):
            host = "localhost"
        return f"http://{host}:{self.listen.port}/"


T = TypeVar("T")


def _fields(cls: type) -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(cls) if not f.metadata.get("internal")]


def _expected(tp: Any) -> str:
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        tp, str(tp)
    )


def _coerce(value: Any, tp: Any, where: str) -> Any:
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if typing.get_origin(tp) is tuple:  # lists in YAML, tuples in the frozen config
        item_type = typing.get_args(tp)[0]
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, each item {_expected(item_type)}, "
                              f"got {value!r}")
        return tuple(_coerce(v, item_type, f"{where}[{i}]") for i, v in enumerate(value))
    ok = (
        (tp is bool and isinstance(value, bool))
        or (tp is int and isinstance(value, int) and not isinstance(value, bool))
        or (tp is float and isinstance(value, int | float) and not isinstance(value, bool))
        or (tp is str and isinstance(value, str))
    )
    if not ok:
        raise ConfigError(f"{where}: expected {_expected(tp)}, got {value!r}")
    return float(value) if tp is float else value


def _build(cls: type[T], raw: Any, prefix: str = "") -> T:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix or 'the file'}: expected a mapping of keys, got {raw!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in _fields(cls)}
    for key in raw:
        if key not in known:
            where = f"{prefix}.{key}" if prefix else str(key)
            allowed = ", ".join(known)
            raise ConfigError(f"{where}: unknown key (known keys here: {allowed})")
    values: dict[str, Any] = {}
    for name, f in known.items():
        if name not in raw:
            continue
        where = f"{prefix}.{name}" if prefix else name
        value = _coerce(raw[name], hints[name], where)
        check = f.metadata.get("check")
        if check is not None and (problem := check(value)) is not None:
            raise ConfigError(f"{where}: expected {problem}, got {value!r}")
        values[name] = value
    return cls(**values)


def parse_config(raw: Any, config_dir: Path | str = ".") -> Config:
    """Validate a parsed YAML document and apply cross-key rules."""
    config = _build(Config, raw)
    if config.database.engine == "postgresql" and not config.database.postgres_dsn:
        raise ConfigError("database.postgres_dsn: expected a postgresql:// URL when engine is "
                          "'postgresql'")
    if config.database.postgres_dsn and not config.database.postgres_dsn.startswith(
        ("postgresql://", "postgres://")
    ):
        raise ConfigError(
            f"database.postgres_dsn: expected a postgresql:// URL, got "
            f"{config.database.postgres_dsn!r}"
        )
    return dataclasses.replace(config, config_dir=str(Path(config_dir).resolve()))


def load_config(path: Path | str) -> Config:
    """Read and validate ``path``; every problem is a ConfigError naming the key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from e
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{at}") from e
    try:
        return parse_config(raw, path.parent)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


# -- writing the commented file --------------------------------------------------------------


def _scalar(value: Any) -> str:
    if isinstance(value, tuple):
        value = list(value)
    dumped: str = yaml.safe_dump(value, default_flow_style=True)
    return dumped.strip().removesuffix("...").strip()


def _render(obj: Any, indent: int, out: list[str]) -> None:
    pad = "  " * indent
    for f in _fields(type(obj)):
        value = getattr(obj, f.name)
        out.append(f"{pad}# {f.metadata['doc']}")
        if dataclasses.is_dataclass(value):
            out.append(f"{pad}{f.name}:")
            _render(value, indent + 1, out)
        else:
            out.append(f"{pad}{f.name}: {_scalar(value)}")
        if indent == 0:
            out.append("")


def render_config(config: Config) -> str:
    """The commented YAML form of ``config``: what ``generate-config`` writes."""
    out = [
        "# Myelin homeserver configuration.",
        "# Every key is optional; the value shown is the default unless generate-config chose one.",
        "",
    ]
    _render(config, 0, out)
    return "\n".join(out).rstrip() + "\n"


def new_config(
    *,
    server_name: str,
    data_dir: str = ".",
    listen: str | None = None,
    database: str = "sqlite",
    enable_registration: bool = False,
    federation_listen: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    insecure_federation: bool = False,
    disable_rate_limits: bool = False,
) -> Config:
    """A fresh config as ``generate-config`` makes it, with a new shared secret."""
    raw: dict[str, Any] = {
        "server_name": server_name,
        "data_dir": data_dir,
        "registration": {
            "enabled": enable_registration,
            "shared_secret": secrets.token_urlsafe(32),
        },
    }
    if listen is not None:
        host, sep, port = listen.rpartition(":")
        if not sep or not port.isdigit():
            raise ConfigError(f"--listen: expected HOST:PORT, got {listen!r}")
        raw["listen"] = {"host": host.strip("[]") or "127.0.0.1", "port": int(port)}
    federation: dict[str, Any] = {}
    if federation_listen is not None:
        if checks.host_port_or_empty(federation_listen) is not None:
            raise ConfigError(f"--federation-listen: expected HOST:PORT, got {federation_listen!r}")
        federation["listen"] = federation_listen
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together")
    if tls_cert is not None and tls_key is not None:
        federation["tls_certificate_path"] = str(Path(tls_cert).resolve())
        federation["tls_private_key_path"] = str(Path(tls_key).resolve())
    if insecure_federation:
        federation["verify_certificates"] = False
        federation["allow_private_destinations"] = True
    if federation:
        raw["federation"] = federation
    if disable_rate_limits:
        raw["rate_limits"] = {"enabled": False}
    if database == "sqlite":
        raw["database"] = {"engine": "sqlite"}
    elif database.startswith(("postgresql://", "postgres://")):
        raw["database"] = {"engine": "postgresql", "postgres_dsn": database}
    else:
        raise ConfigError(f"--database: expected 'sqlite' or a postgresql:// URL, got {database!r}")
    return parse_config(raw)

