#!/usr/bin/env python3
"""A TCP proxy that adds a fixed delay to every byte in each direction (a far-away registry).

    bench/latency-proxy.py --listen 127.0.0.1:PORT --upstream 127.0.0.1:5000 --delay-ms 25 \
        [--connect-rtt] [--stats FILE]

Every chunk read from one side is written to the other DELAY ms after it arrived, in order, so
a request and its answer cost 2 x DELAY (one round trip) while throughput is not limited.
With --connect-rtt, a new connection also waits one round trip before its first byte is
relayed (the TCP handshake of a real far-away host); without it (the default, the model of
issue #21) connecting is free and only data is delayed.

--stats FILE: after every closed connection, FILE is rewritten with one JSON object:
{"connections": N, "requests": M, "tls": T, "lines": [...]}, where requests counts the HTTP/1.x
requests each connection carried (heads parsed, Content-Length bodies skipped, so requests
pipelined back to back are each counted), lines lists them with when their first byte arrived,
and TLS ClientHellos are counted as "tls" (their requests cannot be seen).
Send SIGUSR1 to reset the counters.
"""

import argparse
import asyncio
import json
import os
import re
import signal
import time

REQUEST_LINE = re.compile(rb"(GET|HEAD|POST|PUT|PATCH|DELETE) (\S+) HTTP/1\.[01]\r\n")


class Stats:
    def __init__(self, path):
        self.path = path
        self.reset()

    def reset(self):
        self.connections = 0
        self.requests = 0
        self.tls = 0
        self.lines = []
        self.write()

    def write(self):
        if not self.path:
            return
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(
                {
                    "connections": self.connections,
                    "requests": self.requests,
                    "tls": self.tls,
                    "lines": self.lines,
                },
                f,
            )
        os.replace(tmp, self.path)


class RequestParser:
    """Finds the requests in one connection's client->server bytes: a head up to the empty
    line, then as many body bytes as its Content-Length says, then the next head."""

    def __init__(self, stats):
        self.stats = stats
        self.head = b""
        self.body_left = 0
        self.head_at = None
        self.tls = None

    def feed(self, data):
        if self.tls is None:
            self.tls = data[:1] == b"\x16"
            if self.tls:
                self.stats.tls += 1
        if self.tls:
            return
        now = time.time()
        while data:
            if self.body_left:
                n = min(self.body_left, len(data))
                self.body_left -= n
                data = data[n:]
                continue
            if self.head_at is None:
                self.head_at = now
            end = (self.head + data).find(b"\r\n\r\n")
            if end < 0:
                self.head += data
                if len(self.head) > 65536:
                    self.head = b""
                return
            taken = end + 4 - len(self.head)
            head, data = self.head + data[:taken], data[taken:]
            self.head = b""
            m = REQUEST_LINE.match(head)
            length = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.I)
            self.body_left = int(length.group(1)) if length else 0
            if m:
                self.stats.requests += 1
                self.stats.lines.append(
                    "%.3f %s %s" % (self.head_at, m.group(1).decode(), m.group(2).decode()[:120])
                )
                self.stats.write()
            self.head_at = None


async def pump(reader, writer, delay, start_at, on_chunk=None):
    """Copies reader to writer, each chunk DELAY seconds after it arrived (not before START_AT)."""
    queue = asyncio.Queue()
    loop = asyncio.get_running_loop()

    async def read():
        try:
            while True:
                data = await reader.read(256 * 1024)
                if on_chunk and data:
                    on_chunk(data)
                await queue.put((max(loop.time() + delay, start_at), data))
                if not data:
                    return
        except (ConnectionError, OSError):
            await queue.put((loop.time() + delay, b""))

    async def write():
        try:
            while True:
                due, data = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    await writer.drain()
                    return
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            return

    await asyncio.gather(read(), write())


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--delay-ms", type=float, default=25.0)
    ap.add_argument("--connect-rtt", action="store_true")
    ap.add_argument("--stats")
    a = ap.parse_args()
    delay = a.delay_ms / 1000.0
    lhost, lport = a.listen.rsplit(":", 1)
    uhost, uport = a.upstream.rsplit(":", 1)
    stats = Stats(a.stats)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, stats.reset)

    async def handle(creader, cwriter):
        start_at = loop.time() + (2 * delay if a.connect_rtt else 0.0)
        try:
            ureader, uwriter = await asyncio.open_connection(uhost, int(uport))
        except OSError:
            cwriter.close()
            return
        stats.connections += 1

        parser = RequestParser(stats)

        await asyncio.gather(
            pump(creader, uwriter, delay, start_at, parser.feed),
            pump(ureader, cwriter, delay, start_at),
        )
        for w in (cwriter, uwriter):
            try:
                w.close()
            except OSError:
                pass
        stats.write()

    server = await asyncio.start_server(handle, lhost, int(lport), reuse_address=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
