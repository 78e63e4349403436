"""Properties of merging log copies (eventlog.merge) over generated histories."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from pathlib import Path

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from eventlog import KIND_EVENT, KIND_FACT, KIND_HEADER, Record, build_tree, encode_records, verify_log
from eventlog.merge import merge_logs, merged_state

_T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _uid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128)))


def _history(seed: int, events: int, facts: int, fork_rate: float) -> list[bytes]:
    """A session's records as lines: a header, a tree of events, and facts with colliding keys and times."""
    rng = random.Random(seed)
    session = _uid(rng)
    records = [Record(k=KIND_HEADER, id=session, ts=_T0, v=1, data=msgspec.Raw(b'{"directory":null}'))]
    event_ids: list[str] = []
    for _ in range(events):
        if event_ids and rng.random() < fork_rate:
            parent: str | None = rng.choice(event_ids)
        else:
            parent = event_ids[-1] if event_ids else None
        rid = _uid(rng)
        # Timestamps deliberately disagree with the chain: clocks must not matter.
        ts = _T0 + dt.timedelta(seconds=rng.randint(0, 5))
        records.append(Record(k=KIND_EVENT, id=rid, ts=ts, parent=parent, type="text", data=msgspec.Raw(b"{}")))
        event_ids.append(rid)
    for _ in range(facts):
        ts = _T0 + dt.timedelta(seconds=rng.randint(0, 3))
        key = rng.choice(["a", "b", None])
        value = msgspec.json.encode(rng.randint(0, 9))
        records.append(Record(k=KIND_FACT, id=_uid(rng), ts=ts, type="metadata", key=key, data=msgspec.Raw(value)))
    return [line + b"\n" for line in encode_records(records).split(b"\n")[:-1]]


@st.composite
def copies(draw: st.DrawFn, n: int = 3) -> list[bytes]:
    """``n`` copies of one history: each holds a subset of its lines, in any order, maybe damaged or torn."""
    lines = _history(
        draw(st.integers(0, 2**32)),
        draw(st.integers(0, 12)),
        draw(st.integers(0, 6)),
        draw(st.sampled_from([0.0, 0.2, 0.6])),
    )
    out = []
    for _ in range(n):
        picked = draw(st.lists(st.sampled_from(lines), max_size=len(lines) + 3))
        if draw(st.booleans()):
            picked.append(b'{"k":"event","id":"broken\n')
        if draw(st.booleans()):
            picked.append(b"\n")
        buf = b"".join(picked)
        if draw(st.booleans()):
            buf += b'{"k":"event","id":"torn-tail"'
        out.append(buf)
    return out


def _lines(buf: bytes) -> set[bytes]:
    end = buf.rfind(b"\n") + 1
    return {line for line in buf[:end].split(b"\n") if line.strip()}


@given(copies(2))
def test_commutative(logs: list[bytes]) -> None:
    a, b = logs
    assert merge_logs([a, b]).data == merge_logs([b, a]).data


@given(copies(3))
def test_associative(logs: list[bytes]) -> None:
    a, b, c = logs
    left = merge_logs([merge_logs([a, b]).data, c]).data
    right = merge_logs([a, merge_logs([b, c]).data]).data
    assert left == right == merge_logs([a, b, c]).data


@given(copies(1))
def test_idempotent(logs: list[bytes]) -> None:
    (a,) = logs
    once = merge_logs([a]).data
    assert merge_logs([a, a]).data == once
    assert merge_logs([once]).data == once
    assert merge_logs([once, a]).data == once


@given(copies(3))
def test_nothing_lost_nothing_invented(logs: list[bytes]) -> None:
    merged = merge_logs(logs)
    out = merged.data.split(b"\n")
    assert out[-1] == b""
    assert set(out[:-1]) == set().union(*(_lines(buf) for buf in logs))
    assert len(out[:-1]) == len(set(out[:-1])), "a line appears twice"


@given(copies(2))
def test_headers_first_and_parents_before_children(logs: list[bytes]) -> None:
    merged = merge_logs(logs)
    kinds = [r.k for r in merged.records]
    assert kinds == sorted(kinds, key=lambda k: k != KIND_HEADER)
    position = {r.id: i for i, r in enumerate(merged.records)}
    for i, record in enumerate(merged.records):
        if record.k == KIND_EVENT and record.parent in position:
            assert position[record.parent] < i, f"{record.id} comes before its parent"
    # Readers of the merged file see no gap: every parent that exists precedes its child.
    tree = build_tree(merged.events)
    assert tree.gaps == [r for r in merged.events if r.parent is not None and r.parent not in position]


