"""A generic append-only log of JSON-lines records linked by parent id.

This layer knows files, records, locks, durability and chains; it knows nothing
about what the records mean.
"""

from eventlog.chain import EventTree, Head, active_head, build_tree, chain_records, is_linear, order_events
from eventlog.durability import Durability, atomic_write, ensure_private_dir, sync_dir, sync_file
from eventlog.errors import EventLogError, LogBusy, LogWriteError, StaleHead, UnsafeLogPath
from eventlog.logfile import LogFile
from eventlog.merge import LogChanged, MergedLog, MergeOutcome, merge_into, merge_logs, merged_state
from eventlog.reader import Damage, LinearEvents, LogRead, read_log, stream_linear_events
from eventlog.record import (
    FORMAT_VERSION,
    KIND_EVENT,
    KIND_FACT,
    KIND_HEAD,
    KIND_HEADER,
    Record,
    decode_record,
    encode_records,
    new_id,
    utcnow,
)
from eventlog.summary import FactRef, LogState
from eventlog.trash import move_to_trash, save_to_trash
from eventlog.verify import Finding, LogReport, verify_log

__all__ = [
    "FORMAT_VERSION",
    "KIND_EVENT",
    "KIND_FACT",
    "KIND_HEAD",
    "KIND_HEADER",
    "Damage",
    "Durability",
    "EventLogError",
    "EventTree",
    "FactRef",
    "Finding",
    "Head",
    "LinearEvents",
    "LogBusy",
    "LogChanged",
    "LogFile",
    "LogRead",
    "LogReport",
    "LogState",
    "LogWriteError",
    "MergeOutcome",
    "MergedLog",
    "Record",
    "StaleHead",
    "UnsafeLogPath",
    "active_head",
    "atomic_write",
    "build_tree",
    "chain_records",
    "decode_record",
    "encode_records",
    "ensure_private_dir",
    "is_linear",
    "merge_into",
    "merge_logs",
    "merged_state",
    "move_to_trash",
    "new_id",
    "order_events",
    "read_log",
    "save_to_trash",
    "stream_linear_events",
    "sync_dir",
    "sync_file",
    "utcnow",
    "verify_log",
]
