"""What every connector shares: the contract, HTTP with retries and auth, cursors.

A connector knows one platform's protocol and nothing about the warehouse. It
yields `Extract`s: Arrow tables of the platform's own records (every field as
text, exactly as received) plus the cursor state those records reach. The
pipeline commits each extract's rows and its cursor in one transaction, so a
crash anywhere resumes from the last committed position.

Platform modules declare their endpoints and codes; the loops live here.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import random
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType, TracebackType
from typing import Any, ClassVar, Self
from zoneinfo import ZoneInfo

import httpx
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from base import clock
from base.settings import CityConfig, SourceConfig, resolve_secrets

log = logging.getLogger(__name__)

LOCAL_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


class SourceError(RuntimeError):
    """The platform answered in a way the hub cannot recover from by retrying."""


@dataclass(frozen=True)
class Stream:
    """One kind of record a platform serves (work orders, residents, cameras…).

    Each stream is read on its own cursor and conformed on its own; `key_field`
    identifies a record. A `snapshot` stream delivers complete copies (a daily
    full file): a record missing from a complete snapshot has gone and is closed.
    """

    name: str
    fields: tuple[str, ...]
    key_field: str
    snapshot: bool = False
    # The record's version (its update time, as text that sorts in time): a key seen
    # twice in one batch with two update times was updated while being read, and the
    # later one stands. Without it, two different records under one key conflict.
    updated_field: str | None = None
    # Streams of the same connector whose rows this one's conform step, rules or
    # enrichment read (the grids its records are assigned to, the cameras its alarms
    # name): loaded before it in a run, and upstream of it in the ingest DAG. They come
    # earlier in the connector's `streams`, so that order is always a loading order.
    after: tuple[str, ...] = ()


@dataclass(frozen=True)
class RowReject:
    """A record the connector could read as bytes but not as a record (a row with the
    wrong number of fields, no key, an unusable update time): it is quarantined with
    its rule and reason, never dropped and never a crash of the run.

    `reason` and `where` name the source's file or table and the line or row, and
    hold no personal data (they are shown to operators); `payload` is the record as
    read, stored masked like any quarantined payload.
    """

    rule: str
    reason: str
    where: str
    payload: Mapping[str, str | None]
    source_id: str | None = None


@dataclass(frozen=True)
class RejectedFile:
    """A delivered file that was not loaded at all: unreadable as a whole, or a
    snapshot refused as implausibly small. Recorded and skipped; the stream goes on."""

    name: str
    sha256: str
    reason: str
    kind: str = "unreadable"  # unreadable | too_small


@dataclass
class Extract:
    """Records as the platform sent them, and where the read stands after them."""

    records: pa.Table
    cursor: dict[str, Any]
    # Records seen again in this run (overlap window, shifted pages): skipped,
    # reported so an operator can see the overlap at work.
    reread: int = 0
    # Snapshot streams: which snapshot these records belong to, and whether this
    # extract completes it (then the records it lacked are closed).
    snapshot_id: str | None = None
    snapshot_complete: bool = False
    # Keys the whole snapshot holds with two or more different records: every one
    # of those records is quarantined, whichever batch it falls in. Each with a 64-bit
    # digest of the records it holds, in any order (the same records, the same digest).
    conflicting_keys: Mapping[str, int] = field(default_factory=dict)
    # Records that could not be read as records (quarantined by the pipeline).
    rejects: list[RowReject] = field(default_factory=list)
    # Files not loaded at all (recorded in ops.rejected_file by the pipeline).
    rejected_files: list[RejectedFile] = field(default_factory=list)
    # What an operator should know and nothing blocks on (files matching no pattern,
    # rows without an update time): kept in the run record, shown by `hub status`.
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ReadContext:
    """What the warehouse knows that a read needs, handed to the connector (which
    never queries the warehouse itself)."""

    # Current records of the stream: a complete snapshot far smaller is refused.
    current_records: int = 0
    # Snapshots (`Extract.snapshot_id`) an operator accepted despite the size guard.
    accepted_snapshots: frozenset[str] = frozenset()


class SourceSettings(BaseModel):
    """Settings every connector has. Secrets are `SecretStr` fields of subclasses."""

    # A refused value may be a secret: errors name the setting, never repeat it.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    timezone: str = Field("Asia/Shanghai", description="time zone of the platform's local times")
    min_snapshot_ratio: float = Field(
        0.5, ge=0, le=1,
        description="snapshot streams: refuse a complete snapshot smaller than this share of "
                    "the current records (a truncated file would close them all); 0 = off")

    @classmethod
    def secret_fields(cls) -> list[str]:
        return [n for n, f in cls.model_fields.items()
                if f.annotation is SecretStr or f.annotation == (SecretStr | None)]


_REGISTERED: dict[str, type[Connector]] = {}
# Every platform connector by its `name`: a class registers itself when its module is
# imported (connectors.registry imports them all).
REGISTERED: Mapping[str, type[Connector]] = MappingProxyType(_REGISTERED)


class Connector(ABC):
    """One platform protocol. Subclasses declare; `extract` does the reading.

    A class that declares a `name` is a platform's connector and registers under it.
    """

    # Registry name, used as `connector:` in the sources file.
    name: ClassVar[str]
    settings_model: ClassVar[type[SourceSettings]]
    streams: ClassVar[tuple[Stream, ...]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name")
        if name is None:
            return  # a shared base (files, declared HTTP), not a platform
        _check_stream_order(cls)
        known = _REGISTERED.get(name)
        if known is not None and _where(known) != _where(cls):
            raise TypeError(f"two connectors named {name!r}: {_where(known)} and {_where(cls)}")
        _REGISTERED[name] = cls

    def __init__(self, source: SourceConfig, city: CityConfig):
        self.source = source
        self.city = city
        self.settings = self.settings_model.model_validate(
            resolve_secrets(source, self.settings_model.secret_fields())
        )
        # What this connector's reads met, for the run record: the retries (by reason)
        # and token refreshes of every `HttpApi` it reads through (it hands each this
        # counter), the queries of a database read.
        self.stats: Counter[str] = Counter()

    def preflight(self) -> None:
        """Refuse, before a run is recorded, a configuration this connector cannot read
        with (a SourceError saying what to set); nothing to check by default."""
        return None

    @classmethod
    def stream(cls, name: str) -> Stream:
        for s in cls.streams:
            if s.name == name:
                return s
        raise KeyError(f"{cls.name} has no stream {name!r}; it has "
                       f"{', '.join(s.name for s in cls.streams)}")

    def now_local(self) -> datetime:
        """The hub clock in the platform's local time (its times are local and unzoned)."""
        return clock.local_now(self.settings.timezone)

    @abstractmethod
    def extract(self, stream: Stream, state: Mapping[str, Any] | None,
                context: ReadContext | None = None) -> Iterator[Extract]:
        """Read `stream` from after `state` (None: first run), in bounded pieces."""


