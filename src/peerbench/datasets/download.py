"""Fetch files one by one over HTTP into a folder: concurrent but polite, resumable, verified.

A file only counts once it has been checked and moved into place, so an interrupted pull resumes
where it stopped and nothing is fetched twice. Failures name the file and never throw away the
files already fetched.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import httpx

from peerbench.errors import DataError
from peerbench.pipeline.retry import RETRY_STATUS, backoff_delay, retry_after_seconds

Validator = Callable[[str, bytes], None]


class FetchError(Exception):
    def __init__(self, rel: str, message: str, transport: bool = False):
        super().__init__(f"{rel}: {message}")
        self.rel = rel
        self.transport = transport  # the host never answered (DNS, refused, timed out)


def fetch_one(client: httpx.Client, url: str, rel: str, dest: Path, validate: Validator, *,
              attempts: int = 4, backoff: float = 1.0, transport_attempts: int | None = None) -> None:
    """``attempts`` tries in all; of them at most ``transport_attempts`` where the host did not answer."""
    transport_attempts = transport_attempts or attempts
    unanswered = 0
    for attempt in range(attempts):
        wait = backoff_delay(attempt, backoff)
        try:
            response = client.get(url)
        except httpx.TransportError as exc:
            unanswered += 1
            if attempt == attempts - 1 or unanswered == transport_attempts:
                raise FetchError(rel, f"download failed after {unanswered} tries ({type(exc).__name__})",
                                 transport=True) from None
            time.sleep(wait)
            continue
        if response.status_code in RETRY_STATUS and attempt < attempts - 1:
            retry_after = retry_after_seconds(response.headers)
            time.sleep(wait if retry_after is None else retry_after)
            continue
        if response.status_code != 200:
            raise FetchError(rel, f"HTTP {response.status_code} from {url}")
        validate(rel, response.content)
        part = dest.with_name(dest.name + ".part")
        part.parent.mkdir(parents=True, exist_ok=True)
        part.write_bytes(response.content)
        os.replace(part, dest)
        return


def _fetch_first(client: httpx.Client, base_url: str, rel: str, root: Path, validate: Validator,
                 backoff: float, mirror_env: str) -> list[FetchError]:
    """The first file alone, tried twice: a host that does not answer at all ends the pull at once
    (with no network, retrying every file would take minutes) with one line saying the ways around it."""
    try:
        fetch_one(client, base_url.rstrip("/") + "/" + rel, rel, root / rel, validate, backoff=backoff,
                  transport_attempts=2)
    except FetchError as exc:
        if exc.transport:
            host = httpx.URL(base_url).host or base_url
            raise DataError(f"{host}: unreachable ({exc}); nothing was fetched. Point --data-dir (or "
                            f"PEERBENCH_DATA) at a copy of the files, or a mirror variable such as {mirror_env} "
                            "at another host") from None
        return [exc]
    return []


def fetch_files(base_url: str, rels: Sequence[str], root: Path, validate: Validator, *,
                concurrency: int = 4, progress: bool = True, description: str = "downloading",
                mirror_env: str = "PEERBENCH_PEERREAD_URL") -> int:
    """Fetch ``base_url + rel`` into ``root / rel`` for every rel not already there; returns how many were fetched.

    ``mirror_env`` is the base-URL variable the one-line error names when the host does not answer."""
    missing = [rel for rel in rels if not (root / rel).is_file()]
    if not missing:
        return 0
    backoff = float(os.environ.get("PEERBENCH_HTTP_BACKOFF", "1.0"))
    from peerbench import __version__
    from peerbench.progress import progress_bar

    headers = {"User-Agent": f"peerbench/{__version__}"}
    with httpx.Client(timeout=httpx.Timeout(60.0, connect=15.0), follow_redirects=True, headers=headers) as client, \
            ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool, \
            progress_bar(description, total=len(missing), enabled=progress, unit="files") as advance:
        errors = _fetch_first(client, base_url, missing[0], root, validate, backoff, mirror_env)
        advance(0 if errors else 1, failed=len(errors))  # the bar counts fetched files; failures apart
        futures = {pool.submit(fetch_one, client, base_url.rstrip("/") + "/" + rel, rel, root / rel, validate,
                               backoff=backoff): rel for rel in missing[1:]}
        for future in as_completed(futures):
            try:
                future.result()
            except FetchError as exc:
                errors.append(exc)
                advance(0, failed=1)
            else:
                advance(1)
    if errors:
        errors.sort(key=lambda e: e.rel)
        more = f" (and {len(errors) - 1} more failed files)" if len(errors) > 1 else ""
        kept = len(missing) - len(errors)
        raise DataError(f"{errors[0]}{more}; {kept} fetched files were kept, rerun to resume")
    return len(missing)
