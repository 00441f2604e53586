#!/usr/bin/env python3
"""delay-proxy: a TCP forwarder that adds a fixed one-way delay in each direction.

    delay-proxy.py --target HOST:PORT [--listen HOST:PORT] [--delay-ms 25] [--port-file FILE]

Every chunk read from one side is written to the other side DELAY ms after it was read. Each
direction has its own reader thread and writer thread joined by a queue of (deadline, data), so
the reader never waits for the writer: pipelined data keeps flowing and throughput is not
limited by the delay (a link with the given latency and loopback bandwidth). Order is preserved.
End of stream (and errors) are forwarded with the same delay as a half-close (shutdown SHUT_WR).

--listen defaults to 127.0.0.1:0 (any free port); --port-file receives the port actually bound,
written atomically once the proxy accepts connections. Python 3 standard library only.
"""

import argparse
import collections
import os
import signal
import socket
import sys
import threading
import time

CHUNK = 256 * 1024


def log(msg):
    print(f"delay-proxy: {msg}", file=sys.stderr, flush=True)


def parse_addr(text):
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


class Pipe:
    """One direction: src -> dst, every chunk delayed by `delay` seconds."""

    def __init__(self, name, src, dst, delay, conn):
        self.name = name
        self.src = src
        self.dst = dst
        self.delay = delay
        self.conn = conn
        self.items = collections.deque()  # (deadline, bytes or None for end of stream)
        self.cond = threading.Condition()
        self.bytes = 0

    def _put(self, data):
        with self.cond:
            self.items.append((time.monotonic() + self.delay, data))
            self.cond.notify()

    def reader(self):
        try:
            while True:
                data = self.src.recv(CHUNK)
                if not data:
                    break
                self._put(data)
        except OSError:
            pass
        self._put(None)

    def _take_due(self):
        """Wait for the oldest item to be due; return it plus everything else already due."""
        with self.cond:
            while not self.items:
                self.cond.wait()
            deadline = self.items[0][0]
        wait = deadline - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        parts = []
        eof = False
        now = time.monotonic()
        with self.cond:
            while self.items and self.items[0][0] <= now:
                _, data = self.items.popleft()
                if data is None:
                    eof = True
                    break
                parts.append(data)
        return parts, eof

    def writer(self):
        try:
            while True:
                parts, eof = self._take_due()
                if parts:
                    buf = parts[0] if len(parts) == 1 else b"".join(parts)
                    self.dst.sendall(buf)
                    self.bytes += len(buf)
                if eof:
                    self.dst.shutdown(socket.SHUT_WR)
                    return
        except OSError as e:
            log(f"{self.conn}: {self.name}: {e}; closing the connection")
            for s in (self.src, self.dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def handle(client, target, delay, conn_id):
    conn = f"conn {conn_id}"
    try:
        server = socket.create_connection(target)
    except OSError as e:
        log(f"{conn}: cannot connect to {target[0]}:{target[1]}: {e}")
        client.close()
        return
    for s in (client, server):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    up = Pipe("client->server", client, server, delay, conn)
    down = Pipe("server->client", server, client, delay, conn)
    threads = [
        threading.Thread(target=up.writer, daemon=True),
        threading.Thread(target=down.writer, daemon=True),
        threading.Thread(target=up.reader, daemon=True),
        threading.Thread(target=down.reader, daemon=True),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    client.close()
    server.close()
    log(f"{conn}: closed (client->server {up.bytes} bytes, server->client {down.bytes} bytes)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", type=parse_addr, default=("127.0.0.1", 0))
    ap.add_argument("--target", type=parse_addr, required=True)
    ap.add_argument("--delay-ms", type=float, default=25.0, help="one-way delay (default 25)")
    ap.add_argument("--port-file", help="write the bound port here once listening")
    args = ap.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    lsock = socket.create_server(args.listen, reuse_port=False)
    port = lsock.getsockname()[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.rename(tmp, args.port_file)
    log(f"listening on {args.listen[0]}:{port}, forwarding to {args.target[0]}:{args.target[1]}"
        f" with {args.delay_ms:g} ms each way")
    delay = args.delay_ms / 1000.0
    n = 0
    while True:
        client, _ = lsock.accept()
        n += 1
        threading.Thread(target=handle, args=(client, args.target, delay, n), daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