def _where(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _check_stream_order(cls: type[Connector]) -> None:
    """A platform's streams have unique names, and each stream's `after` names streams
    declared before it (so the declared order loads what a stream needs first)."""
    seen: set[str] = set()
    for s in cls.streams:
        if s.name in seen:
            raise TypeError(f"{cls.__name__}: two streams named {s.name!r}")
        missing = [a for a in s.after if a not in seen]
        if missing:
            raise TypeError(f"{cls.__name__} stream {s.name!r}: `after` names "
                            f"{', '.join(map(repr, missing))}, which is not a stream declared "
                            "before it")
        seen.add(s.name)


def records_table(stream: Stream, records: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Platform records as an all-text Arrow table of the stream's fields, as received.

    Text keeps whatever the platform sent (a number in a string, a date in the
    wrong format) for the conform step to judge, instead of failing here.
    """
    columns = {f: [as_text(r.get(f)) for r in records] for f in stream.fields}
    return pa.table({f: pa.array(v, pa.string()) for f, v in columns.items()})


def content_digest(records: pa.Table) -> str:
    """What a set of records holds, whatever their order: 16 hex digits of SHA-256."""
    lines = sorted(json.dumps(r, ensure_ascii=False, sort_keys=True) for r in records.to_pylist())
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def as_text(value: Any) -> str | None:
    """A value as the text the platform means by it (local times unzoned)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.strftime(LOCAL_TIME_FORMAT)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return json.dumps(value, ensure_ascii=False)


# --------------------------------------------------------------------------- HTTP


class HttpSettings(SourceSettings):
    base_url: str = Field(description="the platform's API root, e.g. https://12345.example.gov.cn")
    timeout_seconds: float = Field(10.0, gt=0, description="per request")
    max_attempts: int = Field(8, ge=1, description="tries per request before the run fails")
    backoff_seconds: float = Field(0.5, ge=0, description="first retry delay; doubles, jittered")
    max_backoff_seconds: float = Field(30.0, ge=0)


class RetryableResponse(Exception):
    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


class AuthExpired(Exception):
    """The platform says the token is no longer good; get a new one and retry."""


@dataclass
class HttpApi:
    """An HTTP JSON API with retries, backoff honouring Retry-After, and token refresh.

    `check_body` inspects a 200 body: raise `AuthExpired` for an auth error code,
    `RetryableResponse` for a transient one (e.g. "system busy"), `SourceError`
    for anything else; return the payload otherwise. `get_token` fetches a new
    token with the client it is given; it is called lazily and after expiry.
    """

    settings: HttpSettings
    check_body: Callable[[Any], Any]
    get_token: Callable[[httpx.Client], tuple[str, float]] | None = None
    sleep: Callable[[float], None] = time.sleep
    _token: str | None = field(default=None, init=False)
    _token_expires: float = field(default=0.0, init=False)
    _client: httpx.Client | None = field(default=None, init=False)
    # Where retries (by reason) and token refreshes are counted: a connector passes its
    # own (`Connector.stats`), so every API it reads through adds to one record.
    stats: Counter[str] = field(default_factory=Counter)

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(
                base_url=self.settings.base_url, timeout=self.settings.timeout_seconds
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _count(self, what: str) -> None:
        self.stats[what] += 1

    def _auth_headers(self) -> dict[str, str]:
        if self.get_token is None:
            return {}
        # Refresh a little early: a token that expires in flight costs a retry.
        if self._token is None or time.monotonic() > self._token_expires - 30:
            token, ttl = self.get_token(self.client)
            self._token, self._token_expires = token, time.monotonic() + ttl
            self._count("token_refresh")
        return {"Authorization": f"Bearer {self._token}"}

    def get(self, path: str, params: Mapping[str, Any]) -> Any:
        """GET a JSON resource; returns what `check_body` returns."""
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self.client.get(path, params=dict(params), headers=self._auth_headers())
                if response.status_code == 401:
                    raise AuthExpired("HTTP 401")
                if response.status_code == 429 or response.status_code >= 500:
                    raise RetryableResponse(
                        f"HTTP {response.status_code}", _retry_after(response.headers)
                    )
                if response.status_code != 200:
                    raise SourceError(f"GET {path}: HTTP {response.status_code}: {response.text[:300]}")
                try:
                    body = response.json()
                except ValueError as exc:
                    raise RetryableResponse(f"unparseable body: {exc}") from None
                return self.check_body(body)
            except AuthExpired as exc:
                # Not a failure of the platform: drop the token; the retry fetches a new one.
                self._count("auth_expired")
                self._token = None
                if attempt >= self.settings.max_attempts:
                    raise SourceError(f"GET {path}: still unauthorised after {attempt} tries") from exc
            except (RetryableResponse, httpx.TimeoutException, httpx.TransportError) as exc:
                reason = str(exc) or type(exc).__name__
                self._count(reason.split(":")[0] if isinstance(exc, RetryableResponse)
                            else type(exc).__name__)
                if attempt >= self.settings.max_attempts:
                    raise SourceError(f"GET {path}: gave up after {attempt} tries: {reason}") from exc
                delay = getattr(exc, "retry_after", None)
                if delay is None:
                    delay = min(self.settings.max_backoff_seconds,
                                self.settings.backoff_seconds * 2 ** (attempt - 1))
                    delay *= random.uniform(0.5, 1.0)  # jitter: don't retry in lockstep
                log.info("GET %s: %s; retry %d in %.1fs", path, reason, attempt, delay)
                self.sleep(delay)


def code_envelope(
    *,
    ok: object,
    retryable: Callable[[Any], bool],
    auth_expired: object | None = None,
    normalise: Callable[[Any], Any] = lambda code: code,
    payload: Callable[[dict[str, Any]], Any] = lambda body: body.get("data"),
) -> Callable[[Any], Any]:
    """`check_body` for the usual Chinese platform envelope {"code", "msg", "data"}.

    Platforms differ only in their codes: which one means success, which mean "try
    again" (system busy) and which one an expired token; `payload` picks (and may
    check) what a good answer carries.
    """

    def check(body: Any) -> Any:
        if not isinstance(body, dict) or "code" not in body:
            raise RetryableResponse(f"body without a code: {str(body)[:200]}")
        code = normalise(body["code"])
        if code == ok:
            return payload(body)
        if auth_expired is not None and code == auth_expired:
            raise AuthExpired(f"body code {code}")
        if retryable(code):
            raise RetryableResponse(f"body code {code}: {body.get('msg')}")
        raise SourceError(f"platform error {code}: {body.get('msg')}")

    return check


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Retry-After as seconds: either a number or an HTTP date (RFC 9110); None (the
    backoff decides) for anything else a platform may send ("soon")."""
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if parsed.tzinfo is None:  # "-0000": a time in UTC by RFC 5322
        parsed = parsed.replace(tzinfo=UTC)
    # The server's date against this machine's wall clock, not the hub clock: both
    # sides of this subtraction are real time.
    return max(0.0, parsed.timestamp() - time.time())


# ------------------------------------------------------------------- time cursor


class UpdatedSinceSettings(BaseModel):
    """Settings of an incremental read by last-update time."""

    overlap_minutes: int = Field(
        10, ge=0, description="re-read this much before the cursor: late commits on the platform"
    )
    start_from: str = Field("2026-01-01 00:00:00", description="where the first run starts")


@dataclass(frozen=True)
class Page:
    """One page of a paged read: its records, and the platform's count of all the
    records matching the query at the moment it served this page (`data.total`)."""

    records: list[dict[str, Any]]
    total: int


@dataclass
class UpdatedWindow:
    """An incremental read by update time that neither misses a record nor yields
    one version of it twice while records are updated (and pages shift) under it.

    The window's end is fixed when the run starts, so records updated during the
    read normally move past it and wait for the next run. Within the window every
    request restarts from the last update time reached (keyset by time) instead of
    asking for page n+1, so a record that moves never makes the read skip one.

    A crowd of records sharing one update time that is longer than a page (a bulk
    update) cannot be keyset-stepped with a time-only query: it is read as its own
    window `[t, t]`, by page number, pass after pass, until one pass saw the crowd
    hold still and found nothing new; the read then goes on from t + 1 s. See
    `_tie_group` for why that is enough, and its one limit.
    """

    start: datetime
    end: datetime
    # Passes over one crowd before the read gives up: a crowd that never holds
    # still fails the run, with the cursor still before it, so a rerun loses nothing.
    max_tie_passes: ClassVar[int] = 50

    @classmethod
    def for_run(cls, state: Mapping[str, Any] | None, settings: UpdatedSinceSettings,
                now_local: datetime) -> UpdatedWindow:
        if state and state.get("updated_to"):
            start = datetime.strptime(state["updated_to"], LOCAL_TIME_FORMAT)
            start -= timedelta(minutes=settings.overlap_minutes)
        else:
            start = datetime.strptime(settings.start_from, LOCAL_TIME_FORMAT)
        return cls(start=start, end=max(now_local, start))

    def pages(
        self,
        fetch: Callable[[str, str, int], Page],
        *,
        page_size: int,
        key: str,
        updated: str,
    ) -> Iterator[tuple[list[dict[str, Any]], str, int]]:
        """Yield (new records, cursor time reached, rereads) per page.

        `fetch(updated_from, updated_to, page_no)` returns one page ordered by
        update time then key, bounds inclusive, at second resolution, with the
        count of all records matching.

        The cursor reached is a time before which every record has been yielded
        (records at the cursor time itself may not all have been: bounds are
        inclusive, so a read resuming from the cursor reads them again). A run
        that stops after any page and resumes from that page's cursor, minus the
        overlap, therefore loses nothing. A record is yielded once per version
        (key and update time) in a run: read again at the same update time it is
        counted as a reread; updated meanwhile, its new version is yielded too
        (the pipeline keeps the latest of a key).
        """
        end = self.end
        end_text = end.strftime(LOCAL_TIME_FORMAT)
        position = self.start
        # Keys of the records at `position` already yielded: a request restarting
        # from `position` returns them again.
        seen: set[str] = set()
        while True:
            page = fetch(position.strftime(LOCAL_TIME_FORMAT), end_text, 1)
            records = page.records
            times = [_local_time(r.get(updated)) for r in records]
            fresh: list[dict[str, Any]] = []
            for record, at in zip(records, times, strict=True):
                if at == position:
                    k = str(record.get(key))
                    if k in seen:
                        continue
                    seen.add(k)
                fresh.append(record)
            reread = len(records) - len(fresh)
            if len(records) < page_size:
                # Everything from `position` to the end, as it stood, was on this page.
                yield fresh, end_text, reread
                return
            last = times[-1]
            if last is None or not position <= last <= end:
                raise SourceError(
                    f"page from {position:%Y-%m-%d %H:%M:%S} to {end_text} ends with a record "
                    f"updated {records[-1].get(updated)!r}, outside the window asked for")
            if last > position:
                # Every record before `last` was on this page (it started at `position`
                # and is ordered), so `last` is a safe cursor; the rest of the records
                # at `last` come with the next request, which starts there.
                position = last
                seen = {str(r.get(key)) for r, at in zip(records, times, strict=True)
                        if at == last}
                yield fresh, last.strftime(LOCAL_TIME_FORMAT), reread
                continue
            # A full page all at `position`: the crowd there is longer than a page and
            # a request from `position` would return its first page forever.
            yield fresh, position.strftime(LOCAL_TIME_FORMAT), reread
            yield from self._tie_group(fetch, position, seen, page_size=page_size, key=key)
            # The whole crowd at `position` has been yielded. Go on strictly after it,
            # from the next second (times have second resolution): a record that left
            # the crowd while it was read was updated to a later time, which is at or
            # after that second, inside the window or past its end (the next run's),
            # so nothing that left is lost. A record *joining* the crowd's past second
            # after its last pass would be a late commit, which the next run's overlap
            # re-reads. Restarting from `position` itself would only serve the crowd's
            # first page again, with no way past it.
            position, seen = position + timedelta(seconds=1), set()
            if position > end:
                return  # the crowd was at the window's last second: its cursor is the end

    def _tie_group(
        self,
        fetch: Callable[[str, str, int], Page],
        at: datetime,
        seen: set[str],
        *,
        page_size: int,
        key: str,
    ) -> Iterator[tuple[list[dict[str, Any]], str, int]]:
        """Read every record updated at `at` (its own window `[at, at]`) by page number.

        Page numbers over a crowd that changes are unreliable: a record leaving it
        (updated to a later time) moves every later record one place up, so the one
        at the next page's first place is never served in this pass; one joining it
        moves them down, so one is served twice. The crowd is therefore read pass
        after pass until a pass is *settled*: the platform's `total` was the same on
        every one of its pages and it served exactly `total` different keys (a record
        leaving lowers `total`, so a pass during which none left read the crowd as it
        stood), and it found no key not yielded before (the check that a pass which
        only seemed settled, say one record leaving while another joined, has not
        hidden one). `seen` (the keys at `at` already yielded) is updated in place.

        Records leave a crowd at a past second (updates stamp the platform's current
        time), and then one settled pass is proof. Only records joining it, which
        means reading the second the platform is writing, could fool two passes in a
        row: the window's end bounds that to its last seconds, which the next run's
        overlap reads again.

        The cursor stays at `at` throughout: until the crowd is done, a record at `at`
        may not have been yielded yet.
        """
        at_text = at.strftime(LOCAL_TIME_FORMAT)
        for _ in range(self.max_tie_passes):
            totals: set[int] = set()
            served = 0
            pass_keys: set[str] = set()
            found_new = False
            page_no = 1
            while True:
                page = fetch(at_text, at_text, page_no)
                totals.add(page.total)
                fresh: list[dict[str, Any]] = []
                for record in page.records:
                    k = str(record.get(key))
                    pass_keys.add(k)
                    if k not in seen:
                        seen.add(k)
                        fresh.append(record)
                served += len(page.records)
                found_new = found_new or bool(fresh)
                yield fresh, at_text, len(page.records) - len(fresh)
                if len(page.records) < page_size:
                    break
                if page_no * page_size > max(totals) + page_size:
                    raise SourceError(f"the platform keeps serving full pages at {at_text}"
                                      f" past the {max(totals)} records it counts there")
                page_no += 1
            settled = len(totals) == 1 and served == len(pass_keys) == next(iter(totals))
            if settled and not found_new:
                return
        raise SourceError(f"the {len(seen)}+ records updated at {at_text} kept changing through"
                          f" {self.max_tie_passes} passes; the next run reads them again")


def _local_time(value: Any) -> datetime | None:
    """A platform's local time text as a datetime; None if it is not one."""
    try:
        return datetime.strptime(str(value).strip(), LOCAL_TIME_FORMAT)
    except ValueError:
        return None


# --------------------------------------------------------- declared HTTP streams
#
# A platform speaking HTTP JSON declares what sets it apart and the loops live here:
# how it authenticates (`ApiKeyHeader`, `BearerToken`), how an answer says it
# succeeded (`CodeEnvelope`, `SuccessEnvelope`), how it writes times (`TimeFormat`),
# and per stream its path and how it pages (`UpdatedWindowPages`, `CursorTokenPages`,
# `FullList`). A `DeclaredHttpConnector` is those declarations and nothing else.


class CursorExpired(Exception):
    """The platform has forgotten the server-side cursor a read was following."""


class TimeFormat(StrEnum):
    """How a platform writes times, in its records and in its query parameters."""

    LOCAL = "local"  # yyyy-MM-dd HH:mm:ss in the source's `timezone`
    ISO8601 = "iso8601"  # 2026-11-20T09:30:00+08:00: an instant, whatever the offset

    def parse(self, value: Any, timezone: str) -> datetime | None:
        """A platform's time text as an aware datetime; None if it is not one (an ISO
        time without an offset names no instant)."""
        text = "" if value is None else str(value).strip()
        try:
            if self is TimeFormat.LOCAL:
                return datetime.strptime(text, LOCAL_TIME_FORMAT).replace(tzinfo=ZoneInfo(timezone))
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
        return parsed if parsed.tzinfo is not None else None

    def render(self, at: datetime, timezone: str) -> str:
        local = at.astimezone(ZoneInfo(timezone))
        if self is TimeFormat.LOCAL:
            return local.strftime(LOCAL_TIME_FORMAT)
        return local.isoformat(timespec="seconds")


@dataclass(frozen=True)
class ApiKeyHeader:
    """A key sent in a header with every request; no token exchange."""

    secret_field: str
    header: str = "X-Api-Key"


@dataclass(frozen=True)
class BearerToken:
    """`Authorization: Bearer <token>`. With `path` the token is exchanged: `body` (JSON
    member → secret field) is POSTed there, and the envelope's payload holds the token
    at `token` and its lifetime in seconds at `expires_in`. Without, the token is the
    secret field itself."""

    secret_field: str | None = None
    path: str | None = None
    body: Mapping[str, str] = field(default_factory=dict)
    token: str = "accessToken"
    expires_in: str = "expiresIn"


@dataclass(frozen=True)
class CodeEnvelope:
    """`{"code", "msg", "data"}`, as `code_envelope` checks it; the payload is `payload`."""

    ok: object = 0
    retryable: Callable[[Any], bool] = lambda code: False
    auth_expired: object | None = None
    normalise: Callable[[Any], Any] = lambda code: code
    payload: str = "data"

    def check(self, body: Any) -> Any:
        return code_envelope(ok=self.ok, retryable=self.retryable, auth_expired=self.auth_expired,
                             normalise=self.normalise, payload=lambda b: b.get(self.payload))(body)


@dataclass(frozen=True)
class SuccessEnvelope:
    """`{"success": bool, "errorCode", "errorMessage", "result"}`: a failed answer's code
    says what to do: wait and ask again, restart the read, get a new token, or give up."""

    payload: str = "result"
    retryable: tuple[str, ...] = ()
    cursor_expired: tuple[str, ...] = ()
    auth_expired: tuple[str, ...] = ()
    success: str = "success"
    code: str = "errorCode"
    message: str = "errorMessage"

    def check(self, body: Any) -> Any:
        if not isinstance(body, dict) or not isinstance(body.get(self.success), bool):
            raise RetryableResponse(f"body without a {self.success} flag: {str(body)[:200]}")
        if body[self.success]:
            return body.get(self.payload)
        code, message = body.get(self.code), body.get(self.message)
        if code in self.cursor_expired:
            raise CursorExpired(f"{self.code} {code}: {message}")
        if code in self.auth_expired:
            raise AuthExpired(f"{self.code} {code}")
        if code in self.retryable:
            raise RetryableResponse(f"{self.code} {code}: {message}")
        raise SourceError(f"platform error {code}: {message}")


@dataclass
class DeclaredHttpApi(HttpApi):
    """`HttpApi` with headers on every request (an API key) and a swappable transport
    (a test replays recorded pages through it)."""

    headers: Mapping[str, str] = field(default_factory=dict)
    transport: httpx.BaseTransport | None = None

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(base_url=self.settings.base_url, transport=self.transport,
                                        timeout=self.settings.timeout_seconds)
        return self._client

    def _auth_headers(self) -> dict[str, str]:
        return {**self.headers, **super()._auth_headers()}


class DeclaredHttpSettings(HttpSettings, UpdatedSinceSettings):
    page_size: int = Field(200, ge=1, description="records per request")


class Paginator(ABC):
    """How one stream's records are asked for, page after page, and what its cursor is."""

    @abstractmethod
    def read(self, source: DeclaredHttpConnector, stream: HttpStream,
             state: Mapping[str, Any] | None, api: HttpApi) -> Iterator[Extract]: ...

    def misdeclared(self, stream: HttpStream, time_format: TimeFormat) -> str | None:
        """What is wrong with declaring `stream` with this paginator, if anything."""
        return None if stream.updated_field else "needs the stream's updated_field"


@dataclass(frozen=True)
class HttpStream(Stream):
    """A stream served by one GET endpoint: its path, how it pages, fixed parameters."""

    path: str = ""
    paginator: Paginator | None = None
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FullList(Paginator):
    """The whole list in one answer, every run: a snapshot, and what it lacks is gone."""

    items: str = "items"

    def read(self, source: DeclaredHttpConnector, stream: HttpStream,
             state: Mapping[str, Any] | None, api: HttpApi) -> Iterator[Extract]:
        records = records_table(
            stream, _items(api.get(stream.path, dict(stream.params)), self.items, stream.path))
        # A list is named by what it holds: the same list sent again (most runs of a
        # slowly changing register) is the snapshot already loaded, and has nothing
        # to load or close; a refused one is accepted by the name it is refused under,
        # which the platform sending it again keeps.
        snapshot = f"{stream.name}#{content_digest(records)}"
        cursor = {"snapshot_id": snapshot, "complete": True}
        if state and state.get("snapshot_id") == snapshot:
            yield Extract(records.slice(0, 0), cursor)
            return
        yield Extract(records, cursor, snapshot_id=snapshot, snapshot_complete=True)

    def misdeclared(self, stream: HttpStream, time_format: TimeFormat) -> str | None:
        return None if stream.snapshot else "a full list is a snapshot: declare snapshot=True"


@dataclass(frozen=True)
class UpdatedWindowPages(Paginator):
    """Incremental by an update-time window paged by number, with the platform's count
    of all matching records (the 12345 style; see `UpdatedWindow`). Local times only."""

    updated_from: str = "updatedFrom"
    updated_to: str = "updatedTo"
    page: str = "pageNo"
    size: str = "pageSize"
    records: str = "records"
    total: str = "total"

    def read(self, source: DeclaredHttpConnector, stream: HttpStream,
             state: Mapping[str, Any] | None, api: HttpApi) -> Iterator[Extract]:
        size = source.settings.page_size
        window = UpdatedWindow.for_run(state, source.settings, source.now_local())

        def fetch(updated_from: str, updated_to: str, page_no: int) -> Page:
            data = api.get(stream.path, {**stream.params, self.updated_from: updated_from,
                                         self.updated_to: updated_to, self.page: page_no,
                                         self.size: size})
            records = _items(data, self.records, stream.path)
            total = data.get(self.total)
            if isinstance(total, bool) or not str(total).isdigit():
                raise SourceError(f"GET {stream.path}: a page without a {self.total}: {total!r}")
            return Page(records, int(total))

        assert stream.updated_field is not None  # misdeclared() holds it
        for records, reached, reread in window.pages(fetch, page_size=size, key=stream.key_field,
                                                     updated=stream.updated_field):
            yield Extract(records_table(stream, records), {"updated_to": reached}, reread)

    def misdeclared(self, stream: HttpStream, time_format: TimeFormat) -> str | None:
        if time_format is not TimeFormat.LOCAL:
            return "an update-time window is read in local times"
        return super().misdeclared(stream, time_format)


@dataclass(frozen=True)
class CursorTokenPages(Paginator):
    """Incremental by update time through a server-side cursor: the first request asks
    for what was updated since the cursor time, each answer hands the token of the next
    page (null at the end). The pages hold still while the token is followed, so after
    a page everything updated before its last update time has been read: that time is
    the cursor. A token the platform has forgotten (`CursorExpired`) restarts the read
    from the time reached, a second early (a platform whose `since` is exclusive serves
    the rest of that second too); what was read already at those times is skipped and
    counted as re-read, so nothing is lost and nothing comes twice.
    """

    since: str = "updatedSince"
    token: str = "nextToken"
    limit: str = "limit"
    items: str = "items"
    next_token: str = "nextToken"
    # Restarts in a row that got no further: the platform forgets cursors faster than
    # a page can be read; the run fails with its cursor where it was.
    max_restarts: int = 10

    def read(self, source: DeclaredHttpConnector, stream: HttpStream,
             state: Mapping[str, Any] | None, api: HttpApi) -> Iterator[Extract]:
        fmt, tz, s = source.time_format, source.settings.timezone, source.settings
        updated, key = stream.updated_field, stream.key_field
        assert updated is not None  # misdeclared() holds it
        committed = fmt.parse((state or {}).get("updated_since"), tz)
        overlap = timedelta(minutes=s.overlap_minutes)
        if committed is not None:
            start = committed - overlap
        else:
            start = datetime.fromisoformat(s.start_from)
            start = start if start.tzinfo else start.replace(tzinfo=ZoneInfo(tz))
        # The latest update time this read has reached, and the versions (key, update
        # time) read from the overlap before it on: what a restart serves again, and
        # (kept in the cursor) what the next run's overlap does.
        since, reached = start, None
        seen: dict[tuple[str, str], datetime | None] = {
            (key_, at_): fmt.parse(at_, tz) for key_, at_ in (state or {}).get("read", ())}
        token: str | None = None
        restarts = 0
        while True:
            params: dict[str, Any] = {**stream.params, self.limit: s.page_size}
            params.update({self.token: token} if token else {self.since: fmt.render(since, tz)})
            try:
                result = api.get(stream.path, params)
            except CursorExpired as exc:
                restarts += 1
                api.stats["cursor_expired"] += 1
                if restarts > self.max_restarts:
                    raise SourceError(f"GET {stream.path}: the cursor expired {restarts} times"
                                      " in a row without getting further") from exc
                since, token = (reached - timedelta(seconds=1) if reached else start), None
                continue
            records = _items(result, self.items, stream.path)
            fresh = []
            for record in records:
                at = fmt.parse(record.get(updated), tz)
                version = (str(record.get(key)), str(record.get(updated)))
                if version not in seen:
                    seen[version] = at
                    fresh.append(record)
                if at is not None and (reached is None or at > reached):
                    reached, restarts = at, 0
            # Never behind what an earlier run committed: re-reading its overlap moves nothing.
            position = max((t for t in (reached, committed) if t is not None), default=start)
            floor = position - max(overlap, timedelta(seconds=1))
            seen = {v: at for v, at in seen.items() if at is None or at >= floor}
            # Committed with the batch holding them: a version read in the next run's
            # overlap is a re-read, skipped before conform.
            cursor = {"updated_since": fmt.render(position, tz),
                      "read": sorted([k, u] for (k, u), at in seen.items() if at is not None)}
            yield Extract(records_table(stream, fresh), cursor, len(records) - len(fresh))
            next_token = result.get(self.next_token) or None
            if next_token is None:
                return
            if next_token == token:
                raise SourceError(f"GET {stream.path}: the platform handed back the same token")
            token = next_token


class DeclaredHttpConnector(Connector):
    """A platform whose HTTP JSON streams are declared: `auth`, `envelope` and
    `time_format` once for the platform, path and paginator per `HttpStream`."""

    settings_model: ClassVar[type[DeclaredHttpSettings]]
    settings: DeclaredHttpSettings
    envelope: ClassVar[CodeEnvelope | SuccessEnvelope]
    auth: ClassVar[ApiKeyHeader | BearerToken | None] = None
    time_format: ClassVar[TimeFormat] = TimeFormat.LOCAL

    def __init_subclass__(cls, **kwargs: Any) -> None:
        for s in cls.__dict__.get("streams", ()):
            problem = (s.paginator.misdeclared(s, cls.time_format)
                       if isinstance(s, HttpStream) and s.paginator and s.path
                       else "declare it as an HttpStream with a path and a paginator")
            if problem:
                raise TypeError(f"{cls.__name__} stream {s.name!r}: {problem}")
        super().__init_subclass__(**kwargs)  # registers it: only once it is sound

    def __init__(self, source: SourceConfig, city: CityConfig):
        super().__init__(source, city)
        # What a test swaps: the wire (recorded pages) and the waiting between retries.
        self.transport: httpx.BaseTransport | None = None
        self.sleep: Callable[[float], None] = time.sleep

    def api(self) -> HttpApi:
        headers = ({self.auth.header: self._secret(self.auth.secret_field)}
                   if isinstance(self.auth, ApiKeyHeader) else {})
        return DeclaredHttpApi(self.settings, check_body=self.envelope.check,
                               get_token=self._token if isinstance(self.auth, BearerToken) else None,
                               sleep=self.sleep, stats=self.stats, headers=headers,
                               transport=self.transport)

    def extract(self, stream: Stream, state: Mapping[str, Any] | None,
                context: ReadContext | None = None) -> Iterator[Extract]:
        assert isinstance(stream, HttpStream) and stream.paginator is not None
        with self.api() as api:
            yield from stream.paginator.read(self, stream, state, api)

    def _secret(self, name: str | None) -> str:
        value = getattr(self.settings, name or "")
        return value.get_secret_value() if isinstance(value, SecretStr) else str(value)

    def _token(self, client: httpx.Client) -> tuple[str, float]:
        auth = self.auth
        assert isinstance(auth, BearerToken)
        if auth.path is None:
            return self._secret(auth.secret_field), 365 * 86400.0
        response = client.post(auth.path, json={k: self._secret(v) for k, v in auth.body.items()})
        if response.status_code == 429 or response.status_code >= 500:
            raise RetryableResponse(f"token: HTTP {response.status_code}")
        try:
            payload = self.envelope.check(response.json()) if response.status_code == 200 else None
        except SourceError as exc:
            raise SourceError(f"token refused by the platform: {exc}") from None
        except ValueError:
            raise RetryableResponse("token: unparseable body") from None
        if not isinstance(payload, dict) or not payload.get(auth.token):
            raise SourceError(f"token refused by the platform: HTTP {response.status_code}")
        return str(payload[auth.token]), float(payload.get(auth.expires_in) or 7200)


def _items(payload: Any, name: str, path: str) -> list[dict[str, Any]]:
    items = payload.get(name) if isinstance(payload, dict) else None
    if not isinstance(items, list) or not all(isinstance(r, dict) for r in items):
        raise SourceError(f"GET {path}: an answer without a list of {name}: {str(payload)[:200]}")
    return items
