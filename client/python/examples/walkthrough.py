#!/usr/bin/python3
"""The lesson's walkthrough of the TCP life cycle, against a live tcplabd.

In a fresh sandbox (tun backend when the server can make one, MSL 0.5 s):

  1. the Linux kernel listens on 198.18.0.1:80;
  2. the engine connects to it: SYN seq=x; SYN+ACK seq=y ack=x+1; ACK ack=y+1;
  3. the engine sends "hello", the kernel reads it;
  4. the engine closes (FIN-WAIT-1, FIN-WAIT-2), the kernel reads end of stream (CLOSE-WAIT)
     and closes its accepted connection (LAST-ACK, CLOSED);
  5. the engine waits in TIME-WAIT for 2·MSL, then CLOSED;

then prints the sandbox's events in order (segments with relative seq/ack and flags, state
changes per stack with their causes, timers), the path of states of each connection, and
deletes the sandbox. With --backend virtual the peer is a second engine connection: the
engine listens on 198.18.0.2:80 and connects to itself.

Exit status 0 when the whole life cycle was seen, 1 when it was not, 2 on errors.

    /usr/bin/python3 client/python/examples/walkthrough.py --server 127.0.0.1:50051
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import grpc  # noqa: E402

from tcplab_client import Client, Conn, TcplabError, format_event, state_name  # noqa: E402


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", default="127.0.0.1:50051", help="tcplabd address (default %(default)s)")
    p.add_argument(
        "--backend",
        choices=["tun", "virtual"],
        default=None,
        help="tun: the Linux kernel is the peer (needs a root tcplabd); virtual: engine to engine. "
        "Default: tun if the server can, else virtual",
    )
    p.add_argument("--msl", type=float, default=0.5, help="the engine's MSL in seconds (default %(default)s)")
    p.add_argument("--token", default=os.environ.get("TCPLAB_TOKEN"), help="bearer token (default $TCPLAB_TOKEN)")
    p.add_argument("--port", type=int, default=80, help="the listener's port (default %(default)s)")
    p.add_argument("--wait", type=float, default=10.0, help="seconds to wait for the server (default %(default)s)")
    return p.parse_args(argv)


def create(c: Client, backend: str | None, msl: float):
    """The sandbox; without --backend, tun when the server can make one, else virtual."""
    if backend:
        return c.create_sandbox(backend=backend, msl=msl)
    try:
        return c.create_sandbox(backend="tun", msl=msl)
    except TcplabError as e:
        if e.code not in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.FAILED_PRECONDITION):
            raise
        print(f"(tun backend unavailable: {e.message}; using the virtual backend)")
        return c.create_sandbox(backend="virtual", msl=msl)


def state_paths(events) -> dict[tuple[str, int], list[str]]:
    """For each (stack, connection), the states it went through, in order."""
    paths: dict[tuple[str, int], list[str]] = {}
    for ev in events:
        if ev.WhichOneof("body") != "state":
            continue
        key = ("kernel" if ev.stack == 2 else "engine", ev.connection_id)
        path = paths.setdefault(key, [state_name(getattr(ev.state, "from"))])
        path.append(state_name(ev.state.to))
    return paths


def run(c: Client, args: argparse.Namespace) -> int:
    sb = create(c, args.backend, args.msl)
    name = sb.name
    virtual = sb.options.backend == 2  # BACKEND_VIRTUAL
    msl = sb.options.msl.seconds + sb.options.msl.nanos / 1e9
    print(f"sandbox {name}: backend {'virtual' if virtual else 'tun'}, MSL {msl:g}s (TIME-WAIT {2 * msl:g}s)")
    try:
        if virtual:
            server_stack, server_ip = "engine", "198.18.0.2"
        else:
            server_stack, server_ip = "kernel", "198.18.0.1"
        peer = f"{server_ip}:{args.port}"

        listener = c.listen(name, server_stack, args.port, ip=server_ip)
        print(f"{server_stack} listens on {peer}: {listener}")
        client = c.connect(name, "engine", to=peer)
        print(f"engine connects to {peer}: {client}")
        c.wait_state(client, "ESTABLISHED")
        server = c.wait_accepted(listener, skip=[client])
        print(f"{server_stack} accepted {server}; {client} is ESTABLISHED")

        c.send(client, b"hello")
        got = c.recv_exactly(server, 5)
        print(f"engine sent 'hello'; {server_stack} read {got!r}")

        c.close(client)
        print(f"engine closes {client}")
        # The server reads the end of stream (the FIN), then closes: the four-way close.
        deadline = time.monotonic() + 5
        while not c.recv(server, wait=1.0).eof:
            if time.monotonic() > deadline:
                raise TcplabError(grpc.StatusCode.DEADLINE_EXCEEDED, f"no end of stream on {server}")
        c.wait_state(server, "CLOSE-WAIT")
        # Let the ACK of the FIN go out on its own before the server's FIN, so the close shows
        # four segments (Linux delays that ACK; without the wait it rides on the server's FIN).
        try:
            c.wait_state(client, "FIN-WAIT-2", timeout=1.0)
        except TcplabError:
            pass
        print(f"{server_stack} read end of stream on {server} (CLOSE-WAIT) and closes it")
        c.close(server)
        c.wait_state(client, "TIME-WAIT")
        t0 = time.monotonic()
        print(f"{client} is in TIME-WAIT; waiting 2*MSL = {2 * msl:g}s")
        # TIME-WAIT ends after 2*MSL: the connection is CLOSED then (or already forgotten).
        c.wait_state(client, "CLOSED", timeout=2 * msl + 5)
        print(f"{client} is CLOSED after {time.monotonic() - t0:.2f}s")
        time.sleep(0.2)  # let the kernel's last state changes be observed

        events = c.events(name)
        print(f"\nevents of {name} ({len(events)}):")
        for ev in events:
            print("  " + format_event(ev))

        paths = state_paths(events)
        print("\nstates:")
        for (stack, cid), path in sorted(paths.items(), key=lambda kv: kv[0][1]):
            print(f"  {stack} {name}/{cid}: {' -> '.join(path)}")
        return check(events, paths, client, server, server_stack)
    finally:
        try:
            c.delete_sandbox(name)
            print(f"\nsandbox {name} deleted")
        except TcplabError as e:
            print(f"deleting {name}: {e}", file=sys.stderr)


def check(events, paths, client: Conn, server: Conn, server_stack: str) -> int:
    """1 (and what is missing) unless the events show the whole life cycle."""
    problems = []
    flags = [ev.segment.flags for ev in events if ev.WhichOneof("body") == "segment" and ev.connection_id == client.id]
    for want, name in ((0x02, "SYN"), (0x12, "SYN+ACK"), (0x11, "FIN+ACK")):
        if want not in flags:
            problems.append(f"no {name} segment of {client}")
    engine = paths.get(("engine", client.id), [])
    for st in ("SYN-SENT", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT", "CLOSED"):
        if st not in engine:
            problems.append(f"{client} never was {st}")
    peer = paths.get((server_stack, server.id), [])
    for st in ("ESTABLISHED", "CLOSE-WAIT", "LAST-ACK", "CLOSED"):
        if st not in peer:
            problems.append(f"{server} ({server_stack}) never was {st}")
    timers = [ev.timer for ev in events if ev.WhichOneof("body") == "timer" and ev.connection_id == client.id]
    if not any(t.kind == 4 and t.action == 1 for t in timers):  # KIND_TIME_WAIT, ACTION_STARTED
        problems.append(f"no 2*MSL timer started on {client}")
    if problems:
        print("\nincomplete life cycle:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print("\nlife cycle complete: handshake, data, four-way close, TIME-WAIT for 2*MSL, CLOSED")
    return 0


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        with Client(args.server, token=args.token) as c:
            c.wait_ready(timeout=args.wait)
            return run(c, args)
    except TcplabError as e:
        print(f"walkthrough: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
