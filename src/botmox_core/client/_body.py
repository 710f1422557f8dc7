"""Reading a download's body in large pieces (the sync client's network side of a download).

httpx hands a streamed body over in the pieces httpcore reads from the socket, 64 KiB at a time,
each one passed through h11 and httpx's decoders. For an artifact of hundreds of MiB that is
thousands of reads, timeout changes and copies. :func:`iter_body` reads the body of an HTTP/1.1
answer that is sent as is -- a ``Content-Length``, no ``Transfer-Encoding``, no
``Content-Encoding`` -- straight from the connection's network stream (httpcore's documented
``network_stream`` response extension), up to :data:`READ_SIZE` bytes per read, once httpx has
handed over the first piece: that piece is all h11 had buffered past the headers, so what follows
on the stream is the rest of the body, byte for byte. h11 does not see those bytes, so the
connection is closed afterwards instead of going back to the pool.

Every other answer (HTTP/2, chunked or compressed bodies, no length, a transport without a
network stream such as ``httpx.MockTransport``) is read through ``Response.iter_bytes()``. The
bytes are verified against the release's size and sha256 either way.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpcore
import httpx

__all__ = ["DIRECT_READ_MIN", "READ_SIZE", "iter_body"]

#: Largest read from the network stream.
READ_SIZE = 1 << 20
#: Bodies shorter than this go through httpx as usual (and keep their connection for reuse):
#: they take about one read either way.
DIRECT_READ_MIN = READ_SIZE


def _direct_length(response: httpx.Response) -> int | None:
    """The body length when it can be read from the network stream, else None."""
    headers = response.headers
    length = headers.get("content-length", "")
    if (
        response.http_version != "HTTP/1.1"
        or "network_stream" not in response.extensions
        or not length.isdigit()
        or "transfer-encoding" in headers
        or headers.get("content-encoding", "identity").strip().lower() != "identity"
    ):
        return None
    size = int(length)
    return size if size >= DIRECT_READ_MIN else None


def iter_body(response: httpx.Response) -> Iterator[bytes]:
    """The body of a streamed ``response``, in pieces of up to :data:`READ_SIZE` bytes when it
    can be read from the network stream (see the module doc), else as ``iter_bytes()`` gives it.

    Failures are httpx's: a timeout raises :class:`httpx.ReadTimeout`, a broken connection
    :class:`httpx.ReadError`, a body that ends before its ``Content-Length``
    :class:`httpx.RemoteProtocolError`.
    """
    remaining = _direct_length(response)
    if remaining is None:
        yield from response.iter_bytes()
        return
    stream = response.extensions["network_stream"]
    timeout = response.request.extensions.get("timeout", {}).get("read")
    pieces = response.iter_raw()
    try:
        for first in pieces:  # what h11 read along with the headers, or one read
            remaining -= len(first)
            yield first
            break
        while remaining > 0:
            try:
                data = stream.read(min(READ_SIZE, remaining), timeout)
            except httpcore.TimeoutException as exc:
                raise httpx.ReadTimeout(str(exc), request=response.request) from exc
            except (httpcore.NetworkError, OSError) as exc:
                raise httpx.ReadError(str(exc), request=response.request) from exc
            if not data:
                raise httpx.RemoteProtocolError(
                    f"peer closed connection with {remaining} bytes of the body unsent",
                    request=response.request,
                )
            remaining -= len(data)
            yield data
    finally:
        # Done with httpx's iterator. Closing the response then closes the connection rather than
        # pooling it: h11 still expects the body read here.
        close = getattr(pieces, "close", None)  # a generator (typed as an Iterator by httpx)
        if close is not None:
            close()
