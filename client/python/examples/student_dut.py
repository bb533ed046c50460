#!/usr/bin/python3
"""A DUT skeleton: your TCP stack, attached to tcplabd and graded there. Start from this file.

As shipped it speaks the DUT protocol (proto/tcplab/v1/dut.proto) correctly but has no TCP:
it attaches, logs every datagram the lab sends (decoded: addresses, flags, seq, ack), answers
every socket call (the bookkeeping ones for real, accept "blocked" or EAGAIN, the rest
ENOSYS), and detaches cleanly on Ctrl-C. Graded like this, a script fails where TCP starts:
handshake_passive.pkt expects a SYN-ACK and "nothing was sent". Your stack goes where it
says "TODO (student)"; everything else is plumbing you can leave as it is.

    TCPLAB_PY_STUBS=build/python /usr/bin/python3 client/python/examples/student_dut.py \\
        --server 127.0.0.1:50051 --name alice
    # in another terminal:
    tcplab grade tests/scripts/lifecycle/handshake_passive.pkt --target dut --dut alice

You are 198.18.0.1; the script's peer is 198.18.0.2. Scripts bind port 8080; a peer that
opens talks from port 45000; the peer's ISN is 1,000,000 (engine/grading/SCRIPTS.md, "How the
runner runs a script"). Answer every call within 2 s, and send segments when your stack
would: the lab timestamps them as they arrive.

Exit status: 0 after Ctrl-C or SIGTERM (detached), 1 when the lab ends the stream (e.g.
ALREADY_EXISTS: the name is in use; UNAVAILABLE: no tcplabd there), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import os
import queue
import signal
import socket as _socket
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Union

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import grpc  # noqa: E402

from tcplab_client import pb  # noqa: E402  (the generated tcplab.v1 modules)

dut_pb2 = pb.dut_pb2
dut_pb2_grpc = pb.dut_pb2_grpc

#: Seconds between on_tick calls when nothing arrives: the resolution of your timers.
TICK = 0.002

# ---------------------------------------------------------------------------------------------
# IPv4 and TCP headers (RFC 791 §3.1, RFC 9293 §3.1), read and written with struct.

# version+IHL, TOS, total length, identification, flags+fragment offset, TTL, protocol,
# header checksum, source, destination: 20 octets.
IPV4_HEADER = struct.Struct("!BBHHHBBH4s4s")
# source port, destination port, seq, ack, data offset (<< 4), flags, window, checksum,
# urgent pointer: 20 octets.
TCP_HEADER = struct.Struct("!HHIIBBHHH")

FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80
# tcpdump's letters, in tcpdump's order (the script language uses the same: "S." is SYN+ACK).
_FLAG_LETTERS = ((FIN, "F"), (SYN, "S"), (RST, "R"), (PSH, "P"), (ACK, "."), (URG, "U"), (ECE, "E"), (CWR, "W"))


@dataclass
class Segment:
    """One TCP segment and the addresses of the IPv4 datagram that carried it."""

    src: str
    dst: str
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    window: int
    urgent: int = 0
    #: ("mss", 1460), ("wscale", 7), ("sackOK",), ("sack", [(left, right), ...]),
    #: ("TS", val, ecr), ("nop",), ("eol",), ("unknown", kind, data)
    options: list = field(default_factory=list)
    payload: bytes = b""
    checksum_ok: bool = True  # both the IPv4 header's and the TCP checksum verify

    def has(self, flag: int) -> bool:
        return bool(self.flags & flag)


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071): the ones' complement of the ones' complement sum of
    the 16-bit words. Over data that includes a correct checksum it is 0."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _pseudo_header(src: bytes, dst: bytes, tcp_length: int) -> bytes:
    # RFC 9293 §3.1: source, destination, zero, protocol 6, TCP length.
    return src + dst + struct.pack("!BBH", 0, 6, tcp_length)


def parse_options(raw: bytes) -> list:
    """TCP options (RFC 9293 §3.2; MSS; RFC 7323 wscale and TS; RFC 2018 SACK)."""
    out: list = []
    i = 0
    while i < len(raw):
        kind = raw[i]
        if kind == 0:
            out.append(("eol",))
            break
        if kind == 1:
            out.append(("nop",))
            i += 1
            continue
        if i + 1 >= len(raw) or raw[i + 1] < 2 or i + raw[i + 1] > len(raw):
            raise ValueError(f"TCP option {kind} at offset {i}: bad length")
        data = raw[i + 2 : i + raw[i + 1]]
        if kind == 2 and len(data) == 2:
            out.append(("mss", struct.unpack("!H", data)[0]))
        elif kind == 3 and len(data) == 1:
            out.append(("wscale", data[0]))
        elif kind == 4 and not data:
            out.append(("sackOK",))
        elif kind == 5 and len(data) % 8 == 0 and data:
            out.append(("sack", [struct.unpack_from("!II", data, j) for j in range(0, len(data), 8)]))
        elif kind == 8 and len(data) == 8:
            out.append(("TS", *struct.unpack("!II", data)))
        else:
            out.append(("unknown", kind, data))
        i += raw[i + 1]
    return out


def parse_datagram(data: bytes) -> Segment:
    """An IPv4 datagram carrying TCP, decoded. Raises ValueError saying what is wrong."""
    if len(data) < IPV4_HEADER.size:
        raise ValueError(f"{len(data)} octets: shorter than an IPv4 header")
    vihl, _tos, total, _id, _frag, _ttl, proto, _csum, src, dst = IPV4_HEADER.unpack_from(data)
    ihl = (vihl & 0x0F) * 4
    if vihl >> 4 != 4:
        raise ValueError(f"IP version {vihl >> 4}, not 4")
    if ihl < 20 or total > len(data) or total < ihl + TCP_HEADER.size:
        raise ValueError(f"bad lengths: IHL {ihl}, total length {total}, {len(data)} octets received")
    if proto != 6:
        raise ValueError(f"protocol {proto}, not TCP (6)")
    tcp = data[ihl:total]
    sport, dport, seq, ack, offset, flags, window, _tcsum, urgent = TCP_HEADER.unpack_from(tcp)
    doff = (offset >> 4) * 4
    if doff < 20 or doff > len(tcp):
        raise ValueError(f"TCP data offset {doff} in a {len(tcp)}-octet segment")
    ok = checksum(data[:ihl]) == 0 and checksum(_pseudo_header(src, dst, len(tcp)) + tcp) == 0
    return Segment(
        src=_socket.inet_ntoa(src),
        dst=_socket.inet_ntoa(dst),
        sport=sport,
        dport=dport,
        seq=seq,
        ack=ack,
        flags=flags,
        window=window,
        urgent=urgent,
        options=parse_options(tcp[20:doff]),
        payload=bytes(tcp[doff:]),
        checksum_ok=ok,
    )


def build_datagram(
    src: str,
    dst: str,
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    window: int,
    payload: bytes = b"",
    options: bytes = b"",
    ttl: int = 64,
) -> bytes:
    """An IPv4 datagram with one TCP segment, both checksums filled in. ``options`` are the
    raw option octets (e.g. MSS 1460: ``struct.pack("!BBH", 2, 4, 1460)``), padded here with
    zeros (EOL) to a multiple of 4."""
    options += b"\0" * (-len(options) % 4)
    s, d = _socket.inet_aton(src), _socket.inet_aton(dst)
    doff = 20 + len(options)
    tcp = TCP_HEADER.pack(sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, (doff // 4) << 4, flags, window, 0, 0)
    tcp += options + payload
    tcp = tcp[:16] + struct.pack("!H", checksum(_pseudo_header(s, d, len(tcp)) + tcp)) + tcp[18:]
    ip = IPV4_HEADER.pack(0x45, 0, 20 + len(tcp), 0, 0x4000, ttl, 6, 0, s, d)  # DF set
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return ip + tcp


def flag_letters(flags: int) -> str:
    """tcpdump's flags: "S" SYN, "S." SYN+ACK, "F." FIN+ACK, "." ACK alone, "none" for none."""
    return "".join(letter for bit, letter in _FLAG_LETTERS if flags & bit) or "none"


