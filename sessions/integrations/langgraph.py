"""A LangGraph checkpointer that keeps each thread in a session log: :class:`JsonlCheckpointSaver`.

Needs the ``langgraph`` extra (``pip install 'jsonl-sessions[langgraph]'``); see
docs/integrations/langgraph.md for the layout of what it writes.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, Final, Self

import msgspec
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from sessions.integrations import _langgraph_maintenance as maintenance
from sessions.integrations._langgraph_events import (
    DECODE_CHECKPOINT,
    CheckpointSaved,
    Serialized,
    WriteSaved,
    WritesSaved,
    encode,
)
from sessions.integrations._langgraph_read import Found, newest_checkpoints, newest_first, pending_writes
from sessions.integrations._langgraph_threads import ThreadLogs
from sessions.models import StoredEvent
from sessions.store import LocalSessionService

__all__ = ["EVENT_TYPES", "JsonlCheckpointSaver"]

EVENT_TYPES: Final = (CheckpointSaved, WritesSaved)
"""The saver's event types: give them to ``LocalSessionService.open(root, event_types=...)`` for a store you share."""


class JsonlCheckpointSaver(BaseCheckpointSaver[str]):
    """LangGraph checkpoints and pending writes kept in a session store, one session log per thread.

    :param root: the store's folder (created if missing), or an open :class:`LocalSessionService` to share.
    :param serde: LangGraph's serializer for checkpoints and writes (its default if None).
    :param durability: for a store opened here: ``"fsync"`` (survives power loss) or ``"flush"``.

    The async methods run the file work in a worker thread, so the event loop never waits on a disk.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | LocalSessionService,
        *,
        serde: SerializerProtocol | None = None,
        durability: str = "fsync",
        lock_timeout: float = 2.0,
    ) -> None:
        super().__init__(serde=serde)
        self._owns_store = not isinstance(root, LocalSessionService)
        self.store = (
            root
            if isinstance(root, LocalSessionService)
            else LocalSessionService.open(
                root, durability=durability, lock_timeout=lock_timeout, event_types=EVENT_TYPES
            )
        )
        self.threads = ThreadLogs(self.store)

    def close(self) -> None:
        """Release the store, if this saver opened it."""
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.close)

    # -- reading ----------------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint ``config`` names (its ``checkpoint_id``), or the thread's latest in its namespace.

        The latest is the checkpoint with the largest ``checkpoint_id``, as in LangGraph's own savers.
        """
        conf = config["configurable"]
        thread_id = str(conf["thread_id"])
        ns = conf.get("checkpoint_ns", "") or ""
        wanted = get_checkpoint_id(config)
        session_id = self.threads.session_id(thread_id)
        if session_id is None:
            return None
        for found in newest_checkpoints(newest_first(self.store, session_id), ns):
            if wanted is None or found.head.checkpoint_id == wanted:
                return self._tuple(thread_id, found)
        return None

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,  # noqa: A002  (LangGraph's name)
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Checkpoints newest first (by ``checkpoint_id``): of one thread if ``config`` names one, else all.

        A checkpoint put again under its id is listed once, as last put. Without a namespace in ``config``,
        a thread's namespaces come interleaved, each newest first.

        :param config: ``thread_id``; with ``checkpoint_ns``, that namespace only; with ``checkpoint_id``, that one.
        :param filter: metadata values the checkpoints must have (compared for equality).
        :param before: only checkpoints whose id sorts before this config's ``checkpoint_id``.
        :param limit: at most this many; the log is read from its end only as far as they need.
        """
        conf = config["configurable"] if config else {}
        threads = [str(conf["thread_id"])] if "thread_id" in conf else self.threads.thread_ids()
        ns = conf.get("checkpoint_ns")
        only = conf.get("checkpoint_id")
        before_id = get_checkpoint_id(before) if before else None
        remaining = limit
        for thread_id in threads:
            session_id = self.threads.session_id(thread_id)
            if session_id is None:
                continue
            for found in newest_checkpoints(newest_first(self.store, session_id), ns):
                if remaining is not None and remaining <= 0:
                    return
                head = found.head
                if (only and head.checkpoint_id != only) or (before_id and head.checkpoint_id >= before_id):
                    continue
                if filter and any(head.metadata.get(key) != value for key, value in filter.items()):
                    continue
                if remaining is not None:
                    remaining -= 1
                yield self._tuple(thread_id, found)
                if only:
                    break  # checkpoint ids are unique in a thread: no need to read further back

    def _tuple(self, thread_id: str, found: Found) -> CheckpointTuple:
        saved = DECODE_CHECKPOINT(found.event.event_data)
        checkpoint: Checkpoint = self.serde.loads_typed(saved.checkpoint.typed())
        checkpoint["channel_values"] = {
            channel: self.serde.loads_typed(value.typed())
            for channel, value in saved.channel_values.items()
            if value.type != "empty"
        }
        writes = [
            (task_id, write.channel, self.serde.loads_typed(write.value.typed()))
            for _, task_id, _, write in pending_writes(found.writes)
        ]
        return CheckpointTuple(
            config=_config(thread_id, saved.ns, saved.checkpoint_id),
            checkpoint=checkpoint,
            metadata=saved.metadata,  # type: ignore[arg-type]  # the plain JSON put
            parent_config=(
                _config(thread_id, saved.ns, saved.parent_checkpoint_id) if saved.parent_checkpoint_id else None
            ),
            pending_writes=writes,
        )

    # -- writing ----------------------------------------------------------------------

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Append a checkpoint, whole (every channel's value), to its thread's log; its parent is ``config``'s.

        :raises TypeError: if the metadata holds a value JSON cannot carry.
        """
        conf = config["configurable"]
        thread_id = str(conf["thread_id"])
        ns = conf.get("checkpoint_ns", "") or ""
        skeleton = {key: value for key, value in checkpoint.items() if key != "channel_values"}
        event = CheckpointSaved(
            ns=ns,
            checkpoint_id=checkpoint["id"],
            parent_checkpoint_id=conf.get("checkpoint_id"),
            metadata=dict(get_serializable_checkpoint_metadata(config, metadata)),
            checkpoint=Serialized.of(self.serde.dumps_typed(skeleton)),
            channel_values={
                channel: Serialized.of(self.serde.dumps_typed(value))
                for channel, value in checkpoint["channel_values"].items()
            },
        )
        try:
            data = encode(event)
        except (msgspec.EncodeError, TypeError) as exc:
            raise TypeError(
                f"checkpoint {checkpoint['id']} of thread {thread_id}: metadata must be JSON ({exc})"
            ) from exc
        self.threads.append(thread_id, [(event.TYPE, data)])
        return _config(conf["thread_id"], ns, checkpoint["id"])

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Append a task's writes against the checkpoint ``config`` names (one event, one write to the log)."""
        if not writes:
            return
        conf = config["configurable"]
        event = WritesSaved(
            ns=conf.get("checkpoint_ns", "") or "",
            checkpoint_id=conf["checkpoint_id"],
            task_id=task_id,
            task_path=task_path,
            writes=[
                WriteSaved(WRITES_IDX_MAP.get(channel, idx), channel, Serialized.of(self.serde.dumps_typed(value)))
                for idx, (channel, value) in enumerate(writes)
            ],
        )
        self.threads.append(str(conf["thread_id"]), [(event.TYPE, encode(event))])

    # -- deleting, copying, pruning ---------------------------------------------------

    def delete_thread(self, thread_id: str) -> None:
        """Move the thread's session log to the store's trash (``trash/deleted/``); nothing stored: no-op."""
        self.threads.delete(str(thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Drop the checkpoints whose metadata ``run_id`` is one of ``run_ids`` (and their writes), in every thread.

        Each thread changed has its events replaced in one step (``replace_events``): a put racing it lands
        in the new log, readers never see the thread empty, and the old log is kept in ``trash/replaced/``.
        """
        runs = set(run_ids)
        if runs:
            for thread_id in self.threads.thread_ids():
                self.threads.rewrite(thread_id, lambda events: maintenance.without_runs(events, runs))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint and write of one thread into another (skipping checkpoints it already has).

        The copies are merged into the target in ``checkpoint_id`` order, so that its latest checkpoint
        stays the one with the largest id: appended when they are all newer than what the target holds
        (or the target is new), else the target's events are replaced in one step with the copies in
        their place, as in :meth:`delete_for_runs`. A source with nothing stored copies nothing.
        """
        source = self.threads.events(str(source_thread_id))
        if not source:
            return
        target = str(target_thread_id)
        held = self.threads.events(target)
        copied = maintenance.copyable(source, held)
        if not copied:
            return
        session_id = self.threads.session_id(target)
        if session_id is None or maintenance.newer_than_held(held, copied):
            self.threads.append(target, copied)
            return

        def merged(events: list[StoredEvent]) -> list[StoredEvent] | None:
            # Read again under the session's lock: skip what another copy or put stored meanwhile.
            missing = maintenance.copyable(source, events)
            if not missing:
                return None
            return maintenance.by_checkpoint_id([*events, *self.threads.stored(session_id, missing)])

        self.threads.rewrite(target, merged)

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Keep each namespace's latest checkpoint (largest id) and its writes (``"keep_latest"``), or delete.

        A thread pruned has its events replaced in one step, as in :meth:`delete_for_runs`.

        :raises ValueError: for another strategy.
        """
        if strategy not in ("keep_latest", "delete"):
            raise ValueError(f"unknown prune strategy {strategy!r}: use 'keep_latest' or 'delete'")
        for thread_id in thread_ids:
            if strategy == "delete":
                self.threads.delete(str(thread_id))
            else:
                self.threads.rewrite(str(thread_id), maintenance.keep_latest)

    def get_next_version(self, current: str | None, channel: None) -> str:
        """The next channel version: a zero-padded counter, then a random fraction.

        The fraction keeps versions written on two branches of a thread (after time travel) apart, as
        LangGraph's own savers do.
        """
        if current is None:
            number = 0
        elif isinstance(current, int):
            number = current
        else:
            number = int(str(current).split(".")[0])
        return f"{number + 1:032}.{random.random():016}"

    # -- async ------------------------------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,  # noqa: A002
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        found = self.list(config, filter=filter, before=before, limit=limit)
        while (item := await asyncio.to_thread(next, found, None)) is not None:
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await asyncio.to_thread(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        await asyncio.to_thread(self.delete_thread, thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await asyncio.to_thread(self.delete_for_runs, run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await asyncio.to_thread(self.copy_thread, source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await asyncio.to_thread(self.prune, thread_ids, strategy=strategy)


def _config(thread_id: Any, ns: str, checkpoint_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": checkpoint_id}}
