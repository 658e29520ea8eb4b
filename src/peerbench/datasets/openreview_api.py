"""One OpenReview API (v1 or v2) through openreview-py: login, polite requests, sorted cached paging,
and every failure as one line that says what to do.

Anonymous reading may be refused (403, sometimes with a challenge page) and logging in may ask for
a second factor; both happen while openreview-py builds its client or sends a request, so both are
inside the error handling here. Pages are requested sorted by number and cached by offset with a
``listing.json`` naming how they were listed, so a resumed pull continues the same order and a cache
listed another way is refused rather than mixed in.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from peerbench.errors import DataError, MissingDependency, register_secret

DEFAULT_URLS = {1: "https://api.openreview.net", 2: "https://api2.openreview.net"}
URL_VARIABLES = {1: "PEERBENCH_OPENREVIEW_URL", 2: "PEERBENCH_OPENREVIEW_V2_URL"}
SORT = "number:asc"
CREDENTIALS = "set OPENREVIEW_USERNAME and OPENREVIEW_PASSWORD (or OPENREVIEW_TOKEN)"
NOTE_KEYS = ("id", "number", "forum", "replyto", "invitation", "invitations", "content", "details", "cdate",
             "tcdate", "mdate", "tmdate", "readers", "signatures", "domain")


def _detail(exc: BaseException) -> str:
    """The server's own words for a failure, short (a challenge page is HTML, not worth printing)."""
    info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else None
    text = str((info or {}).get("message") or (info or {}).get("name") or exc)
    text = " ".join(text.split())
    return "an HTML page, perhaps a challenge" if text.lstrip().startswith("<") else text[:200]


def _credentials() -> tuple[str | None, str | None, str | None]:
    """(username, password, token) from the environment; a half-set pair is refused before any request."""
    user, password, token = (os.environ.get(name) or None for name in
                             ("OPENREVIEW_USERNAME", "OPENREVIEW_PASSWORD", "OPENREVIEW_TOKEN"))
    register_secret(password)
    register_secret(token)
    if token:
        return None, None, token
    if bool(user) != bool(password):
        missing, present = ("OPENREVIEW_PASSWORD", "OPENREVIEW_USERNAME") if user else \
            ("OPENREVIEW_USERNAME", "OPENREVIEW_PASSWORD")
        raise DataError(f"{missing} is not set but {present} is: set both to log in to OpenReview, or neither to "
                        "read anonymously")
    return user, password, None


def note_dict(note: Any) -> dict[str, Any]:
    """What peerbench keeps of an openreview-py Note (v1 or v2): v2's to_json() drops the number."""
    return {key: getattr(note, key) for key in NOTE_KEYS if getattr(note, key, None) is not None}