@given(copies(2))
def test_merged_state_same_either_way(logs: list[bytes]) -> None:
    a, b = logs
    one, two = merged_state(merge_logs([a, b])), merged_state(merge_logs([b, a]))
    assert msgspec.json.encode(one) == msgspec.json.encode(two)


@given(copies(3))
def test_facts_last_writer_wins_per_key(logs: list[bytes]) -> None:
    merged = merge_logs(logs)
    state = merged_state(merged)
    expected: dict[str, Record] = {}
    for record in merged.records:
        if record.k == KIND_FACT:
            key = record.key or ""
            if key not in expected or (record.ts, record.id) > (expected[key].ts, expected[key].id):
                expected[key] = record
    got = {key: (ref.ts, ref.value) for key, ref in state.facts.get("metadata", {}).items()}
    assert got == {key: (record.ts, record.data) for key, record in expected.items()}
    for key, ref in state.facts.get("metadata", {}).items():
        assert ref.value == expected[key].data


@settings(max_examples=30)
@given(st.integers(0, 2**32), st.integers(1, 15), st.integers(0, 5))
def test_single_writer_log_is_its_own_merge(seed: int, events: int, split: int) -> None:
    """A log written in id order by one writer keeps its exact bytes, and a prefix adds nothing."""
    rng = random.Random(seed)
    base = uuid.UUID(int=rng.getrandbits(128)).int >> 80 << 80
    lines = [
        Record(k=KIND_HEADER, id=str(uuid.UUID(int=base)), ts=_T0, v=1),
    ]
    parent = None
    for i in range(1, events + 1):
        kind = KIND_FACT if rng.random() < 0.3 else KIND_EVENT
        rid = str(uuid.UUID(int=base + i))
        if kind == KIND_EVENT:
            lines.append(Record(k=kind, id=rid, ts=_T0, parent=parent, type="text"))
            parent = rid
        else:
            lines.append(Record(k=kind, id=rid, ts=_T0, type="archived", data=msgspec.Raw(b"true")))
    log = encode_records(lines)
    prefix = encode_records(lines[: min(split, len(lines))])
    assert merge_logs([log]).data == log
    assert merge_logs([prefix, log]).data == log


def test_forked_copies_keep_both_branches_and_pick_the_same_head() -> None:
    root = Record(k=KIND_EVENT, id="00000000-0000-7000-8000-000000000001", ts=_T0, type="text")
    header = Record(k=KIND_HEADER, id="00000000-0000-7000-8000-000000000000", ts=_T0, v=1)

    def child(n: int, parent: str, ts_offset: int) -> Record:
        rid = f"00000000-0000-7000-8000-{n:012d}"
        return Record(k=KIND_EVENT, id=rid, ts=_T0 + dt.timedelta(days=ts_offset), parent=parent, type="text")

    # Machine A wrote two events after the shared root, machine B one (with a clock far ahead).
    a1 = child(10, root.id, 0)
    a2 = child(11, a1.id, 0)
    b1 = child(20, root.id, 365)
    copy_a = encode_records([header, root, a1, a2])
    copy_b = encode_records([header, root, b1])
    merged = merge_logs([copy_a, copy_b])
    tree = build_tree(merged.events)
    assert tree.forked
    assert tree.heads == [a2.id, b1.id]  # deepest leaf wins; B's clock does not matter
    assert [r.id for r in tree.branch()] == [root.id, a1.id, a2.id]
    assert {r.id for r in merged.events} == {root.id, a1.id, a2.id, b1.id}


def test_merged_file_verifies_clean(tmp_path: Path) -> None:
    lines = _history(7, 10, 4, 0.3)
    half = len(lines) // 2
    merged = merge_logs([b"".join(lines[:half] + lines[-2:]), b"".join(lines[: half - 1] + lines[half:])])
    path = tmp_path / "log.jsonl"
    path.write_bytes(merged.data)
    report = verify_log(path)
    assert report.ok
    assert not [f for f in report.findings if f.kind in ("duplicate", "gap", "header")]
    assert report.events == sum(1 for line in lines if b'"k":"event"' in line)
