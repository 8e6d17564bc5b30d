"""The HTTP protocol the server runs: uvicorn's h11 protocol with TCP_NODELAY on every
connection.

With `--workers` above 1, uvicorn hands the listening socket to worker processes, where asyncio
no longer recognises it as TCP and skips TCP_NODELAY; each keep-alive response then waits ~40 ms
for the client's delayed ACK (measured: 42 ms per request against 1 ms with one worker).
"""

from __future__ import annotations

import socket

from uvicorn.protocols.http.h11_impl import H11Protocol


class NoDelayH11Protocol(H11Protocol):
    def connection_made(self, transport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        super().connection_made(transport)