def format_segment(seg: Segment) -> str:
    """One readable line: 198.18.0.2:45000 > 198.18.0.1:8080 [S] seq=1000000 ack=0 win=65535 len=0 <mss 1460>"""
    line = (
        f"{seg.src}:{seg.sport} > {seg.dst}:{seg.dport} [{flag_letters(seg.flags)}] "
        f"seq={seg.seq} ack={seg.ack} win={seg.window} len={len(seg.payload)}"
    )
    opts = []
    for o in seg.options:
        if o[0] == "sack":
            opts.append("sack " + " ".join(f"{left}:{right}" for left, right in o[1]))
        elif o[0] == "TS":
            opts.append(f"TS val {o[1]} ecr {o[2]}")
        elif o[0] == "unknown":
            opts.append(f"kind {o[1]} ({len(o[2])} octets)")
        else:
            opts.append(" ".join(str(x) for x in o))
    if opts:
        line += " <" + ",".join(opts) + ">"
    if not seg.checksum_ok:
        line += " [bad checksum]"
    return line


# ---------------------------------------------------------------------------------------------
# Your stack.


class SockError(Exception):
    """A failed socket call: ``raise SockError("ECONNREFUSED")`` in a call handler."""

    def __init__(self, errno: str) -> None:
        super().__init__(errno)
        self.errno = errno


