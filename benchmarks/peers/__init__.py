"""The stores measured side by side: this library, its peers and the physical floors."""

from __future__ import annotations

from benchmarks.peers.base import Peer, SessionSpec, Store
from benchmarks.peers.eventsourcing_peer import EventsourcingPeer
from benchmarks.peers.floors import FloorPeer
from benchmarks.peers.naive import NaivePeer
from benchmarks.peers.ours import OursPeer
from benchmarks.peers.sqlite_ref import SQLitePeer, SQLiteSessionService

__all__ = ["Peer", "SQLiteSessionService", "SessionSpec", "Store", "all_peers", "peer_by_name"]


def all_peers() -> list[Peer]:
    """Every peer, this library first."""
    return [
        OursPeer(),
        SQLitePeer(per_event=True),
        SQLitePeer(per_event=False),
        EventsourcingPeer(),
        NaivePeer(),
        FloorPeer(),
    ]


def peer_by_name(name: str) -> Peer:
    """The peer called ``name``.

    :raises KeyError: if there is none.
    """
    for peer in all_peers():
        if peer.name == name:
            return peer
    raise KeyError(f"no peer named {name!r}; known: {', '.join(p.name for p in all_peers())}")
