"""Property tests: round trips and chain ordering."""

from __future__ import annotations

import datetime as dt
import itertools
import random
import tempfile

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from eventlog import Record, build_tree, decode_record, encode_records, is_linear, order_events
from sessions import EventBase, LocalSessionService, SessionManager, deserialize_event, serialize_event
from tests.support.strategies import events, texts

_T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@given(events)
def test_event_round_trip(event: EventBase) -> None:
    event_type, event_data = serialize_event(event)
    assert "\n" not in event_data
    assert deserialize_event(event_type, event_data) == event


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(events, min_size=1, max_size=5), min_size=1, max_size=4))
def test_persist_then_resume_returns_the_same_events(turns: list[list[EventBase]]) -> None:
    with tempfile.TemporaryDirectory() as root:
        service = LocalSessionService.open(root, durability="flush")
        manager = SessionManager.create_new(service, "/p", None)
        history: list[EventBase] = []
        for turn in turns:
            history += turn
            manager.persist_events(history)
        stored = service.get_session(manager.session_id)
        assert stored is not None
        resumed = SessionManager.resume(LocalSessionService.open(root), stored)
        assert resumed.events == history
        assert resumed.manager.head_id == manager.head_id


records = st.builds(
    Record,
    k=st.sampled_from(["log", "event", "fact", "from-the-future"]),
    id=texts,
    ts=st.datetimes(timezones=st.just(dt.UTC)),
    parent=st.none() | texts,
    inv=st.none() | texts,
    type=st.none() | texts,
    key=st.none() | texts,
    v=st.none() | st.integers(0, 5),
    data=st.builds(lambda value: msgspec.Raw(msgspec.json.encode(value)), st.none() | texts | st.integers()),
)


@given(st.lists(records, max_size=5))
def test_records_round_trip_one_per_line(batch: list[Record]) -> None:
    encoded = encode_records(batch)
    lines = encoded.split(b"\n")
    assert lines[-1] == b"" and len(lines) == len(batch) + 1
    for record, line in zip(batch, lines, strict=False):
        decoded = decode_record(line)
        assert msgspec.structs.replace(decoded, data=msgspec.Raw(b"0")) == msgspec.structs.replace(
            record, data=msgspec.Raw(b"0")
        )
        assert bytes(decoded.data) == bytes(record.data)


def _event(event_id: str, parent: str | None) -> Record:
    return Record(k="event", id=event_id, ts=_T0, parent=parent)


@st.composite
def trees(draw: st.DrawFn) -> list[Record]:
    """Events of a random tree, in an order where each parent comes before its children."""
    size = draw(st.integers(1, 30))
    ids = [f"e{n:03d}" for n in range(size)]
    draw(st.randoms()).shuffle(ids)
    result = [_event(ids[0], None)]
    for n in range(1, size):
        result.append(_event(ids[n], ids[draw(st.integers(0, n - 1))]))
    return result


def _assert_is_chain(branch: list[Record]) -> None:
    assert branch[0].parent is None
    for before, after in itertools.pairwise(branch):
        assert after.parent == before.id


@given(trees())
def test_active_branch_is_a_chain_ending_at_the_deepest_leaf(events_in_file: list[Record]) -> None:
    tree = build_tree(events_in_file)
    branch = tree.branch()
    _assert_is_chain(branch)
    assert branch[-1].id == tree.active_head
    deepest = max(tree.depth[h] for h in tree.heads)
    assert len(branch) == deepest
    assert tree.active_head == max(h for h in tree.heads if tree.depth[h] == deepest)
    children = {r.parent for r in events_in_file}
    assert set(tree.heads) == {r.id for r in events_in_file if r.id not in children}


@given(trees(), st.randoms())
def test_every_machine_picks_the_same_branch(events_in_file: list[Record], rnd: random.Random) -> None:
    """Any parent-first order of the same records (another machine's copy) gives the same answer."""
    children: dict[str | None, list[Record]] = {}
    for record in events_in_file:
        children.setdefault(record.parent, []).append(record)
    reordered: list[Record] = []
    ready = list(children[None])
    while ready:
        record = ready.pop(rnd.randrange(len(ready)))
        reordered.append(record)
        ready += children.get(record.id, [])
    duplicated = reordered + rnd.sample(reordered, k=min(3, len(reordered)))
    assert [r.id for r in order_events(duplicated)] == [r.id for r in order_events(events_in_file)]


@given(st.integers(1, 50))
def test_linear_logs_keep_file_order(size: int) -> None:
    chain = [_event("root", None)]
    for n in range(1, size):
        chain.append(_event(f"n{n}", chain[-1].id))
    assert is_linear(chain)
    assert order_events(chain) == chain


@given(st.integers(3, 40), st.data())
def test_a_lost_line_does_not_hide_what_came_before_or_after(size: int, data: st.DataObject) -> None:
    linear = [_event("root", None)]
    for n in range(1, size):
        linear.append(_event(f"n{n:03d}", linear[-1].id))
    lost = data.draw(st.integers(1, len(linear) - 2))
    survivors = linear[:lost] + linear[lost + 1 :]
    tree = build_tree(survivors)
    assert [r.id for r in tree.branch()] == [r.id for r in survivors]
    assert [r.id for r in tree.gaps] == [linear[lost + 1].id]


def test_an_orphan_hangs_off_the_event_before_it() -> None:
    events_in_file = [_event("a", None), _event("b", "a"), _event("c", "zz-missing"), _event("d", "c")]
    tree = build_tree(events_in_file)
    assert [r.id for r in tree.branch()] == ["a", "b", "c", "d"]
    assert [r.id for r in tree.gaps] == ["c"]
