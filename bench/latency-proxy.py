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
{"connections": N, "requests": M}, where requests counts HTTP/1.x request lines seen at the
start of client->server chunks (a heuristic good enough for a registry client: a request
body never starts a chunk with "GET /v2/"), and TLS ClientHellos are counted as "tls".
Send SIGUSR1 to reset the counters.
"""

import argparse
import asyncio
import json
import os
import re
import signal
import time

REQUEST_LINE = re.compile(rb"^(GET|HEAD|POST|PUT|PATCH|DELETE) (\S+) HTTP/1\.[01]\r\n", re.M)


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

        def seen(data):
            if data[:1] == b"\x16":
                stats.tls += 1
            for m in REQUEST_LINE.finditer(data[:4096]):
                if m.start() == 0:
                    stats.requests += 1
                    stats.lines.append(
                        "%.3f %s %s" % (time.time(), m.group(1).decode(), m.group(2).decode()[:120])
                    )
                    stats.write()

        await asyncio.gather(
            pump(creader, uwriter, delay, start_at, seen),
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
