"""A run's papers as a stream: never all held as objects at once, at any corpus size.

A run reads its dataset twice, one paper at a time (:meth:`Dataset.iter_papers`):

1. :func:`scan` checks every paper before any request (a malformed line 150,000 of a JSONL file
   is an error naming that line before the first request) and keeps, per paper, only what the
   run decides with: its key, content hash and label inputs (:class:`PaperEntry`, ~200 bytes);
2. :func:`stream_requests` prepares the papers still to answer a chunk at a time and dispatches
   each chunk while the next one is prepared, the two sharing the connection's one bound, so
   the backend's in-flight slots stay full across chunks.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from peerbench.errors import ConfigError
from peerbench.records import Paper

CHUNK_PAPERS = 256  # papers prepared (prompts rendered) at a time


@dataclass(frozen=True)
class PaperEntry:
    """What a run keeps of a paper between its two reads of the dataset."""

    key: str
    content_hash: str
    labels: dict[str, Any]  # execute.labels_of: gold under every rule, accepted, ratings


class PaperStream:
    """The run's papers (its whole selection, before --limit), read afresh from the dataset each
    time it is iterated, each changed by the run's probe if it is a probe arm. Handed to a
    backend's setup as the run's selection (a replay file is matched against every paper)."""

    def __init__(self, plan: Any, progress: bool = False):
        self.plan, self.progress = plan, progress
        self.count: int | None = None

    def __iter__(self) -> Iterator[Paper]:
        plan = self.plan
        papers = plan.dataset.iter_papers(plan.dataset_args, progress=self.progress)
        count = 0
        for paper in papers:
            count += 1
            yield plan.paper_transform(paper) if plan.paper_transform is not None else paper
        self.count = count

    def only(self, keys: set[str]) -> Iterator[Paper]:
        """The papers whose key is in ``keys``, in order, read no further than the last of them."""
        left = len(keys)
        for paper in self if left else ():
            if paper.key in keys:
                yield paper
                left -= 1
                if not left:
                    return

    def __len__(self) -> int:
        if self.count is None:
            self.count = sum(1 for _ in self.plan.dataset.iter_papers(self.plan.dataset_args, progress=False))
        return self.count


def scan(stream: PaperStream, task: Any, limit: int | None,
         labels_of: Callable[[Paper, Any], dict[str, Any]]) -> list[PaperEntry]:
    """Read every paper of the selection once (the dataset checks each as it goes), and keep an
    entry for each of the first ``limit``; a paper without a gold label under the task's primary
    rule is an error naming the first (as execute.check_gold)."""
    from peerbench.labels import get_label_rule, no_gold_label

    rule = get_label_rule(task.label_rule)
    entries: list[PaperEntry] = []
    unknown: list[Paper] = []
    missing = 0
    for paper in stream:
        if limit is not None and len(entries) >= limit:
            continue  # read on: the rest of the data is checked before any request too
        labels = labels_of(paper, task)
        if rule.required and labels["gold"].get(rule.name) is None:
            missing += 1
            if not unknown:
                unknown.append(paper)
        entries.append(PaperEntry(paper.key, paper.content_hash(), labels))
    if not entries:
        raise ConfigError(f"task {task.task!r}: the selection holds no papers")
    if unknown:
        raise no_gold_label(rule, unknown[0], missing)
    return entries


def chunked(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


async def stream_requests(papers: Iterable[Paper], prepare_chunk: Callable[[list[Paper]], list[Any]],
                          send: Callable[[list[Any], bool], Any], chunk_papers: int | None = None) -> None:
    """Prepare ``papers`` a chunk at a time and ``send`` each chunk's items (a coroutine), the next
    chunk prepared and started while the previous one's requests are in flight; at most two chunks
    are held. The first failure cancels what is still running."""
    live: list[asyncio.Future] = []
    try:
        for number, chunk in enumerate(chunked(papers, chunk_papers or CHUNK_PAPERS)):
            live.append(asyncio.ensure_future(send(prepare_chunk(chunk), number == 0)))
            if len(live) > 1:
                await live.pop(0)
        while live:
            await live.pop(0)
    finally:
        for future in live:
            future.cancel()
        await asyncio.gather(*live, return_exceptions=True)