class Connection:
    """openreview-py's client for one API version, built on first use, at most one request per
    ``min_interval`` (the API rate-limits, and a 429 costs more than waiting)."""

    def __init__(self, api: int, min_interval: float):
        self.api = api
        self.url = os.environ.get(URL_VARIABLES[api], DEFAULT_URLS[api])
        self.min_interval = min_interval
        self.who: str | None = None   # who the requests go out as; None: anonymous
        self.last_status: int | None = None
        self._client: Any = None
        self._last_request = 0.0

    def client(self) -> Any:
        if self._client is None:
            self._client = self._build()
        return self._client

    def _build(self) -> Any:
        try:
            import openreview
            import openreview.api
        except ImportError:
            raise MissingDependency("openreview-py", "openreview") from None
        user, password, token = _credentials()
        kind = openreview.Client if self.api == 1 else openreview.api.OpenReviewClient
        self._throttle()
        try:
            with contextlib.redirect_stdout(sys.stderr):  # its retry notices must not mix into our output
                client = kind(baseurl=self.url, token=token) if token else \
                    kind(baseurl=self.url, username=user, password=password)
        except Exception as exc:  # OpenReviewException, MfaRequiredException, requests errors
            raise self._login_failure(exc, user, token) from None
        self.who = user or ("the OPENREVIEW_TOKEN session" if token else None)
        client.session.hooks["response"].append(self._remember_status)
        return client

    def _remember_status(self, response: Any, *args: Any, **kwargs: Any) -> None:
        self.last_status = response.status_code

    def _login_failure(self, exc: Exception, user: str | None, token: str | None) -> DataError:
        if type(exc).__name__ == "MfaRequiredException":
            return DataError(f"OpenReview login as {user} asks for a second factor (MFA), which peerbench cannot answer "
                             "without a terminal: run the pull in a terminal, or set OPENREVIEW_TOKEN to the token of a "
                             "logged-in session instead of OPENREVIEW_USERNAME/OPENREVIEW_PASSWORD")
        if _is_connection_error(exc):
            return self._unreachable(exc)
        fix = "check OPENREVIEW_TOKEN" if token else "check OPENREVIEW_USERNAME and OPENREVIEW_PASSWORD"
        who = "with OPENREVIEW_TOKEN" if token else f"as {user}"
        return DataError(f"OpenReview login {who} at {self.url} failed ({_detail(exc)}): {fix}")

    def _unreachable(self, exc: Exception) -> DataError:
        return DataError(f"cannot reach OpenReview at {self.url} ({_detail(exc)}): check the network, or "
                         f"{URL_VARIABLES[self.api]}; rerun to resume")

    def _throttle(self) -> None:
        wait = self._last_request + self.min_interval - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self._last_request = time.monotonic()

    def call(self, what: str, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``func`` with one line for any failure: refused access says which credentials to set."""
        client = self.client()
        self._throttle()
        self.last_status = None
        try:
            with contextlib.redirect_stdout(sys.stderr):
                return func(client, *args, **kwargs)
        except Exception as exc:  # the client raises OpenReviewException or requests errors after its retries
            if self.last_status in (401, 403):
                if self.who:
                    raise DataError(f"OpenReview refused {what} to {self.who} (HTTP {self.last_status}: "
                                    f"{_detail(exc)}): check that this account may read it; rerun to resume") from None
                raise DataError(f"OpenReview refused {what} to an anonymous reader (HTTP {self.last_status}: "
                                f"{_detail(exc)}): {CREDENTIALS} and rerun to resume") from None
            if _is_connection_error(exc):
                raise self._unreachable(exc) from None
            raise DataError(f"OpenReview {what}: {_detail(exc)}; rerun to resume") from None

    def pdf(self, note_id: str) -> bytes | None:
        """The submission PDF, or None when OpenReview has none (404)."""
        try:
            data = self.call(f"PDF of {note_id}", lambda client: client.get_pdf(note_id))
        except DataError:
            if self.last_status == 404:
                return None
            raise
        if not data.startswith(b"%PDF"):
            raise DataError(f"OpenReview PDF of {note_id}: the reply is not a PDF; rerun to resume")
        return data

    def listing(self, folder: Path, invitation: str, page_size: int, *, required: bool,
                enough: Callable[[list[dict[str, Any]]], bool] | None = None) -> list[dict[str, Any]]:
        """The notes of ``invitation`` with their direct replies, sorted by number, page by page from
        the cache or the API, until a short page or ``enough(notes)``. An empty first page of a
        ``required`` listing is an error and is never cached: it means a wrong venue or API, or a
        refusal, never a venue without papers."""
        how = {"api": self.api, "invitation": invitation, "sort": SORT, "page_size": page_size}
        _check_manifest(folder, how)
        notes: list[dict[str, Any]] = []
        offset = 0
        while True:
            page_file = folder / f"offset-{offset:06d}.json"
            if page_file.is_file():
                page = json.loads(page_file.read_text())
            else:
                found = self.call(f"the listing {invitation} at offset {offset}",
                                  lambda client, at=offset: client.get_notes(
                                      invitation=invitation, details="directReplies", sort=SORT, offset=at,
                                      limit=page_size))
                page = [note_dict(note) for note in found]
                if required and offset == 0 and not page:
                    raise DataError(f"OpenReview (API v{self.api} at {self.url}) lists no submissions under "
                                    f"{invitation}; check the venue id, or {CREDENTIALS} if the venue hides them "
                                    "from anonymous readers (nothing was cached)")
                _write_json(folder / "listing.json", how)
                _write_json(page_file, page)
            notes.extend(page)
            if len(page) < page_size or (enough is not None and enough(notes)):
                break
            offset += page_size
        _check_order(notes, folder)
        return notes


def _is_connection_error(exc: Exception) -> bool:
    import requests

    return isinstance(exc, (requests.ConnectionError, requests.Timeout))


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(value))
    tmp.replace(path)


_REDO = "delete the venue's cached listings (pages/, withdrawn/, desk_rejected/; not pdfs/) and pull again"


def _check_manifest(folder: Path, how: dict[str, Any]) -> None:
    """Cached pages listed another way (another sort, page size or API) would mix two orders."""
    manifest = folder / "listing.json"
    if manifest.is_file():
        cached = json.loads(manifest.read_text())
        if cached != how:
            raise DataError(f"{folder}: the cached pages were listed as {cached}, this pull lists {how}; {_REDO}")
    elif any(folder.glob("offset-*.json")):
        raise DataError(f"{folder}: cached pages without listing.json (an older peerbench, unsorted); {_REDO}")


def _check_order(notes: list[dict[str, Any]], folder: Path) -> None:
    """Pages listed by number must join into one increasing run; anything else means the venue changed
    between pages or the cache was edited, and resuming would skip or repeat papers."""
    numbers = [note.get("number") for note in notes]
    if any(not isinstance(n, int) for n in numbers) or any(a >= b for a, b in itertools.pairwise(numbers)):
        raise DataError(f"{folder}: the cached pages are not one listing in increasing number order; {_REDO}")