#: What a call handler returns when the call cannot complete yet (see StudentStack.call).
BLOCKED = "BLOCKED"

#: What a call handler may return: a value >= 0, (value, so_error) for GET_SO_ERROR, or BLOCKED.
CallValue = Union[int, tuple, str]


def is_blocked(value: CallValue) -> bool:
    return isinstance(value, str) and value == BLOCKED


@dataclass
class Socket:
    """A handle the lab calls with (SOCKET and ACCEPT return them; the runner maps the
    script's fd numbers to yours)."""

    handle: int
    local: Optional[tuple] = None  # (ip, port), from BIND
    remote: Optional[tuple] = None  # (ip, port), from CONNECT
    listening: bool = False
    backlog: int = 0
    nonblocking: bool = False
    reuseaddr: bool = False
    nodelay: bool = False
    linger: Optional[int] = None  # SO_LINGER seconds when on (0: close sends RST)
    so_error: str = "0"  # the pending error GET_SO_ERROR reports (and clears): "0" or "ECONNREFUSED"...
    # TODO (student): the connection behind the handle: your TCB (state, SND.UNA, SND.NXT,
    # RCV.NXT, windows, send and receive buffers, timers), or a key to find it.


class StudentStack:
    """Your TCP. The DUT loop calls it from one thread only, so it needs no locks.

    - ``reset(script)``: a script starts: forget every socket and connection.
    - ``on_datagram(seg, raw)``: the script's peer sent a segment (``raw``: the whole IPv4
      datagram, ``seg`` decoded).
    - ``on_tick(now)``: every TICK seconds at least; ``now`` is seconds since the reset (your
      timers: retransmission, delayed ACK, TIME-WAIT).
    - ``call(c)``: a socket call (``c`` is a ``tcplab.v1.SocketCall``). Return the value
      (>= 0), raise ``SockError("EXXX")``, or return ``BLOCKED`` when it cannot complete yet;
      the lab is told "blocked" at once. A blocked call is offered again, the same ``c``,
      after every datagram and tick until it returns something else, which is its result: so
      a handler must check state on a retry, not redo its work.
    - ``self.send(datagram)``: transmits a whole IPv4 datagram (``build_datagram`` fills in
      the checksums).
    """

    def __init__(self, send: Callable[[bytes], None], log: Callable[[str], None]) -> None:
        self.send = send
        self.log = log
        self.local_ip = "198.18.0.1"  # set from the lab's welcome
        self.peer_ip = "198.18.0.2"
        self.sockets: dict[int, Socket] = {}
        self.next_handle = 3
        self.reset("")

    # -- events ---------------------------------------------------------------------------

    def reset(self, script: str) -> None:
        self.sockets = {}
        self.next_handle = 3  # like a process's first free fd; any number >= 0 will do
        # TODO (student): drop every connection, timer and buffer of your stack as well.

    def on_datagram(self, seg: Segment, raw: bytes) -> None:
        # TODO (student): feed the segment to your stack. Drop it if not seg.checksum_ok.
        # Find the connection by (seg.dst, seg.dport, seg.src, seg.sport), else a listening
        # socket on seg.dport, else answer with a RST (RFC 9293 §3.10.7.1); then SEGMENT
        # ARRIVES (§3.10.7). A SYN to a listener: send a SYN-ACK, e.g.
        #   self.send(build_datagram(seg.dst, seg.src, seg.dport, seg.sport, iss, seg.seq + 1,
        #                            SYN | ACK, 65535, options=struct.pack("!BBH", 2, 4, 1460)))
        pass

    def on_tick(self, now: float) -> None:
        # TODO (student): your timers: retransmission (RFC 6298), delayed ACK, persist,
        # TIME-WAIT's 2*MSL.
        pass

    # -- socket calls -----------------------------------------------------------------------

    def call(self, c) -> CallValue:
        """Runs call ``c`` by its op: SOCK_OP_ACCEPT runs op_accept(c)."""
        name = dut_pb2.SockOp.Name(c.op) if c.op in dut_pb2.SockOp.values() else ""
        handler = getattr(self, "op_" + name[len("SOCK_OP_") :].lower(), None) if name else None
        if handler is None or c.op == dut_pb2.SOCK_OP_UNSPECIFIED:
            raise SockError("EINVAL")
        return handler(c)

    def _sock(self, c) -> Socket:
        s = self.sockets.get(c.handle)
        if s is None:
            raise SockError("EBADF")
        return s

    def op_socket(self, c) -> CallValue:
        s = Socket(self.next_handle)
        self.next_handle += 1
        self.sockets[s.handle] = s
        return s.handle

    def op_bind(self, c) -> CallValue:
        s = self._sock(c)
        # TODO (student): EADDRINUSE when another socket has the port (unless SO_REUSEADDR).
        s.local = (c.addr_ip, c.addr_port)
        return 0

    def op_listen(self, c) -> CallValue:
        s = self._sock(c)
        s.listening, s.backlog = True, c.arg
        # TODO (student): from now on your stack answers SYNs to s.local (LISTEN, RFC 9293 §3.10.7.2).
        return 0

    def op_accept(self, c) -> CallValue:
        s = self._sock(c)
        if not s.listening:
            raise SockError("EINVAL")
        # TODO (student): if a connection of this listener is ESTABLISHED and not accepted
        # yet, give it a new Socket (handle = self.next_handle, ...) and return the handle.
        if s.nonblocking:
            raise SockError("EAGAIN")
        return BLOCKED  # offered again after every datagram and tick

    def op_connect(self, c) -> CallValue:
        self._sock(c)
        # TODO (student): remote = (c.addr_ip, c.addr_port); pick a local port, send a SYN
        # (SYN-SENT). Non-blocking: raise SockError("EINPROGRESS"). Blocking: return BLOCKED
        # until ESTABLISHED (then 0) or refused (SockError("ECONNREFUSED")). On a retry, check
        # the connection's state; do not send another SYN.
        raise SockError("ENOSYS")

    def op_read(self, c) -> CallValue:
        self._sock(c)
        # TODO (student): up to c.arg octets from the receive buffer: their count; 0 at end of
        # stream (FIN received, all read); BLOCKED (or EAGAIN if non-blocking) when empty.
        raise SockError("ENOSYS")

    def op_write(self, c) -> CallValue:
        self._sock(c)
        # TODO (student): queue c.arg octets (any contents) to send: the count taken; BLOCKED
        # (or EAGAIN) while the send buffer is full; EPIPE after SHUT_WR or a reset.
        raise SockError("ENOSYS")

    def op_shutdown(self, c) -> CallValue:
        self._sock(c)
        # TODO (student): c.arg 0 SHUT_RD, 1 SHUT_WR (send FIN after the queued data), 2 both;
        # ENOTCONN if not connected.
        raise SockError("ENOSYS")

    def op_close(self, c) -> CallValue:
        s = self._sock(c)
        del self.sockets[s.handle]
        # TODO (student): close the connection behind it (FIN after the queued data, RFC 9293
        # §3.10.4), or abort it with a RST when s.linger == 0; a listener drops the
        # connections nobody accepted.
        return 0

    def op_set_nonblocking(self, c) -> CallValue:
        self._sock(c).nonblocking = c.flag
        return 0

    def op_get_flags(self, c) -> CallValue:
        return 0x2 | (0x800 if self._sock(c).nonblocking else 0)  # O_RDWR | O_NONBLOCK

    def op_set_linger(self, c) -> CallValue:
        self._sock(c).linger = c.arg if c.flag else None
        return 0

    def op_set_nodelay(self, c) -> CallValue:
        self._sock(c).nodelay = c.flag  # TODO (student): Nagle's algorithm (RFC 9293 §3.7.4) unless set
        return 0

    def op_set_reuseaddr(self, c) -> CallValue:
        self._sock(c).reuseaddr = c.flag
        return 0

    def op_get_so_error(self, c) -> CallValue:
        s = self._sock(c)
        err, s.so_error = s.so_error, "0"  # reading SO_ERROR clears it
        return (0, err)


