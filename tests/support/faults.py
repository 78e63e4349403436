"""A fault-injection layer over :mod:`eventlog._fs`: fail the Nth call of an operation.

Every write-side OS call of the log layer goes through ``eventlog._fs``, so
replacing its names is enough to make a write, sync, rename, truncate, open,
chmod or unlink fail exactly where a full or failing disk would.
"""

from __future__ import annotations

import errno
import os
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

from eventlog import _fs

OPS: Final = ("open", "write", "fsync", "replace", "ftruncate", "fchmod", "unlink")
KINDS: Final = ("EIO", "ENOSPC", "short")
_WRITE_FLAGS: Final = os.O_WRONLY | os.O_RDWR


@dataclass(frozen=True)
class Fault:
    """Fail the ``nth`` call (1-based) of ``op`` with ``kind``.

    ``short`` makes a write write only its first half (and succeed); for other
    operations it behaves like ``EIO``.
    """

    op: str
    nth: int
    kind: str


@dataclass
class Injector:
    faults: list[Fault]
    calls: Counter[str] = field(default_factory=Counter)
    injected: list[Fault] = field(default_factory=list)

    def _wrap(self, op: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            # Only write-side opens count: a read that fails is an ordinary OSError naming the file.
            if op == "open" and not args[1] & _WRITE_FLAGS:
                return real(*args)
            self.calls[op] += 1
            for fault in self.faults:
                if fault.op == op and fault.nth == self.calls[op]:
                    self.injected.append(fault)
                    if fault.kind == "short" and op == "write":
                        fd, data = args
                        return real(fd, memoryview(data)[: max(1, len(data) // 2)])
                    code = errno.ENOSPC if fault.kind == "ENOSPC" else errno.EIO
                    raise OSError(code, f"injected {fault.kind} on {op} #{fault.nth}")
            return real(*args)

        return call

    @contextmanager
    def armed(self) -> Iterator[Injector]:
        saved = {op: getattr(_fs, op) for op in OPS}
        try:
            for op in OPS:
                setattr(_fs, op, self._wrap(op, saved[op]))
            yield self
        finally:
            for op, real in saved.items():
                setattr(_fs, op, real)
