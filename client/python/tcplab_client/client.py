"""``Client``: tcplab.v1's SandboxService, ConnectionService, GradingService and ListDuts as plain Python calls."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Iterable, Iterator, NamedTuple, Optional, Sequence, Union

import grpc
from google.protobuf import duration_pb2

from ._stubs import (
    common_pb2,
    connection_pb2,
    connection_pb2_grpc,
    dut_pb2,
    dut_pb2_grpc,
    events_pb2,
    grading_pb2,
    grading_pb2_grpc,
    sandbox_pb2,
    sandbox_pb2_grpc,
)

#: A stack: ``"engine"``, ``"kernel"`` or a ``tcplab.v1.Stack`` value.
StackLike = Union[str, int]
#: A length of time: seconds (float) or a ``timedelta``.
DurationLike = Union[float, int, timedelta]
#: A grading script: a path (read here; the path as given is its name), ``(name, text)``, or
#: a ``tcplab.v1.Script``.
ScriptLike = Union[str, "os.PathLike[str]", tuple, "grading_pb2.Script"]

#: Trailing metadata key in which tcplabd returns the errno of a failed socket call.
ERRNO_METADATA_KEY = "tcplab-errno"
#: The most one Send call carries (SendRequest.data: 1 octet to 4 MiB).
MAX_SEND_CHUNK = 4 << 20

_STACKS = {"engine": common_pb2.STACK_ENGINE, "kernel": common_pb2.STACK_KERNEL}
_STACK_NAMES = {v: k for k, v in _STACKS.items()}
_BACKENDS = {"tun": sandbox_pb2.BACKEND_TUN, "virtual": sandbox_pb2.BACKEND_VIRTUAL}
_KINDS = {
    "segment": events_pb2.EVENT_KIND_SEGMENT,
    "state": events_pb2.EVENT_KIND_STATE,
    "timer": events_pb2.EVENT_KIND_TIMER,
    "app": events_pb2.EVENT_KIND_APP,
}
_TARGETS = {
    "engine": grading_pb2.GRADING_TARGET_ENGINE,
    "kernel": grading_pb2.GRADING_TARGET_KERNEL,
    "dut": grading_pb2.GRADING_TARGET_DUT,
}
_DIRECTIONS = {
    "to_kernel": sandbox_pb2.SetImpairmentRequest.DIRECTION_TO_KERNEL,
    "to_engine": sandbox_pb2.SetImpairmentRequest.DIRECTION_TO_ENGINE,
    "both": sandbox_pb2.SetImpairmentRequest.DIRECTION_BOTH,
}


class TcplabError(Exception):
    """A failed tcplab call.

    Attributes:
        code: the gRPC status code (``grpc.StatusCode.NOT_FOUND``, ...).
        message: the server's message ("sandbox \\"x\\" not found", "connection lab1/3 is in TIME-WAIT").
        errno: for failed socket calls, the errno name the server attached
            (``"ECONNREFUSED"``, ``"ECONNRESET"``, ...), else ``None``.
    """

    def __init__(self, code: grpc.StatusCode, message: str, errno: Optional[str] = None):
        self.code = code
        self.message = message
        self.errno = errno
        super().__init__(str(self))

    def __str__(self) -> str:
        s = f"{self.code.name}: {self.message}"
        if self.errno and self.errno not in self.message:
            s += f" ({self.errno})"
        return s

    @classmethod
    def from_rpc(cls, e: grpc.RpcError) -> "TcplabError":
        """Builds the error from a ``grpc.RpcError`` (errno from trailing metadata ``tcplab-errno``)."""
        code = e.code() if hasattr(e, "code") else grpc.StatusCode.UNKNOWN
        message = e.details() if hasattr(e, "details") else str(e)
        errno = None
        trailing = e.trailing_metadata() if hasattr(e, "trailing_metadata") else None
        for key, value in trailing or ():
            if key == ERRNO_METADATA_KEY:
                errno = value.decode() if isinstance(value, bytes) else value
        return cls(code or grpc.StatusCode.UNKNOWN, message or "", errno)


@dataclass(frozen=True)
class Conn:
    """A connection (or listener) handle: the sandbox, the id unique in it, and its stack.

    ``str(conn)`` is ``"lab1/3"``, the way the CLI and the server's messages name it.
    """

    sandbox: str
    id: int
    stack: str = "engine"

    def __str__(self) -> str:
        return f"{self.sandbox}/{self.id}"

    @classmethod
    def of(cls, c: "connection_pb2.Connection") -> "Conn":
        """The handle of a ``tcplab.v1.Connection`` message."""
        return cls(c.sandbox, c.id, _STACK_NAMES.get(c.stack, "engine"))


class Received(NamedTuple):
    """What one ``recv`` returned: the octets (possibly none) and whether the peer's FIN has
    arrived and everything before it has been read."""

    data: bytes
    eof: bool


def _stack(s: StackLike) -> int:
    if isinstance(s, str):
        try:
            return _STACKS[s.lower()]
        except KeyError:
            raise ValueError(f'stack must be "engine" or "kernel", got {s!r}') from None
    return int(s)


def _duration(d: DurationLike) -> duration_pb2.Duration:
    out = duration_pb2.Duration()
    if isinstance(d, timedelta):
        out.FromTimedelta(d)
    else:
        out.FromNanoseconds(int(round(float(d) * 1e9)))
    return out


def _script(s: ScriptLike) -> "grading_pb2.Script":
    if isinstance(s, grading_pb2.Script):
        return s
    if isinstance(s, tuple):
        name, text = s
        return grading_pb2.Script(name=str(name), text=text)
    path = os.fspath(s)
    with open(path, encoding="utf-8") as f:
        return grading_pb2.Script(name=path, text=f.read())


class GradeRun:
    """One grading run in progress (:meth:`Client.grade`): iterate over it for each script's
    ``tcplab.v1.ScriptResult`` as the server finishes it, in the order asked.

    After the last result, ``summary`` is the stored run (``tcplab.v1.GradingRun``: ``id``,
    ``passed``, ``failed``, ``state``; its ``results`` are omitted, see
    :meth:`Client.get_run`). ``results`` keeps what arrived, ``done``/``total`` the progress.
    A failed run (the server refused it, or stopped) raises :class:`TcplabError` from the
    iteration; the results that arrived before stay in ``results`` (and on the server).
    ``cancel()`` (or closing the iterator) cancels the run after the script in progress.
    """

    def __init__(self, call) -> None:
        self._call = call
        self.results: list = []
        self.summary: Optional["grading_pb2.GradingRun"] = None
        self.done = 0
        self.total = 0
        self._it = self._results()

    def _results(self):
        try:
            for resp in self._call:
                self.done, self.total = resp.done, resp.total
                if resp.HasField("result"):
                    self.results.append(resp.result)
                    yield resp.result
                elif resp.HasField("summary"):
                    self.summary = resp.summary
        except grpc.RpcError as e:
            raise TcplabError.from_rpc(e) from None
        finally:
            self._call.cancel()

    def __iter__(self) -> "GradeRun":
        return self

    def __next__(self) -> "grading_pb2.ScriptResult":
        return next(self._it)

    def close(self) -> None:
        """Stops reading and cancels the run (same as :meth:`cancel`)."""
        self._it.close()

    def cancel(self) -> None:
        self._call.cancel()

    @property
    def passed(self) -> bool:
        """True once the run finished (summary received) with every script passing."""
        return self.summary is not None and self.summary.failed == 0 and len(self.results) == self.total


def _endpoint(to: Union[str, tuple]) -> common_pb2.Endpoint:
    """``"198.18.0.1:80"`` or ``("198.18.0.1", 80)``."""
    if isinstance(to, tuple):
        ip, port = to
    else:
        ip, sep, port = to.rpartition(":")
        if not sep:
            raise ValueError(f'endpoint must be "ip:port", got {to!r}')
    return common_pb2.Endpoint(ip=ip, port=int(port))


def _conn_id(c: Union[Conn, int, None]) -> int:
    if c is None:
        return 0
    return c.id if isinstance(c, Conn) else int(c)


class Client:
    """A connection to a tcplabd server.

    >>> with Client("127.0.0.1:50051") as c:
    ...     sb = c.create_sandbox(backend="virtual", msl=0.5)
    ...     srv = c.listen(sb.name, "engine", 80, ip="198.18.0.2")
    ...     cli = c.connect(sb.name, "engine", to="198.18.0.2:80")

    Every failed call raises :class:`TcplabError`. ``token``, when given, is sent with each
    call as ``authorization: Bearer <token>``. ``timeout`` (seconds) bounds each unary call.
    """

    def __init__(self, server: str = "127.0.0.1:50051", token: Optional[str] = None, timeout: float = 30.0):
        self.server = server
        self.timeout = timeout
        self._metadata: tuple = (("authorization", f"Bearer {token}"),) if token else ()
        self._channel = grpc.insecure_channel(server)
        self._sandboxes = sandbox_pb2_grpc.SandboxServiceStub(self._channel)
        self._conns = connection_pb2_grpc.ConnectionServiceStub(self._channel)
        self._grading = grading_pb2_grpc.GradingServiceStub(self._channel)
        self._duts = dut_pb2_grpc.DutServiceStub(self._channel)

    # -- plumbing ---------------------------------------------------------------------------

    def close_channel(self) -> None:
        """Closes the gRPC channel; the client is unusable afterwards."""
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close_channel()

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Blocks until the channel is connected (raises TcplabError UNAVAILABLE after ``timeout``)."""
        try:
            grpc.channel_ready_future(self._channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise TcplabError(grpc.StatusCode.UNAVAILABLE, f"no tcplabd at {self.server} after {timeout}s") from None

    def _call(self, method, request, timeout: Optional[float] = None):
        try:
            return method(request, metadata=self._metadata, timeout=timeout or self.timeout)
        except grpc.RpcError as e:
            raise TcplabError.from_rpc(e) from None

    # -- sandboxes --------------------------------------------------------------------------

    def create_sandbox(
        self,
        name: Optional[str] = None,
        backend: Optional[str] = None,
        msl: Optional[DurationLike] = None,
        mtu: Optional[int] = None,
        min_rto: Optional[DurationLike] = None,
        **options,
    ) -> "sandbox_pb2.Sandbox":
        """Creates a sandbox and returns it (``.name`` is its name).

        Args:
            name: ``[a-z][a-z0-9-]{0,31}``; ``None``: the server picks ``lab1``, ``lab2``, ...
            backend: ``"tun"`` (the Linux kernel as peer; root), ``"virtual"`` (engine only),
                ``None``: the server's default.
            msl: the engine's MSL; TIME-WAIT lasts 2·MSL.
            mtu: the TUN's MTU (576..65535).
            min_rto: the engine's RTO floor.
            options: other ``SandboxOptions`` fields, e.g. ``no_delayed_ack=True``.
        """
        opts = sandbox_pb2.SandboxOptions(**options)
        if backend is not None:
            try:
                opts.backend = _BACKENDS[backend] if isinstance(backend, str) else int(backend)
            except KeyError:
                raise ValueError(f'backend must be "tun" or "virtual", got {backend!r}') from None
        if msl is not None:
            opts.msl.CopyFrom(_duration(msl))
        if min_rto is not None:
            opts.min_rto.CopyFrom(_duration(min_rto))
        if mtu is not None:
            opts.mtu = mtu
        req = sandbox_pb2.CreateSandboxRequest(name=name or "", options=opts)
        return self._call(self._sandboxes.CreateSandbox, req)

    def get_sandbox(self, name: str) -> "sandbox_pb2.Sandbox":
        """The sandbox, its options in effect, addresses and counters."""
        return self._call(self._sandboxes.GetSandbox, sandbox_pb2.GetSandboxRequest(name=name))

    def delete_sandbox(self, name: str) -> None:
        """Deletes the sandbox, its connections and its namespace."""
        self._call(self._sandboxes.DeleteSandbox, sandbox_pb2.DeleteSandboxRequest(name=name))

    def list_sandboxes(self) -> list:
        """All sandboxes (``tcplab.v1.Sandbox`` messages)."""
        return list(self._call(self._sandboxes.ListSandboxes, sandbox_pb2.ListSandboxesRequest()).sandboxes)

    def impair(
        self,
        sandbox: str,
        direction: str = "both",
        loss: float = 0.0,
        duplicate: float = 0.0,
        reorder: float = 0.0,
        corrupt: float = 0.0,
        delay: Optional[DurationLike] = None,
        jitter: Optional[DurationLike] = None,
        reorder_delay: Optional[DurationLike] = None,
        seed: int = 0,
    ) -> None:
        """Impairs datagrams one way (``"to_kernel"``, ``"to_engine"``) or ``"both"``.

        Probabilities are in [0, 1]; all zero removes the impairment.
        """
        imp = common_pb2.Impairment(loss=loss, duplicate=duplicate, reorder=reorder, corrupt=corrupt, seed=seed)
        if delay is not None:
            imp.delay.CopyFrom(_duration(delay))
        if jitter is not None:
            imp.jitter.CopyFrom(_duration(jitter))
        if reorder_delay is not None:
            imp.reorder_delay.CopyFrom(_duration(reorder_delay))
        try:
            d = _DIRECTIONS[direction] if isinstance(direction, str) else int(direction)
        except KeyError:
            raise ValueError(f'direction must be "to_kernel", "to_engine" or "both", got {direction!r}') from None
        req = sandbox_pb2.SetImpairmentRequest(sandbox=sandbox, direction=d, impairment=imp)
        self._call(self._sandboxes.SetImpairment, req)

    def watch(
        self,
        sandbox: str,
        from_sequence: int = 0,
        connection: Union[Conn, int, None] = None,
        kinds: Optional[Iterable[Union[str, int]]] = None,
        follow: bool = True,
        timeout: Optional[float] = None,
    ) -> Iterator["events_pb2.Event"]:
        """Yields the sandbox's events one by one, in order, from ``from_sequence`` on.

        Args:
            from_sequence: 0: the oldest retained; N: event N (a Gap first if it is gone); last seen + 1 to resume.
            connection: only this connection's events.
            kinds: only these kinds: ``"segment"``, ``"state"``, ``"timer"``, ``"app"``.
            follow: ``True``: go on with live events until the iterator is closed (or the
                sandbox is deleted: TcplabError NOT_FOUND); ``False``: stop after the events
                that exist when the call starts.
            timeout: give up after this many seconds (TcplabError DEADLINE_EXCEEDED).

        A subscriber that fell behind gets a Gap event (``ev.WhichOneof("body") == "gap"``).
        Closing the generator (``it.close()``, or leaving a ``for`` loop and dropping it)
        cancels the stream.
        """
        ks = []
        for k in kinds or ():
            if isinstance(k, str):
                try:
                    ks.append(_KINDS[k])
                except KeyError:
                    raise ValueError(f"unknown event kind {k!r}; one of {sorted(_KINDS)}") from None
            else:
                ks.append(int(k))
        req = sandbox_pb2.WatchEventsRequest(
            sandbox=sandbox,
            from_sequence=from_sequence,
            connection_id=_conn_id(connection),
            kinds=ks,
            no_follow=not follow,
        )
        call = self._sandboxes.WatchEvents(req, metadata=self._metadata, timeout=timeout)
        try:
            for resp in call:
                yield from resp.events
        except grpc.RpcError as e:
            raise TcplabError.from_rpc(e) from None
        finally:
            call.cancel()

    def events(self, sandbox: str, from_sequence: int = 0, **kw) -> list:
        """The events that exist now (``watch(..., follow=False)`` as a list)."""
        return list(self.watch(sandbox, from_sequence=from_sequence, follow=False, **kw))

    def pcap(self, sandbox: str) -> bytes:
        """The sandbox's packet capture so far: a pcap file (raw IPv4, nanosecond timestamps)."""
        call = self._sandboxes.ExportPcap(
            sandbox_pb2.ExportPcapRequest(sandbox=sandbox), metadata=self._metadata, timeout=self.timeout
        )
        try:
            return b"".join(chunk.data for chunk in call)
        except grpc.RpcError as e:
            raise TcplabError.from_rpc(e) from None

    # -- connections ------------------------------------------------------------------------

    def listen(self, sandbox: str, stack: StackLike, port: int, ip: Optional[str] = None, backlog: int = 0) -> Conn:
        """Listens on ``ip:port`` (ip ``None``: the stack's address, engine 198.18.0.2, kernel
        198.18.0.1). Incoming connections are accepted at once; find them with
        :meth:`wait_accepted` or :meth:`conns`."""
        req = connection_pb2.ListenRequest(
            sandbox=sandbox, stack=_stack(stack), local=common_pb2.Endpoint(ip=ip or "", port=port), backlog=backlog
        )
        return Conn.of(self._call(self._conns.Listen, req))

    def connect(
        self,
        sandbox: str,
        stack: StackLike,
        to: Union[str, tuple] = "198.18.0.1:80",
        local: Union[str, tuple, None] = None,
    ) -> Conn:
        """Opens a connection to ``to`` (``"ip:port"``); returns once the SYN is on its way
        (the call does not wait for the handshake: watch the states, or :meth:`wait_state`)."""
        req = connection_pb2.ConnectRequest(sandbox=sandbox, stack=_stack(stack), remote=_endpoint(to))
        if local is not None:
            req.local.CopyFrom(_endpoint(local))
        return Conn.of(self._call(self._conns.Connect, req))

    def send(self, conn: Conn, data: bytes, timeout: Optional[float] = None) -> int:
        """Sends all of ``data``, like a blocking send(2): calls Send until every octet is
        accepted into the send buffer, waiting while the buffer is full. Returns ``len(data)``.
        Raises TcplabError DEADLINE_EXCEEDED if that takes longer than ``timeout`` seconds."""
        view = memoryview(bytes(data))
        off = 0
        nap = 0.001
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while off < len(view):
            req = connection_pb2.SendRequest(
                sandbox=conn.sandbox,
                connection_id=conn.id,
                stack=_stack(conn.stack),
                data=bytes(view[off : off + MAX_SEND_CHUNK]),
            )
            accepted = self._call(self._conns.Send, req).accepted
            off += accepted
            if accepted:
                nap = 0.001
                continue
            if time.monotonic() >= deadline:
                raise TcplabError(
                    grpc.StatusCode.DEADLINE_EXCEEDED, f"send on {conn}: {off} of {len(view)} octets accepted"
                )
            time.sleep(nap)
            nap = min(nap * 2, 0.05)
        return off

    def recv(self, conn: Conn, max: int = 65536, wait: Optional[DurationLike] = None) -> Received:
        """Reads up to ``max`` octets. With ``wait``, waits that long (at most 60 s) for data
        or end of stream when there is none yet. Returns ``Received(data, eof)``; empty data
        without eof means nothing arrived in time."""
        req = connection_pb2.ReceiveRequest(
            sandbox=conn.sandbox, connection_id=conn.id, stack=_stack(conn.stack), max_bytes=max
        )
        t = None
        if wait is not None:
            req.wait.CopyFrom(_duration(wait))
            t = self.timeout + (wait.total_seconds() if isinstance(wait, timedelta) else float(wait))
        resp = self._call(self._conns.Receive, req, timeout=t)
        return Received(resp.data, resp.eof)

    def recv_exactly(self, conn: Conn, n: int, timeout: float = 10.0) -> bytes:
        """Reads until ``n`` octets arrived (TcplabError DEADLINE_EXCEEDED after ``timeout``
        seconds, OUT_OF_RANGE at end of stream before that)."""
        out = bytearray()
        deadline = time.monotonic() + timeout
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TcplabError(grpc.StatusCode.DEADLINE_EXCEEDED, f"recv on {conn}: {len(out)} of {n} octets")
            got = self.recv(conn, max=min(n - len(out), 4 << 20), wait=min(left, 60.0))
            out += got.data
            if got.eof and len(out) < n:
                raise TcplabError(grpc.StatusCode.OUT_OF_RANGE, f"recv on {conn}: end of stream after {len(out)} octets")
        return bytes(out)

    def _conn_call(self, method, conn: Conn) -> "connection_pb2.Connection":
        req = connection_pb2.ConnectionRequest(sandbox=conn.sandbox, connection_id=conn.id, stack=_stack(conn.stack))
        return self._call(method, req)

    def shutdown(self, conn: Conn) -> "connection_pb2.Connection":
        """Half-close: a FIN after the queued data; the connection can still receive."""
        return self._conn_call(self._conns.Shutdown, conn)

    def close(self, conn: Conn) -> "connection_pb2.Connection":
        """close(2): FIN after the queued data (closing a listener stops listening)."""
        return self._conn_call(self._conns.Close, conn)

    def abort(self, conn: Conn) -> "connection_pb2.Connection":
        """Reset the connection now (RST)."""
        return self._conn_call(self._conns.Abort, conn)

    def get(self, conn: Conn) -> "connection_pb2.Connection":
        """The connection now: state, endpoints, and the TCB (engine) or TCP_INFO (kernel)."""
        return self._conn_call(self._conns.GetConnection, conn)

    def conns(self, sandbox: str) -> list:
        """Every connection and listener of both stacks (``tcplab.v1.Connection`` messages)."""
        return list(
            self._call(self._conns.ListConnections, connection_pb2.ListConnectionsRequest(sandbox=sandbox)).connections
        )

    def wait_accepted(self, listener: Conn, timeout: float = 5.0, skip: Sequence[Conn] = ()) -> Conn:
        """Waits for a connection accepted by ``listener`` (same stack, its local port) other
        than those in ``skip``, and returns the oldest one."""
        lst = self.get(listener)
        skip_ids = {c.id for c in skip}
        deadline = time.monotonic() + timeout
        while True:
            for c in sorted(self.conns(listener.sandbox), key=lambda c: c.id):
                if (
                    not c.listener
                    and c.stack == lst.stack
                    and c.local.port == lst.local.port
                    and c.id > lst.id
                    and c.id not in skip_ids
                    and (lst.local.ip in ("", "0.0.0.0") or c.local.ip == lst.local.ip)
                ):
                    return Conn.of(c)
            if time.monotonic() >= deadline:
                raise TcplabError(grpc.StatusCode.DEADLINE_EXCEEDED, f"nothing accepted on {listener} in {timeout}s")
            time.sleep(0.01)

    def wait_state(self, conn: Conn, state: Union[int, str], timeout: float = 5.0) -> "connection_pb2.Connection":
        """Polls until the connection is in ``state`` (a ``TcpState`` or its RFC name,
        ``"ESTABLISHED"``); returns it. A connection the server has forgotten (NOT_FOUND: it
        closed, and its sandbox has closed 256 more since) counts as ``CLOSED``."""
        from .format import state_name

        want = state if isinstance(state, str) else state_name(state)
        deadline = time.monotonic() + timeout
        while True:
            try:
                c = self.get(conn)
            except TcplabError as e:
                if e.code != grpc.StatusCode.NOT_FOUND or want != "CLOSED":
                    raise
                return connection_pb2.Connection(
                    sandbox=conn.sandbox, id=conn.id, stack=_stack(conn.stack), state=common_pb2.TCP_STATE_CLOSED
                )
            if state_name(c.state) == want:
                return c
            if time.monotonic() >= deadline:
                raise TcplabError(
                    grpc.StatusCode.DEADLINE_EXCEEDED, f"{conn} is {state_name(c.state)}, not {want}, after {timeout}s"
                )
            time.sleep(0.01)

    # -- grading ----------------------------------------------------------------------------

    def grade(
        self,
        scripts: Iterable[ScriptLike],
        target: Union[str, int] = "engine",
        student: Optional[str] = None,
        dut: Optional[str] = None,
        tolerance_usecs: int = 0,
        timeout: Optional[float] = None,
    ) -> GradeRun:
        """Runs grading scripts on the server as one stored run (GradingService.RunSuite) and
        returns a :class:`GradeRun` that yields each script's ``ScriptResult`` as it finishes.

        >>> run = c.grade(["tests/scripts/lifecycle/close_active.pkt"], "kernel", student="s042")
        >>> for r in run:
        ...     print("PASS" if r.passed else "FAIL", r.name)
        >>> run.summary.id, run.summary.failed

        Args:
            scripts: paths (read here, as UTF-8; the path as given names the result),
                ``(name, text)`` pairs, or ``tcplab.v1.Script`` messages.
            target: ``"engine"`` (in process, virtual time), ``"kernel"`` (Linux in a fresh
                namespace; the server must run as root) or ``"dut"`` (with ``dut``).
            student: whose implementation is graded (kept with the run, for gradebooks).
            dut: with ``target="dut"``: the name the DUT attached with.
            tolerance_usecs: packetdrill's --tolerance_usecs for every script; 0: each
                script's own.
            timeout: give up after this many seconds (default: none; a kernel run takes
                real time).
        """
        try:
            t = _TARGETS[target.lower()] if isinstance(target, str) else int(target)
        except KeyError:
            raise ValueError(f'target must be "engine", "kernel" or "dut", got {target!r}') from None
        req = grading_pb2.RunSuiteRequest(
            scripts=[_script(s) for s in scripts],
            target=t,
            student=student or "",
            dut=dut or "",
            tolerance_usecs=tolerance_usecs,
        )
        return GradeRun(self._grading.RunSuite(req, metadata=self._metadata, timeout=timeout))

    def list_runs(self, student: Optional[str] = None, with_results: bool = False, limit: int = 0) -> list:
        """Stored grading runs (``tcplab.v1.GradingRun``), newest first; ``limit`` 0: 100."""
        req = grading_pb2.ListRunsRequest(student=student or "", with_results=with_results, limit=limit)
        return list(self._call(self._grading.ListRuns, req).runs)

    def get_run(self, run_id: int) -> "grading_pb2.GradingRun":
        """One stored run with every script's result."""
        return self._call(self._grading.GetRun, grading_pb2.GetRunRequest(id=run_id))

    # -- devices under test -----------------------------------------------------------------

    def list_duts(self) -> list:
        """The DUTs attached now (``tcplab.v1.AttachedDut``: name, description, peer, busy).
        A DUT attaches itself (DutService.AttachDut): see examples/student_dut.py."""
        return list(self._call(self._duts.ListDuts, dut_pb2.ListDutsRequest()).duts)
