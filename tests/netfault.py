"""A TCP proxy with faults, standing for one host's network to the database server.

Each "host" (a worker process) reaches PostgreSQL through a proxy of its own, and the test
decides what its network does:

- `partition()` / `heal()`: traffic stops silently in both directions, with no reset and
  nothing closed, as when a link or a switch drops every packet. Nothing is lost: what was
  sent during the partition is delivered after `heal()`, as TCP's retransmissions would
  deliver it once the link is back (a partition shorter than the kernel's retransmission
  limit, which is many minutes). New connections wait the same way.
- `latency`: seconds added to each direction of every chunk of data.
- `reset()`: every open connection is reset (RST to both ends), mid-transaction or not.

The proxy forwards bytes and knows nothing of PostgreSQL's protocol.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import select
import socket
import struct
import threading
import time
from urllib.parse import urlsplit, urlunsplit

# How often each link looks at the test's orders (a partition, a reset) while it waits.
STEP = 0.02


class FaultProxy:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.latency = 0.0
        self._open = threading.Event()
        self._open.set()
        self._closed = False
        self._generation = 0
        self._lock = threading.Lock()
        self._links = 0
        self._ids = itertools.count()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, database_url: str) -> str:
        """`database_url` with its host and port replaced by this proxy's."""
        parts = urlsplit(database_url)
        auth = parts.netloc.rpartition("@")[0]
        netloc = f"{auth}@127.0.0.1:{self.port}" if auth else f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def partition(self) -> None:
        self._open.clear()

    def heal(self) -> None:
        self._open.set()

    def reset(self) -> int:
        """Resets every open connection (each link does it within STEP); returns how many."""
        with self._lock:
            self._generation += 1
            return self._links

    def close(self) -> None:
        self._closed = True
        self._open.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self.reset()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._link, args=(client,), daemon=True).start()

    def _link(self, client: socket.socket) -> None:
        """One connection, every socket call on this one thread, so that a reset is a
        real RST and a partition stops both directions at once."""
        with self._lock:
            generation = self._generation
            self._links += 1
        server = None
        try:
            while not self._open.is_set():
                if self._stale(generation):
                    return
                time.sleep(STEP)
            server = socket.create_connection(self.upstream, timeout=10)
            self._pump(client, server, generation)
        except OSError:
            pass
        finally:
            with self._lock:
                self._links -= 1
            for s in (client, server):
                if s is not None:
                    with contextlib.suppress(OSError):
                        # SO_LINGER with a zero timeout: close() sends RST, not FIN.
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    with contextlib.suppress(OSError):
                        s.close()

    def _stale(self, generation: int) -> bool:
        return self._closed or self._generation != generation

    def _pump(self, client: socket.socket, server: socket.socket, generation: int) -> None:
        peer = {client: server, server: client}
        # Data on its way to each socket: (when it may be delivered, bytes; None for EOF).
        outbox: dict[socket.socket, collections.deque[tuple[float, bytes | None]]] = {
            client: collections.deque(),
            server: collections.deque(),
        }
        ended: set[socket.socket] = set()
        while not self._stale(generation):
            if not self._open.is_set():
                time.sleep(STEP)
                continue
            now = time.monotonic()
            for dst, box in outbox.items():
                while box and box[0][0] <= now:
                    _, data = box.popleft()
                    if data is None:
                        dst.shutdown(socket.SHUT_WR)
                    else:
                        dst.sendall(data)
            if len(ended) == 2 and not any(outbox.values()):
                return
            readable = [s for s in (client, server) if s not in ended]
            for src in select.select(readable, [], [], STEP)[0]:
                data = src.recv(65536)
                if not data:
                    ended.add(src)
                outbox[peer[src]].append((time.monotonic() + self.latency, data or None))