# ---------------------------------------------------------------------------------------------
# The DUT protocol (plumbing): one AttachDut stream; the lab's messages are read on a thread
# and handled here one at a time, with your stack's timers in between.


def describe_call(c) -> str:
    """ "ACCEPT(3)", "BIND(3, 198.18.0.1:8080)", "READ(4, 1000)" ..."""
    name = dut_pb2.SockOp.Name(c.op)[len("SOCK_OP_") :] if c.op in dut_pb2.SockOp.values() else f"op {c.op}"
    args = [str(c.handle)] if c.op != dut_pb2.SOCK_OP_SOCKET else []
    if c.op in (dut_pb2.SOCK_OP_BIND, dut_pb2.SOCK_OP_CONNECT):
        args.append(f"{c.addr_ip}:{c.addr_port}")
    if c.op in (dut_pb2.SOCK_OP_LISTEN, dut_pb2.SOCK_OP_READ, dut_pb2.SOCK_OP_WRITE, dut_pb2.SOCK_OP_SHUTDOWN):
        args.append(str(c.arg))
    if c.op in (
        dut_pb2.SOCK_OP_SET_NONBLOCKING,
        dut_pb2.SOCK_OP_SET_NODELAY,
        dut_pb2.SOCK_OP_SET_REUSEADDR,
        dut_pb2.SOCK_OP_SET_LINGER,
    ):
        args.append("on" if c.flag else "off")
    if c.op == dut_pb2.SOCK_OP_SET_LINGER and c.flag:
        args.append(f"{c.arg}s")
    return f"{name}({', '.join(args)})"


