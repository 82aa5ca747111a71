#!/usr/bin/env python3
"""A TCP proxy that adds a fixed delay to every chunk, in both directions.

bench/run puts it in front of a Redis node to make that node "far away": with --delay-ms 20 each
request and each reply arrives 20 ms late, so a round trip through the proxy costs ~40 ms more.
(`tc netem` is not available on these machines; see shared/FAULTS.md.)

Chunks are delayed, not serialised: each one is forwarded at its arrival time plus the delay, in
order, so back-to-back chunks do not add up their delays the way a sleep-per-chunk loop would.

It listens on 127.0.0.1 on a port the kernel picks and writes that port to --port-file once it is
listening (write-then-rename, so a reader never sees a partial number). It exits on SIGTERM or
SIGINT, and on its own when its parent dies, so a killed benchmark leaves no proxy behind.

Standard library only.
"""

import argparse
import asyncio
import os
import signal
import sys

# How often to check whether the parent is still there; it bounds how long an orphan lives.
PARENT_POLL_S = 0.2
CHUNK = 64 * 1024


async def pump(reader, writer, delay, loop):
    """Copies reader to writer, forwarding each chunk `delay` seconds after it arrived."""
    queue = asyncio.Queue()

    async def receive():
        while True:
            try:
                data = await reader.read(CHUNK)
            except (ConnectionError, OSError):
                data = b""
            queue.put_nowait((loop.time() + delay, data))
            if not data:
                return

    async def send():
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                # The other side closed: pass the close on, just as late as the data before it.
                if writer.can_write_eof():
                    try:
                        writer.write_eof()
                    except (ConnectionError, OSError):
                        pass
                return
            writer.write(data)
            try:
                await writer.drain()
            except (ConnectionError, OSError):
                return

    await asyncio.gather(receive(), send())


async def serve(args):
    loop = asyncio.get_running_loop()
    delay = args.delay_ms / 1000.0
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    connections = set()

    async def handle(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection(
                args.target_host, args.target_port
            )
        except OSError:
            client_writer.close()
            return
        connections.add(asyncio.current_task())
        try:
            await asyncio.gather(
                pump(client_reader, server_writer, delay, loop),
                pump(server_reader, client_writer, delay, loop),
            )
        except asyncio.CancelledError:
            pass  # shutting down: end quietly instead of leaving a cancelled task to be logged
        finally:
            connections.discard(asyncio.current_task())
            for w in (client_writer, server_writer):
                w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{port}\n")
    os.rename(tmp, args.port_file)

    parent = os.getppid()

    async def watch_parent():
        # Reparenting (to init or a subreaper) means the benchmark that started us is gone.
        while os.getppid() == parent:
            await asyncio.sleep(PARENT_POLL_S)
        stop.set()

    watcher = asyncio.create_task(watch_parent())
    async with server:
        await stop.wait()
        server.close()
        watcher.cancel()
        for task in list(connections):
            task.cancel()
        await asyncio.gather(*connections, return_exceptions=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target-host", default="127.0.0.1")
    p.add_argument("--target-port", type=int, required=True)
    p.add_argument("--delay-ms", type=float, required=True, help="delay per chunk, each way")
    p.add_argument("--port-file", required=True, help="where to write the listening port")
    args = p.parse_args()
    if args.target_host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("delay_proxy: only loopback targets are allowed")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