class _End:
    """The lab's stream ended: error is the grpc.RpcError, or None when it ended cleanly."""

    def __init__(self, error: Optional[grpc.RpcError]) -> None:
        self.error = error


class Dut:
    """Attaches to tcplabd as ``name`` and serves ``stack`` until stopped (KeyboardInterrupt)
    or the lab ends the stream."""

    def __init__(self, server: str, name: str, description: str, out=None, token: Optional[str] = None) -> None:
        self.server, self.name, self.description = server, name, description
        # tcplabd --auth_tokens: the stream carries "authorization: Bearer TOKEN".
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.out = out or sys.stdout
        self.inbox: "queue.Queue" = queue.Queue()  # the lab's messages, and _End
        self.outbox: "queue.Queue" = queue.Queue()  # our messages; None ends our side
        self.started = time.monotonic()  # of the current script
        self.pending: dict[int, object] = {}  # call id -> SocketCall, for blocked calls
        self.stack = StudentStack(self._send_datagram, self.log)

    # -- output ---------------------------------------------------------------------------

    def log(self, text: str) -> None:
        """A line on stdout, stamped with the seconds since the script started."""
        print(f"{time.monotonic() - self.started:10.6f} {text}", file=self.out, flush=True)

    def _put(self, msg) -> None:
        self.outbox.put(msg)

    def _send_datagram(self, data: bytes) -> None:
        try:
            self.log("-> " + format_segment(parse_datagram(data)))
        except ValueError as e:
            self.log(f"-> malformed datagram ({e}): {data.hex()}")
        self._put(dut_pb2.DutMessage(datagram=dut_pb2.Datagram(data=bytes(data))))

    def _answer(self, c, value: CallValue) -> None:
        r = dut_pb2.CallResult(id=c.id)
        if is_blocked(value):
            r.blocked = True
            shown = "blocked"
        elif isinstance(value, tuple):
            r.value, r.so_error = value
            shown = f"{r.value} (SO_ERROR {r.so_error})"
        else:
            r.value = int(value)
            shown = str(r.value)
        self.log(f"call {describe_call(c)} -> {shown}")
        self._put(dut_pb2.DutMessage(result=r))

    def _fail(self, c, errno: str) -> None:
        self.log(f"call {describe_call(c)} -> -1 {errno}")
        self._put(dut_pb2.DutMessage(result=dut_pb2.CallResult(id=c.id, value=-1, err=errno)))

    # -- the lab's messages ---------------------------------------------------------------

    def handle(self, m) -> None:
        kind = m.WhichOneof("msg")
        if kind == "welcome":
            self.stack.local_ip, self.stack.peer_ip = m.welcome.local_ip, m.welcome.peer_ip
            print(
                f'attached as "{m.welcome.name}" (you are {m.welcome.local_ip}, the script\'s peer '
                f"{m.welcome.peer_ip}); waiting for a grading run",
                file=self.out,
                flush=True,
            )
        elif kind == "reset":
            self.started = time.monotonic()
            self.pending.clear()  # answers to an earlier script's calls would be ignored anyway
            print(f"script: {m.reset.script}", file=self.out, flush=True)
            self.stack.reset(m.reset.script)
            # Tell the lab: what we send from now on belongs to this script.
            self._put(dut_pb2.DutMessage(reset_done=dut_pb2.DutResetDone()))
        elif kind == "datagram":
            raw = bytes(m.datagram.data)
            try:
                seg = parse_datagram(raw)
            except ValueError as e:
                self.log(f"<- malformed datagram ({e}): {raw.hex()}")
                return
            self.log("<- " + format_segment(seg))
            self.stack.on_datagram(seg, raw)
        elif kind == "call":
            c = m.call
            try:
                value = self.stack.call(c)
            except SockError as e:
                self._fail(c, e.errno)
                return
            self._answer(c, value)
            if is_blocked(value):
                self.pending[c.id] = c

    def retry_blocked(self) -> None:
        """Offers each blocked call to the stack again; answers those that completed."""
        for cid, c in list(self.pending.items()):
            try:
                value = self.stack.call(c)
            except SockError as e:
                del self.pending[cid]
                self._fail(c, e.errno)
                continue
            if not is_blocked(value):
                del self.pending[cid]
                self._answer(c, value)

    # -- the stream -----------------------------------------------------------------------

    def _requests(self):
        while True:
            m = self.outbox.get()
            if m is None:
                return  # ends our side: the lab detaches us cleanly
            yield m

    def _read(self, call) -> None:
        try:
            for m in call:
                self.inbox.put(m)
            self.inbox.put(_End(None))
        except grpc.RpcError as e:
            self.inbox.put(_End(e))

    def run(self) -> int:
        """Serves until KeyboardInterrupt (then detaches: 0) or the end of the stream (1)."""
        channel = grpc.insecure_channel(self.server)
        call = None
        try:
            self._put(dut_pb2.DutMessage(hello=dut_pb2.DutHello(name=self.name, description=self.description)))
            call = dut_pb2_grpc.DutServiceStub(channel).AttachDut(self._requests(), metadata=self.metadata)
            threading.Thread(target=self._read, args=(call,), name="lab-reader", daemon=True).start()
            try:
                while True:
                    try:
                        m = self.inbox.get(timeout=TICK)
                    except queue.Empty:
                        m = None
                    if isinstance(m, _End):
                        return self._ended(m.error)
                    if m is not None:
                        self.handle(m)
                    self.stack.on_tick(time.monotonic() - self.started)
                    self.retry_blocked()
            except KeyboardInterrupt:
                self._put(None)  # the lab sees us leave and ends the stream
                try:
                    end = self.inbox.get(timeout=3)
                    while not isinstance(end, _End):
                        end = self.inbox.get(timeout=3)
                except queue.Empty:
                    call.cancel()
                print("detached", file=self.out, flush=True)
                return 0
        finally:
            self._put(None)
            channel.close()

    def _ended(self, error: Optional[grpc.RpcError]) -> int:
        if error is None:
            print("student_dut: the lab ended the stream", file=sys.stderr)
        else:
            code = error.code() or grpc.StatusCode.UNKNOWN
            print(f"student_dut: {code.name}: {error.details()} [server {self.server}]", file=sys.stderr)
        return 1


def _stop_on_sigterm(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM detaches like Ctrl-C


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", default=os.environ.get("TCPLAB_SERVER", "127.0.0.1:50051"), help="tcplabd's address")
    p.add_argument("--name", default="student", help="the DUT's name, unique on the server ([A-Za-z0-9._-], 1-64)")
    p.add_argument("--description", default="student_dut.py skeleton", help="free text, shown by `tcplab dut ls`")
    p.add_argument("--token", default=os.environ.get("TCPLAB_TOKEN"), help="bearer token (default $TCPLAB_TOKEN)")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    # Ctrl-C raises KeyboardInterrupt even when started in the background by a shell that
    # ignores SIGINT for background jobs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    return Dut(args.server, args.name, args.description, token=args.token).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
