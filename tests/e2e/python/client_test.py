#!/usr/bin/python3
"""End-to-end tests of the Python client (client/python) against the real tcplabd.

    /usr/bin/python3 tests/e2e/python/client_test.py --tcplabd build/bin/tcplabd [-v] [TestClass ...]

tcplabd comes from --tcplabd, else $TCPLABD, else build/bin/tcplabd. The stubs come from
$TCPLAB_PY_STUBS (else build/python), as for the client itself. Every test class that needs a
server starts its own tcplabd (--listen 127.0.0.1:0, its address read from --ready_file) and
stops it by its PID with SIGTERM, also when a test fails; tcplabd also gets SIGTERM if this
script dies (PR_SET_PDEATHSIG). Tests that need the tun backend skip when not root.

Exit status: 0 all passed, 1 a failure, 77 every test that ran was skipped (CTest
SKIP_RETURN_CODE).
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from concurrent import futures
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "client" / "python"))

import grpc  # noqa: E402

from tcplab_client import Client, Conn, TcplabError, format_event, format_failure, pb, state_name  # noqa: E402

WALKTHROUGH = REPO / "client" / "python" / "examples" / "walkthrough.py"
PYTHON = "/usr/bin/python3"  # Debian's, with grpcio; a pyenv python3 on PATH has none
TCPLABD: str = ""  # set in main()
IS_ROOT = os.geteuid() == 0

# ---------------------------------------------------------------------------------------------
# tcplabd processes this script started, by PID; stopped with SIGTERM (SIGKILL if it hangs).

_started: dict[int, subprocess.Popen] = {}
_started_lock = threading.Lock()


def _pdeathsig() -> None:
    # prctl(PR_SET_PDEATHSIG, SIGTERM): the child is told when this script dies, however it dies.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM, 0, 0, 0)


class Tcplabd:
    """One tcplabd on a free loopback port with its own data directory."""

    def __init__(self, backend: str | None = None, extra: list[str] | None = None):
        self.dir = tempfile.mkdtemp(prefix="tcplab-pytest-")
        ready = os.path.join(self.dir, "ready")
        self.log_path = os.path.join(self.dir, "tcplabd.log")
        args = [TCPLABD, "--listen", "127.0.0.1:0", "--ready_file", ready, "--data_dir", os.path.join(self.dir, "data")]
        if backend:
            args += ["--backend", backend]
        args += extra or []
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, preexec_fn=_pdeathsig)
        with _started_lock:
            _started[self.proc.pid] = self.proc
        self.address = ""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"tcplabd exited with {self.proc.returncode}:\n{self.log()}")
            if os.path.exists(ready):
                with open(ready) as f:
                    lines = f.read().split()
                if lines:
                    self.address = lines[0]
                    return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"tcplabd wrote no ready file in 20s:\n{self.log()}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def stop(self, keep_log: bool = False) -> int | None:
        """SIGTERM to our PID, then wait; SIGKILL after 15 s. Returns the exit status. The
        directory (log, data) goes too unless keep_log; then remove_dir() removes it."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        with _started_lock:
            _started.pop(self.proc.pid, None)
        self._log.close()
        if not keep_log:
            self.remove_dir()
        return self.proc.returncode

    def remove_dir(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _stop_all(signum=None, frame=None) -> None:
    with _started_lock:
        procs = list(_started.values())
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
    if signum is not None:
        os._exit(128 + signum)


def namespaces_of(pid: int) -> list[str]:
    """The network namespaces a tcplabd with this PID made (tcplab-<pid>-<n>)."""
    try:
        return [n for n in os.listdir("/run/netns") if n.startswith(f"tcplab-{pid}-")]
    except FileNotFoundError:
        return []


class ServerTestCase(unittest.TestCase):
    """A test class with its own tcplabd, started once for the class and always stopped."""

    backend: str | None = None  # tcplabd --backend; None: virtual unless root (then auto)
    server: Tcplabd
    client: Client

    @classmethod
    def setUpClass(cls) -> None:
        backend = cls.backend or (None if IS_ROOT else "virtual")
        cls.server = Tcplabd(backend=backend)
        cls.addClassCleanup(cls._stop_server)
        cls.client = Client(cls.server.address, timeout=20)
        cls.client.wait_ready(10)

    @classmethod
    def _stop_server(cls) -> None:
        cls.client_close()
        pid = cls.server.pid
        rc = cls.server.stop(keep_log=True)
        log = cls.server.log()
        cls.server.remove_dir()
        left = namespaces_of(pid)
        if rc != 0 or left:
            raise AssertionError(f"tcplabd {pid} stopped with {rc}, namespaces left: {left}; its log:\n{log}")

    @classmethod
    def client_close(cls) -> None:
        if getattr(cls, "client", None) is not None:
            cls.client.close_channel()

    def new_sandbox(self, **kw) -> str:
        kw.setdefault("backend", "virtual")
        name = self.client.create_sandbox(**kw).name
        self.addCleanup(self._delete_quietly, name)
        return name

    def _delete_quietly(self, name: str) -> None:
        try:
            self.client.delete_sandbox(name)
        except TcplabError as e:
            if e.code == grpc.StatusCode.NOT_FOUND:
                return
            if self.server.proc.poll() is not None:
                return  # tcplabd is gone; tearDownClass reports how it ended
            raise

    def pair(self, sb: str, port: int = 8080) -> tuple[Conn, Conn]:
        """An established engine-to-engine connection in `sb`: (client side, server side)."""
        lst = self.client.listen(sb, "engine", port, ip="198.18.0.2")
        cli = self.client.connect(sb, "engine", to=f"198.18.0.2:{port}")
        self.client.wait_state(cli, "ESTABLISHED")
        srv = self.client.wait_accepted(lst, skip=[cli])
        self.client.wait_state(srv, "ESTABLISHED")
        return cli, srv


# ---------------------------------------------------------------------------------------------
# The client alone, against an in-process fake server: metadata in, errors out.


class _FakeSandboxService(pb.sandbox_pb2_grpc.SandboxServiceServicer):
    def __init__(self) -> None:
        self.metadata: list[tuple[str, str]] = []

    def ListSandboxes(self, request, context):
        self.metadata = list(context.invocation_metadata())
        return pb.sandbox_pb2.ListSandboxesResponse(sandboxes=[pb.sandbox_pb2.Sandbox(name="lab7")])

    def GetSandbox(self, request, context):
        context.set_trailing_metadata((("tcplab-errno", "ECONNRESET"),))
        context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"connection {request.name}/3 is in TIME-WAIT")


class ClientUnitTest(unittest.TestCase):
    """Client behaviour that needs no tcplabd: token metadata, error mapping, helpers."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.service = _FakeSandboxService()
        cls.grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        pb.sandbox_pb2_grpc.add_SandboxServiceServicer_to_server(cls.service, cls.grpc_server)
        cls.port = cls.grpc_server.add_insecure_port("127.0.0.1:0")
        cls.grpc_server.start()
        cls.addClassCleanup(cls.grpc_server.stop, None)

    def test_token_is_sent_as_bearer_authorization(self) -> None:
        with Client(f"127.0.0.1:{self.port}", token="s3cret") as c:
            self.assertEqual([s.name for s in c.list_sandboxes()], ["lab7"])
        self.assertIn(("authorization", "Bearer s3cret"), self.service.metadata)

    def test_no_token_no_authorization(self) -> None:
        with Client(f"127.0.0.1:{self.port}") as c:
            c.list_sandboxes()
        self.assertNotIn("authorization", [k for k, _ in self.service.metadata])

    def test_errno_from_trailing_metadata(self) -> None:
        with Client(f"127.0.0.1:{self.port}") as c:
            with self.assertRaises(TcplabError) as cm:
                c.get_sandbox("lab1")
        e = cm.exception
        self.assertEqual(e.code, grpc.StatusCode.FAILED_PRECONDITION)
        self.assertEqual(e.message, "connection lab1/3 is in TIME-WAIT")
        self.assertEqual(e.errno, "ECONNRESET")
        self.assertEqual(str(e), "FAILED_PRECONDITION: connection lab1/3 is in TIME-WAIT (ECONNRESET)")

    def test_unreachable_server_is_unavailable(self) -> None:
        with Client("127.0.0.1:1", timeout=5) as c:
            with self.assertRaises(TcplabError) as cm:
                c.list_sandboxes()
        self.assertEqual(cm.exception.code, grpc.StatusCode.UNAVAILABLE)

    def test_helpers(self) -> None:
        cp = pb.common_pb2
        self.assertEqual(state_name(cp.TCP_STATE_TIME_WAIT), "TIME-WAIT")
        self.assertEqual(state_name(cp.TCP_STATE_SYN_RECEIVED), "SYN-RECEIVED")
        self.assertEqual(state_name(cp.TCP_STATE_FIN_WAIT_2), "FIN-WAIT-2")
        self.assertEqual(state_name(cp.TCP_STATE_CLOSE_WAIT), "CLOSE-WAIT")
        self.assertEqual(str(Conn("lab1", 3, "kernel")), "lab1/3")
        ev = pb.events_pb2.Event(sequence=4, stack=cp.STACK_ENGINE, connection_id=2)
        seg = ev.segment
        seg.direction = pb.events_pb2.SegmentEvent.DIRECTION_IN
        seg.src.ip, seg.src.port, seg.dst.ip, seg.dst.port = "198.18.0.1", 80, "198.18.0.2", 40000
        seg.flags, seg.relative_seq, seg.relative_ack, seg.window = 0x12, 0, 1, 65160
        seg.verdict, seg.checksum_ok = pb.events_pb2.VERDICT_ACCEPTED, True
        line = format_event(ev)
        self.assertIn("engine conn 2", line)
        self.assertIn("IN  198.18.0.1:80 > 198.18.0.2:40000 SYN+ACK seq=0 ack=1 win=65160 len=0 [accepted]", line)
        st = pb.events_pb2.Event(sequence=5, stack=cp.STACK_KERNEL, connection_id=3)
        setattr(st.state, "from", cp.TCP_STATE_FIN_WAIT_2)
        st.state.to, st.state.cause = cp.TCP_STATE_TIME_WAIT, "FIN received"
        self.assertRegex(format_event(st), r"kernel conn 3 +state FIN-WAIT-2 -> TIME-WAIT \(FIN received\)$")

    def test_bad_arguments_fail_before_the_call(self) -> None:
        with Client(f"127.0.0.1:{self.port}") as c:
            with self.assertRaises(ValueError):
                c.listen("lab1", "quic", 80)
            with self.assertRaises(ValueError):
                c.connect("lab1", "engine", to="no-port")
            with self.assertRaises(ValueError):
                c.create_sandbox(backend="docker")


# ---------------------------------------------------------------------------------------------
# Against tcplabd.


class ErrorTest(ServerTestCase):
    """Server errors arrive as TcplabError with the server's code, message and errno."""

    def assertFails(self, code: grpc.StatusCode, fn, *args, **kw) -> TcplabError:
        with self.assertRaises(TcplabError) as cm:
            fn(*args, **kw)
        self.assertEqual(cm.exception.code, code, str(cm.exception))
        return cm.exception

    def test_unknown_sandbox_is_not_found(self) -> None:
        c = self.client
        e = self.assertFails(grpc.StatusCode.NOT_FOUND, c.get_sandbox, "no-such-lab")
        self.assertIn("no-such-lab", e.message)
        self.assertFails(grpc.StatusCode.NOT_FOUND, c.delete_sandbox, "no-such-lab")
        self.assertFails(grpc.StatusCode.NOT_FOUND, c.listen, "no-such-lab", "engine", 80)
        self.assertFails(grpc.StatusCode.NOT_FOUND, c.conns, "no-such-lab")
        self.assertFails(grpc.StatusCode.NOT_FOUND, c.pcap, "no-such-lab")
        self.assertFails(grpc.StatusCode.NOT_FOUND, c.events, "no-such-lab")

    def test_unknown_connection_is_not_found(self) -> None:
        sb = self.new_sandbox()
        e = self.assertFails(grpc.StatusCode.NOT_FOUND, self.client.get, Conn(sb, 4242))
        self.assertIn(f"{sb}/4242", e.message)

    def test_bad_ip_is_invalid_argument(self) -> None:
        sb = self.new_sandbox()
        e = self.assertFails(grpc.StatusCode.INVALID_ARGUMENT, self.client.connect, sb, "engine", to="198.18.0.300:80")
        self.assertIn("remote", e.message)  # names the field
        e = self.assertFails(grpc.StatusCode.INVALID_ARGUMENT, self.client.listen, sb, "engine", 80, ip="not-an-ip")
        self.assertIn("local", e.message)

    def test_bad_options_are_invalid_argument(self) -> None:
        self.assertFails(grpc.StatusCode.INVALID_ARGUMENT, self.client.create_sandbox, name="Bad_Name")
        sb = self.new_sandbox()
        self.assertFails(grpc.StatusCode.INVALID_ARGUMENT, self.client.impair, sb, loss=2.0)

    def test_refused_connect_carries_errno(self) -> None:
        sb = self.new_sandbox()
        conn = self.client.connect(sb, "engine", to="198.18.0.2:81")  # nobody listens: RST
        self.client.wait_state(conn, "CLOSED")
        with self.assertRaises(TcplabError) as cm:
            self.client.send(conn, b"x")
        e = cm.exception
        self.assertEqual(e.errno, "ECONNREFUSED", str(e))
        self.assertNotEqual(e.code, grpc.StatusCode.OK)


class VirtualClientTest(ServerTestCase):
    """Sandboxes and connections through the client, in virtual sandboxes (no root)."""

    def test_send_recv_round_trip(self) -> None:
        c = self.client
        sb = self.new_sandbox(msl=0.2)
        cli, srv = self.pair(sb)
        self.assertEqual(str(cli), f"{sb}/{cli.id}")
        self.assertEqual(cli.stack, "engine")
        request = os.urandom(300_000)  # more than the 256 KiB send buffer: send() must loop
        sender = threading.Thread(target=c.send, args=(cli, request))
        sender.start()
        got = c.recv_exactly(srv, len(request), timeout=30)
        sender.join(30)
        self.assertEqual(got, request)
        # Half-close: the client's FIN; the server reads EOF and can still answer.
        c.shutdown(cli)
        r = c.recv(srv, wait=5)
        self.assertEqual((r.data, r.eof), (b"", True))
        self.assertEqual(state_name(c.get(srv).state), "CLOSE-WAIT")
        c.send(srv, b"still talking")
        self.assertEqual(c.recv_exactly(cli, 13), b"still talking")
        c.close(srv)
        r = c.recv(cli, wait=5)
        self.assertTrue(r.eof)
        info = c.wait_state(cli, "TIME-WAIT")
        self.assertEqual(info.engine.counters.bytes_out, len(request))
        self.assertEqual(len(info.engine.timers), 1, info.engine.timers)  # 2*MSL (server names it "2MSL")
        c.wait_state(cli, "CLOSED", timeout=5)

    def test_sandbox_lifecycle(self) -> None:
        c = self.client
        sb = c.create_sandbox(name="py-life", backend="virtual", msl=0.25, mtu=1400)
        try:
            self.assertEqual(sb.name, "py-life")
            self.assertAlmostEqual(sb.options.msl.ToTimedelta().total_seconds(), 0.25)
            self.assertEqual(sb.options.mtu, 1400)
            self.assertIn("py-life", [s.name for s in c.list_sandboxes()])
            e = None
            try:
                c.create_sandbox(name="py-life", backend="virtual")
            except TcplabError as err:
                e = err
            self.assertIsNotNone(e)
            self.assertEqual(e.code, grpc.StatusCode.ALREADY_EXISTS)
        finally:
            c.delete_sandbox("py-life")
        self.assertNotIn("py-life", [s.name for s in c.list_sandboxes()])

    def test_conns_get_abort_and_pcap(self) -> None:
        c = self.client
        sb = self.new_sandbox()
        cli, srv = self.pair(sb, port=9000)
        listed = {x.id: x for x in c.conns(sb)}
        self.assertTrue({cli.id, srv.id} <= set(listed))
        self.assertTrue(any(x.listener and x.local.port == 9000 for x in listed.values()))
        snap = c.get(cli)
        self.assertEqual(state_name(snap.state), "ESTABLISHED")
        self.assertEqual(snap.WhichOneof("info"), "engine")
        self.assertEqual(snap.remote.port, 9000)
        c.abort(cli)
        with self.assertRaises(TcplabError) as cm:
            c.recv_exactly(srv, 1, timeout=5)
        self.assertEqual(cm.exception.errno, "ECONNRESET", str(cm.exception))
        cap = c.pcap(sb)
        self.assertGreater(len(cap), 24)
        self.assertIn(cap[:4], (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"))  # nanosecond pcap

    def test_impairment_is_applied(self) -> None:
        c = self.client
        sb = self.new_sandbox()
        cli, srv = self.pair(sb)
        c.impair(sb, direction="both", loss=0.2, seed=7)
        data = os.urandom(50_000)
        c.send(cli, data)
        self.assertEqual(c.recv_exactly(srv, len(data), timeout=60), data)
        c.impair(sb)  # all zero: pass through
        verdicts = [ev.segment.verdict for ev in c.events(sb, kinds=["segment"])]
        self.assertIn(pb.events_pb2.VERDICT_RETRANSMITTED, verdicts)


class WatchTest(ServerTestCase):
    """watch(): flattening, filters, resuming from a sequence number without duplicates."""

    def test_resume_without_duplicates(self) -> None:
        c = self.client
        sb = self.new_sandbox(msl=0.2)
        cli, srv = self.pair(sb)
        first = c.events(sb)
        seqs = [e.sequence for e in first]
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)))
        # Resuming from the middle gives exactly the rest.
        k = len(seqs) // 2
        rest = c.events(sb, from_sequence=seqs[k - 1] + 1)
        self.assertEqual([e.sequence for e in rest], seqs[k:])
        self.assertEqual(rest[0], first[k])

        # Follow live events, stop part way, resume from the last seen + 1: nothing twice,
        # nothing missing.
        seen: list[int] = []
        it = c.watch(sb, from_sequence=seqs[-1] + 1, timeout=30)
        c.send(cli, b"ping")
        while True:
            ev = next(it)
            seen.append(ev.sequence)
            if ev.WhichOneof("body") == "app" and ev.app.call.startswith("send"):
                break
        it.close()  # cancels the stream
        c.recv_exactly(srv, 4)
        c.send(srv, b"pong")
        c.recv_exactly(cli, 4)
        c.close(cli)
        c.close(srv)
        c.wait_state(cli, "CLOSED", timeout=5)
        resumed = [e.sequence for e in c.events(sb, from_sequence=seen[-1] + 1)]
        all_seqs = seqs + seen + resumed
        self.assertEqual(all_seqs, list(range(1, len(all_seqs) + 1)))
        self.assertEqual(len(set(all_seqs)), len(all_seqs))
        self.assertEqual(all_seqs[-1], c.get_sandbox(sb).counters.events)

    def test_filters(self) -> None:
        c = self.client
        sb = self.new_sandbox()
        cli, srv = self.pair(sb)
        states = c.events(sb, kinds=["state"])
        self.assertTrue(states)
        self.assertTrue(all(e.WhichOneof("body") == "state" for e in states))
        mine = c.events(sb, connection=cli)
        self.assertTrue(mine)
        self.assertTrue(all(e.connection_id == cli.id for e in mine))
        segs = c.events(sb, connection=cli, kinds=["segment", "timer"])
        self.assertTrue(all(e.WhichOneof("body") in ("segment", "timer") for e in segs))
        syn = [e for e in segs if e.WhichOneof("body") == "segment" and e.segment.flags == 0x02]
        self.assertEqual(len(syn), 1)
        self.assertEqual(syn[0].segment.relative_seq, 0)


class WatchDeleteTest(ServerTestCase):
    """A following watch ends with NOT_FOUND when its sandbox is deleted, and tcplabd lives on.

    Repeated because the server side is a race (the last reference to a deleted sandbox may
    be dropped by the event hub's own thread); one round catches it only now and then.
    """

    ROUNDS = 20

    def test_follow_ends_when_sandbox_is_deleted(self) -> None:
        for i in range(self.ROUNDS):
            self._one_round(i, with_events=i % 2 == 0)

    def _one_round(self, i: int, with_events: bool) -> None:
        c = self.client
        sb = self.new_sandbox()
        if with_events:
            c.listen(sb, "engine", 80)  # events 1 and 2, there before the watch starts
        it = c.watch(sb, timeout=20)
        got: list = []
        err: list = []

        def consume() -> None:
            try:
                for ev in it:
                    got.append(ev)
            except TcplabError as e:
                err.append(e)

        t = threading.Thread(target=consume)
        t.start()
        if with_events:
            deadline = time.monotonic() + 5
            while len(got) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            self.assertEqual(
                [e.sequence for e in got],
                [1, 2],
                f"round {i}: watch of {sb} ({err}); tcplabd exit status {self.server.proc.poll()}:\n{self.server.log()}",
            )
        else:
            time.sleep(0.1)  # the stream is open and idle
        c.delete_sandbox(sb)
        t.join(15)
        self.assertFalse(t.is_alive())
        self.assertEqual(len(err), 1, got)
        self.assertEqual(err[0].code, grpc.StatusCode.NOT_FOUND, str(err[0]))
        self.assertIn("deleted", err[0].message)
        time.sleep(0.1)  # a crash in the hub's thread shows within this
        self.assertIsNone(
            self.server.proc.poll(), f"round {i}: tcplabd died after deleting {sb} under a watch:\n{self.server.log()}"
        )


# ---------------------------------------------------------------------------------------------
# The walkthrough example as a user runs it.


def _times(out: str, pattern: str) -> list[float]:
    return [float(m.group(1)) for m in re.finditer(r"\+(\d+\.\d+)s .*" + pattern, out)]


class WalkthroughChecks:
    """Runs walkthrough.py against the class's tcplabd and checks what it prints."""

    client: Client
    server: Tcplabd
    walk_backend = "virtual"
    peer = "engine"

    def run_walkthrough(self, *extra: str) -> subprocess.CompletedProcess:
        env = dict(os.environ)
        p = subprocess.run(
            [PYTHON, str(WALKTHROUGH), "--server", self.server.address, *extra],
            capture_output=True,
            text=True,
            timeout=90,
            env=env,
        )
        return p

    def test_walkthrough(self) -> None:
        msl = 0.4
        p = self.run_walkthrough("--backend", self.walk_backend, "--msl", str(msl))
        out = p.stdout
        self.assertEqual(p.returncode, 0, f"stdout:\n{out}\nstderr:\n{p.stderr}")
        # The handshake, relative numbers as in the lesson: SYN seq=x; SYN+ACK seq=y ack=x+1; ACK ack=y+1.
        self.assertRegex(out, r"engine conn \d+ +OUT 198\.18\.0\.2:\d+ > 198\.18\.0\.\d:80 SYN seq=0 win=")
        self.assertRegex(out, r"IN  198\.18\.0\.\d:80 > 198\.18\.0\.2:\d+ SYN\+ACK seq=0 ack=1 ")
        self.assertRegex(out, r"OUT 198\.18\.0\.2:\d+ > 198\.18\.0\.\d:80 ACK seq=1 ack=1 ")
        self.assertRegex(out, r"PSH\+ACK seq=1 ack=1 win=\d+ len=5 'hello'")
        # With no data from the server, the client's FIN carries seq x+1+5 (the RFC, not the lesson).
        self.assertRegex(out, r"OUT 198\.18\.0\.2:\d+ > 198\.18\.0\.\d:80 FIN\+ACK seq=6 ack=1 ")
        self.assertRegex(out, r"IN  198\.18\.0\.\d:80 > 198\.18\.0\.2:\d+ FIN\+ACK seq=1 ack=7 ")
        self.assertRegex(out, r"OUT 198\.18\.0\.2:\d+ > 198\.18\.0\.\d:80 ACK seq=7 ack=2 ")
        # Both sides' states, with causes, in the printed stream and the per-connection paths.
        self.assertRegex(out, r"engine conn \d+ +state SYN-SENT -> ESTABLISHED \(.+\)")
        self.assertRegex(out, rf"{self.peer} conn \d+ +state .*-> SYN-RECEIVED")
        self.assertRegex(out, rf"{self.peer} conn \d+ +state ESTABLISHED -> CLOSE-WAIT")
        self.assertRegex(
            out,
            r"engine \S+/\d+: CLOSED -> SYN-SENT -> ESTABLISHED -> FIN-WAIT-1 -> FIN-WAIT-2 -> TIME-WAIT -> CLOSED",
        )
        self.assertRegex(out, rf"{self.peer} \S+/\d+: .*ESTABLISHED -> CLOSE-WAIT -> LAST-ACK -> CLOSED")
        self.assertIn("timer time-wait (2*MSL) started", out)
        # TIME-WAIT lasts 2*MSL by the sandbox's clock.
        entered = _times(out, r"state FIN-WAIT-2 -> TIME-WAIT")
        left = _times(out, r"state TIME-WAIT -> CLOSED")
        self.assertEqual((len(entered), len(left)), (1, 1), out)
        self.assertAlmostEqual(left[0] - entered[0], 2 * msl, delta=0.1)
        # The event stream is in order.
        seqs = [int(s) for s in re.findall(r"^  #(\d+) ", out, re.M)]
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)))
        self.assertIn("life cycle complete", out)
        self.assertRegex(out, r"sandbox \S+ deleted")
        # The example cleans up after itself.
        self.assertEqual(self.client.list_sandboxes(), [])

    def test_walkthrough_fails_without_server(self) -> None:
        p = subprocess.run(
            [PYTHON, str(WALKTHROUGH), "--server", "127.0.0.1:1", "--wait", "0.5"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("UNAVAILABLE", p.stderr)


class WalkthroughVirtualTest(WalkthroughChecks, ServerTestCase):
    """walkthrough.py --backend virtual: engine to engine, no root needed."""

    walk_backend = "virtual"
    peer = "engine"


class WalkthroughTunTest(WalkthroughChecks, ServerTestCase):
    """walkthrough.py --backend tun: the engine against the Linux kernel (root only)."""

    walk_backend = "tun"
    peer = "kernel"
    backend = "tun"

    @classmethod
    def setUpClass(cls) -> None:
        if not IS_ROOT:
            raise unittest.SkipTest("the tun backend needs root (network namespaces and a TUN device)")
        super().setUpClass()

    def test_walkthrough_default_backend_is_tun(self) -> None:
        p = self.run_walkthrough("--msl", "0.2")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("backend tun", p.stdout)
        self.assertRegex(p.stdout, r"kernel conn \d+ +state CLOSED -> LISTEN")

    def test_namespaces_removed_with_sandbox(self) -> None:
        sb = self.client.create_sandbox(backend="tun", msl=0.2)
        self.assertIn(sb.netns, namespaces_of(self.server.pid))
        self.client.delete_sandbox(sb.name)
        self.assertNotIn(sb.netns, namespaces_of(self.server.pid))


# ---------------------------------------------------------------------------------------------
# Grading: Client.grade() runs scripts on the server and yields each result as it comes.

LIFECYCLE = [
    REPO / "tests" / "scripts" / "lifecycle" / n
    for n in ("close_active.pkt", "close_passive.pkt", "handshake_active.pkt", "handshake_passive.pkt")
]
# handshake_passive.pkt with the SYN+ACK (line 7) acknowledging 2 instead of 1: must fail on ack.
WRONG_SCRIPT = """--tolerance_usecs=10000
0    socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0   setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0   bind(3, ..., ...) = 0
+0   listen(3, 1) = 0
+0   < S 0:0(0) win 65535 <mss 1460>
+0   > S. 0:0(0) ack 2 <mss 1460>
+.1  < . 1:1(0) ack 1 win 65535
+0   accept(3, ..., ...) = 4
"""


class GradingTest(ServerTestCase):
    """Client.grade / list_runs / get_run against tcplabd's GradingService."""

    def grade_lifecycle(self, target: str, student: str) -> None:
        run = self.client.grade([str(p) for p in LIFECYCLE], target, student=student)
        names = []
        for i, r in enumerate(run, 1):
            self.assertTrue(r.passed, format_failure(r, target))
            self.assertEqual(run.done, i)
            self.assertEqual(run.total, 4)
            names.append(r.name)
        self.assertEqual(names, [str(p) for p in LIFECYCLE])
        self.assertIsNotNone(run.summary)
        self.assertTrue(run.passed)
        s = run.summary
        self.assertEqual((s.passed, s.failed, s.total, s.student), (4, 0, 4, student))
        self.assertEqual(s.state, pb.grading_pb2.RUN_STATE_DONE)
        stored = self.client.get_run(s.id)
        self.assertEqual([r.name for r in stored.results], names)

    def test_engine_lifecycle_passes(self) -> None:
        self.grade_lifecycle("engine", "py-engine")

    def test_kernel_lifecycle_passes(self) -> None:
        if not IS_ROOT:
            self.skipTest("the kernel target needs root (a network namespace and a TUN per script)")
        self.grade_lifecycle("kernel", "py-kernel")

    def test_failure_has_the_field_diff_and_the_cli_report(self) -> None:
        run = self.client.grade([("wrong/synack_ack2.pkt", WRONG_SCRIPT)], "engine", student="py-wrong")
        results = list(run)
        self.assertEqual(len(results), 1)
        r = results[0]
        self.assertFalse(r.passed)
        self.assertEqual(r.line, 7)
        self.assertTrue(r.error.startswith("wrong/synack_ack2.pkt:7: "), r.error)
        self.assertEqual([(d.field, d.expected, d.actual) for d in r.diffs], [("ack", "2", "1")])
        self.assertEqual((run.summary.passed, run.summary.failed), (0, 1))
        self.assertFalse(run.passed)
        report = format_failure(r, "engine")
        self.assertRegex(report, r"(?m)^  ack +2 +1$")
        # The report tcplab-script prints for the same file (virtual time: the same run).
        script_bin = Path(TCPLABD).resolve().parent / "tcplab-script"
        if not script_bin.exists():
            self.skipTest(f"{script_bin} is not built (ninja tcplab-script)")
        with tempfile.TemporaryDirectory() as d:
            os.makedirs(os.path.join(d, "wrong"))
            with open(os.path.join(d, "wrong", "synack_ack2.pkt"), "w") as f:
                f.write(WRONG_SCRIPT)
            p = subprocess.run(
                [str(script_bin), "--target=engine", "wrong/synack_ack2.pkt"], cwd=d, capture_output=True, text=True
            )
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertEqual(p.stdout.split("\n", 1)[1], report)

    def test_list_runs_filters_by_student(self) -> None:
        list(self.client.grade([str(LIFECYCLE[0])], "engine", student="py-list-a"))
        list(self.client.grade([str(LIFECYCLE[1]), str(LIFECYCLE[2])], "engine", student="py-list-b"))
        b = self.client.list_runs(student="py-list-b", with_results=True)
        self.assertEqual(len(b), 1)
        self.assertEqual([r.name for r in b[0].results], [str(LIFECYCLE[1]), str(LIFECYCLE[2])])
        ids = [r.id for r in self.client.list_runs()]
        self.assertEqual(ids, sorted(ids, reverse=True))  # newest first
        self.assertIn(b[0].id, ids)

    def test_errors(self) -> None:
        with self.assertRaises(ValueError):
            self.client.grade([str(LIFECYCLE[0])], "satellite")
        with self.assertRaises(FileNotFoundError):
            self.client.grade(["no/such/script.pkt"], "engine")
        run = self.client.grade([str(LIFECYCLE[0])], "dut")  # no DUT named
        with self.assertRaises(TcplabError) as cm:
            list(run)
        self.assertEqual(cm.exception.code, grpc.StatusCode.INVALID_ARGUMENT, str(cm.exception))
        self.assertIn("dut", cm.exception.message)
        with self.assertRaises(TcplabError) as cm:
            self.client.get_run(987654)
        self.assertEqual(cm.exception.code, grpc.StatusCode.NOT_FOUND)


class AuthTest(unittest.TestCase):
    """Client(token=...) against a tcplabd with --auth_tokens: the token goes with every call,
    unary and streaming; none is UNAUTHENTICATED; tenants do not see each other's sandboxes."""

    ALICE = "alice-py-token-0123456789"
    BOB = "bob-py-token-0123456789"

    @classmethod
    def setUpClass(cls) -> None:
        cls.tokens_dir = tempfile.mkdtemp(prefix="tcplab-pyauth-")
        cls.addClassCleanup(shutil.rmtree, cls.tokens_dir, True)
        tokens = os.path.join(cls.tokens_dir, "tokens")
        with open(tokens, "w") as f:
            f.write(f"# test tenants\n{cls.ALICE} alice\n{cls.BOB} bob\n")
        cls.server = Tcplabd(backend="virtual", extra=["--auth_tokens", tokens])
        cls.addClassCleanup(cls.server.stop)
        cls.alice = Client(cls.server.address, token=cls.ALICE, timeout=20)
        cls.bob = Client(cls.server.address, token=cls.BOB, timeout=20)
        cls.anon = Client(cls.server.address, timeout=20)
        for c in (cls.alice, cls.bob, cls.anon):
            cls.addClassCleanup(c.close_channel)
        cls.alice.wait_ready(10)

    def test_the_token_goes_with_unary_and_streaming_calls(self) -> None:
        sb = self.alice.create_sandbox(name="pyauth", backend="virtual").name
        self.addCleanup(self.alice.delete_sandbox, sb)
        self.assertIn(sb, [s.name for s in self.alice.list_sandboxes()])
        lst = self.alice.listen(sb, "engine", 80)
        self.assertEqual(lst.sandbox, sb)
        self.assertTrue(self.alice.events(sb))  # WatchEvents: a server stream
        self.assertTrue(self.alice.pcap(sb).startswith(struct.pack("<I", 0xA1B23C4D)))  # ExportPcap
        run = self.alice.grade([str(LIFECYCLE[0])], "engine", student="py-auth")  # RunSuite
        results = list(run)
        self.assertTrue(run.passed, [format_failure(r, "engine") for r in results if not r.passed])
        self.assertIn(run.summary.id, [r.id for r in self.alice.list_runs()])
        self.assertEqual(self.alice.get_run(run.summary.id).student, "py-auth")
        self.assertNotIn(run.summary.id, [r.id for r in self.bob.list_runs()])

    def test_no_token_or_a_wrong_one_is_unauthenticated(self) -> None:
        for fn in (self.anon.list_sandboxes, lambda: self.anon.events("pyauth"), self.anon.list_runs):
            with self.assertRaises(TcplabError) as cm:
                fn()
            self.assertEqual(cm.exception.code, grpc.StatusCode.UNAUTHENTICATED, str(cm.exception))
            self.assertEqual(
                cm.exception.message,
                "missing authorization metadata (Bearer token); pass --token or set TCPLAB_TOKEN",
            )
        with Client(self.server.address, token="not-a-token-0123456789", timeout=20) as wrong:
            with self.assertRaises(TcplabError) as cm:
                wrong.list_sandboxes()
            self.assertEqual((cm.exception.code, cm.exception.message), (grpc.StatusCode.UNAUTHENTICATED, "unknown token"))

    def test_another_tenants_sandbox_is_not_found(self) -> None:
        sb = self.alice.create_sandbox(name="alices", backend="virtual").name
        self.addCleanup(self.alice.delete_sandbox, sb)
        self.assertNotIn(sb, [s.name for s in self.bob.list_sandboxes()])
        for fn in (self.bob.get_sandbox, self.bob.delete_sandbox, self.bob.events, self.bob.conns):
            with self.assertRaises(TcplabError) as cm:
                fn(sb)
            self.assertEqual(cm.exception.code, grpc.StatusCode.NOT_FOUND, str(cm.exception))
            self.assertEqual(cm.exception.message, f"sandbox {sb} not found")
        self.assertEqual(self.alice.get_sandbox(sb).name, sb)

    def test_student_dut_attaches_with_the_token(self) -> None:
        d = tempfile.mkdtemp(prefix="tcplab-pyauth-dut-")
        self.addCleanup(shutil.rmtree, d, True)

        def start(token: str | None, name: str) -> tuple[subprocess.Popen, str]:
            err = os.path.join(d, f"{name}.err")
            env = {k: v for k, v in os.environ.items() if k != "TCPLAB_TOKEN"}
            if token:
                env["TCPLAB_TOKEN"] = token
            with open(err, "wb") as e:
                p = subprocess.Popen(
                    [PYTHON, str(STUDENT_DUT), "--server", self.server.address, "--name", name],
                    stdout=subprocess.DEVNULL, stderr=e, stdin=subprocess.DEVNULL, env=env, preexec_fn=_pdeathsig,
                )
            with _started_lock:
                _started[p.pid] = p
            self.addCleanup(StudentDutTest._stop_skeleton, p)
            return p, err

        # No token: the stream is refused and the skeleton says why.
        p, err = start(None, "py-anon")
        self.assertNotEqual(p.wait(timeout=20), 0)
        with open(err) as f:
            self.assertIn("UNAUTHENTICATED", f.read())
        # $TCPLAB_TOKEN: attached as alice's, invisible to bob.
        p, err = start(self.ALICE, "py-alice")
        deadline = time.monotonic() + 15
        while "py-alice" not in [x.name for x in self.alice.list_duts()]:
            if p.poll() is not None or time.monotonic() > deadline:
                with open(err) as f:
                    self.fail(f"not attached (exit {p.poll()}):\n{f.read()}")
            time.sleep(0.05)
        self.assertNotIn("py-alice", [x.name for x in self.bob.list_duts()])


# ---------------------------------------------------------------------------------------------
# The student DUT skeleton (examples/student_dut.py): its header code alone, then the
# skeleton attached to a live tcplabd and graded through the Python client.

STUDENT_DUT = REPO / "client" / "python" / "examples" / "student_dut.py"


def _load_student_dut():
    import importlib.util

    spec = importlib.util.spec_from_file_location("student_dut", STUDENT_DUT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["student_dut"] = mod  # dataclasses look their module up while it runs
    spec.loader.exec_module(mod)
    return mod


class StudentDutUnitTest(unittest.TestCase):
    """The skeleton's header parser and builder, and its socket bookkeeping, without a server."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.sd = _load_student_dut()

    def test_checksum_is_rfc_1071(self) -> None:
        # RFC 1071 §3's example: the words 0001 f203 f4f5 f6f7 sum to ddf2 (with carries),
        # so the checksum is its complement.
        self.assertEqual(self.sd.checksum(bytes.fromhex("0001f203f4f5f6f7")), 0xFFFF - 0xDDF2)
        self.assertEqual(self.sd.checksum(b"\x01"), 0xFFFF - 0x0100)  # odd length: padded with a zero

    def test_build_then_parse_round_trip(self) -> None:
        sd = self.sd
        mss = struct.pack("!BBH", 2, 4, 1460)
        ts = struct.pack("!BBBBII", 1, 1, 8, 10, 12345, 678)
        raw = sd.build_datagram(
            "198.18.0.1", "198.18.0.2", 8080, 45000, 0xFFFFFFFF, 1000001, sd.SYN | sd.ACK, 65535,
            payload=b"hi", options=mss + ts,
        )
        self.assertEqual(len(raw), 20 + 20 + 16 + 2)
        self.assertEqual(sd.checksum(raw[:20]), 0)  # the IPv4 header checksum verifies
        seg = sd.parse_datagram(raw)
        self.assertEqual((seg.src, seg.dst, seg.sport, seg.dport), ("198.18.0.1", "198.18.0.2", 8080, 45000))
        self.assertEqual((seg.seq, seg.ack, seg.flags, seg.window), (0xFFFFFFFF, 1000001, 0x12, 65535))
        self.assertEqual(seg.options, [("mss", 1460), ("nop",), ("nop",), ("TS", 12345, 678)])
        self.assertEqual(seg.payload, b"hi")
        self.assertTrue(seg.checksum_ok)
        self.assertEqual(
            sd.format_segment(seg),
            "198.18.0.1:8080 > 198.18.0.2:45000 [S.] seq=4294967295 ack=1000001 win=65535 len=2 "
            "<mss 1460,nop,nop,TS val 12345 ecr 678>",
        )
        # One flipped payload bit breaks the TCP checksum; the line says so.
        bad = bytearray(raw)
        bad[-1] ^= 0x01
        seg = sd.parse_datagram(bytes(bad))
        self.assertFalse(seg.checksum_ok)
        self.assertTrue(sd.format_segment(seg).endswith(" [bad checksum]"))

    def test_parse_refuses_what_is_not_ipv4_tcp(self) -> None:
        sd = self.sd
        good = sd.build_datagram("198.18.0.2", "198.18.0.1", 45000, 8080, 1, 0, sd.SYN, 1024)
        for data, what in (
            (good[:19], "shorter than an IPv4 header"),
            (b"\x65" + good[1:], "IP version 6"),
            (good[:9] + b"\x11" + good[10:], "not TCP"),
            (good[:30], "bad lengths"),
            (good[:32] + b"\x40" + good[33:], "data offset"),
        ):
            with self.assertRaises(ValueError) as cm:
                sd.parse_datagram(data)
            self.assertIn(what, str(cm.exception))
        self.assertEqual(sd.flag_letters(0), "none")
        self.assertEqual(sd.flag_letters(sd.FIN | sd.ACK), "F.")
        self.assertEqual(sd.flag_letters(sd.RST), "R")

    def test_stack_bookkeeping_answers(self) -> None:
        sd = self.sd
        st = sd.StudentStack(send=lambda b: None, log=lambda s: None)
        SC = pb.dut_pb2.SocketCall

        def call(op, **kw):
            try:
                return st.call(SC(op=op, **kw))
            except sd.SockError as e:
                return e.errno

        d = pb.dut_pb2
        self.assertEqual(call(d.SOCK_OP_SOCKET), 3)
        self.assertEqual(call(d.SOCK_OP_SOCKET), 4)
        self.assertEqual(call(d.SOCK_OP_ACCEPT, handle=3), "EINVAL")  # not listening
        self.assertEqual(call(d.SOCK_OP_BIND, handle=3, addr_ip="198.18.0.1", addr_port=8080), 0)
        self.assertEqual(call(d.SOCK_OP_LISTEN, handle=3, arg=1), 0)
        self.assertEqual(call(d.SOCK_OP_ACCEPT, handle=3), sd.BLOCKED)
        self.assertEqual(call(d.SOCK_OP_GET_FLAGS, handle=3), 0x2)
        self.assertEqual(call(d.SOCK_OP_SET_NONBLOCKING, handle=3, flag=True), 0)
        self.assertEqual(call(d.SOCK_OP_GET_FLAGS, handle=3), 0x802)
        self.assertEqual(call(d.SOCK_OP_ACCEPT, handle=3), "EAGAIN")
        self.assertEqual(call(d.SOCK_OP_GET_SO_ERROR, handle=3), (0, "0"))
        self.assertEqual(call(d.SOCK_OP_CONNECT, handle=4, addr_ip="198.18.0.2", addr_port=8080), "ENOSYS")
        self.assertEqual(call(d.SOCK_OP_READ, handle=9, arg=10), "EBADF")
        self.assertEqual(call(d.SOCK_OP_UNSPECIFIED), "EINVAL")
        self.assertEqual(call(99), "EINVAL")
        self.assertEqual(call(d.SOCK_OP_CLOSE, handle=3), 0)
        self.assertEqual(call(d.SOCK_OP_CLOSE, handle=3), "EBADF")
        st.reset("next.pkt")
        self.assertEqual(call(d.SOCK_OP_CLOSE, handle=4), "EBADF")  # a reset forgets every socket
        self.assertEqual(call(d.SOCK_OP_SOCKET), 3)


# The calls the skeleton implements for real, on a non-blocking listener: passes on it.
SKELETON_BOOKKEEPING = """--tolerance_usecs=100000
0    socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0   setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0   fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0
+0   fcntl(3, F_GETFL) = 0x802 (flags O_RDWR|O_NONBLOCK)
+0   bind(3, ..., ...) = 0
+0   listen(3, 1) = 0
+0   accept(3, ..., ...) = -1 EAGAIN (Resource temporarily unavailable)
+0   getsockopt(3, SOL_SOCKET, SO_ERROR, [0], [4]) = 0
+0   close(3) = 0
"""

# A blocking accept that nothing completes: the skeleton answers "blocked" at once, so the
# script fails on the call still being blocked, not on a DUT that did not answer.
SKELETON_BLOCKED_ACCEPT = """--tolerance_usecs=100000
0    socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0   bind(3, ..., ...) = 0
+0   listen(3, 1) = 0
+0...0.2 accept(3, ..., ...) = 4
+.1  close(3) = 0
"""


class StudentDutTest(ServerTestCase):
    """examples/student_dut.py attached to tcplabd, graded with Client.grade."""

    def start_skeleton(self, name: str, server: str | None = None) -> tuple[subprocess.Popen, str, str]:
        """The skeleton as a student runs it; stopped by its PID at the end of the test."""
        d = tempfile.mkdtemp(prefix="tcplab-skeleton-")
        self.addCleanup(shutil.rmtree, d, True)
        out, err = os.path.join(d, "out"), os.path.join(d, "err")
        with open(out, "wb") as o, open(err, "wb") as e:
            p = subprocess.Popen(
                [PYTHON, str(STUDENT_DUT), "--server", server or self.server.address, "--name", name],
                stdout=o,
                stderr=e,
                stdin=subprocess.DEVNULL,
                preexec_fn=_pdeathsig,
            )
        with _started_lock:
            _started[p.pid] = p
        self.addCleanup(self._stop_skeleton, p)
        return p, out, err

    @staticmethod
    def _stop_skeleton(p: subprocess.Popen) -> None:
        if p.poll() is None:
            p.kill()
            p.wait()
        with _started_lock:
            _started.pop(p.pid, None)

    @staticmethod
    def read(path: str) -> str:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_listed(self, name: str, listed: bool, p: subprocess.Popen, err: str) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if (name in [d.name for d in self.client.list_duts()]) == listed:
                return
            if listed and p.poll() is not None:
                self.fail(f"the skeleton exited with {p.returncode}:\n{self.read(err)}")
            time.sleep(0.05)
        self.fail(f"{name} {'not' if listed else 'still'} listed after 15 s:\n{self.read(err)}")

    def test_skeleton_speaks_the_protocol_but_has_no_tcp(self) -> None:
        p, out, err = self.start_skeleton("py-skel")
        self.wait_listed("py-skel", True, p, err)
        duts = {d.name: d for d in self.client.list_duts()}
        self.assertEqual(duts["py-skel"].description, "student_dut.py skeleton")
        self.assertFalse(duts["py-skel"].busy)

        # handshake_passive.pkt: the calls are answered; the SYN arrives and is logged; no
        # SYN-ACK comes back: the script fails there, clearly.
        script = REPO / "tests" / "scripts" / "lifecycle" / "handshake_passive.pkt"
        synack_line = next(
            i for i, line in enumerate(script.read_text().splitlines(), 1) if line.split()[1:3] == [">", "S."]
        )
        run = self.client.grade([str(script)], "dut", dut="py-skel", student="py-skeleton")
        results = list(run)
        self.assertEqual(len(results), 1)
        r = results[0]
        self.assertFalse(r.passed)
        self.assertEqual(r.line, synack_line, r.error)
        self.assertIn("nothing was sent", r.error)
        self.assertIn("> S. 0:0(0) ack 1", r.error)
        self.assertEqual((run.summary.passed, run.summary.failed), (0, 1))
        self.assertEqual(run.summary.state, pb.grading_pb2.RUN_STATE_DONE)
        self.assertFalse(run.passed)

        log = self.read(out)
        self.assertRegex(log, r'(?m)^attached as "py-skel" \(you are 198\.18\.0\.1, ')
        self.assertIn(f"script: {script}\n", log)
        for call in (r"SOCKET\(\) -> 3", r"SET_REUSEADDR\(3, on\) -> 0", r"BIND\(3, 198\.18\.0\.1:8080\) -> 0",
                     r"LISTEN\(3, 1\) -> 0"):
            self.assertRegex(log, rf"(?m)^ +\d+\.\d{{6}} call {call}$")
        # The injected SYN, decoded: the peer's ISN is 1,000,000; its checksums verify.
        self.assertRegex(
            log,
            r"(?m)^ +\d+\.\d{6} <- 198\.18\.0\.2:45000 > 198\.18\.0\.1:8080 \[S\] seq=1000000 ack=0 win=65535 "
            r"len=0 <mss 1460>$",
        )
        self.assertNotRegex(log, r"(?m) -> 198\.18")  # it sent nothing

        # What it implements passes; a blocking accept is answered "blocked" at once.
        run = self.client.grade(
            [
                ("skeleton/bookkeeping.pkt", SKELETON_BOOKKEEPING),
                ("skeleton/blocked_accept.pkt", SKELETON_BLOCKED_ACCEPT),
            ],
            "dut",
            dut="py-skel",
        )
        results = list(run)
        self.assertEqual(len(results), 2)
        self.assertTrue(results[0].passed, format_failure(results[0], "dut"))
        self.assertFalse(results[1].passed)
        self.assertIn("still blocked", results[1].error)
        self.assertNotIn("EDUT", results[1].error)  # not "the DUT did not answer"
        log = self.read(out)
        self.assertRegex(log, r"(?m)call ACCEPT\(3\) -> -1 EAGAIN$")
        self.assertRegex(log, r"(?m)call GET_FLAGS\(3\) -> 2050$")
        self.assertRegex(log, r"(?m)call ACCEPT\(3\) -> blocked$")

        # The name is taken: a second skeleton is refused and exits 1.
        p2, out2, err2 = self.start_skeleton("py-skel")
        self.assertEqual(p2.wait(timeout=30), 1, self.read(err2))
        self.assertIn("ALREADY_EXISTS", self.read(err2))
        self.assertIn("py-skel", [d.name for d in self.client.list_duts()])

        # Ctrl-C: it detaches and exits 0; the lab no longer lists it.
        p.send_signal(signal.SIGINT)
        self.assertEqual(p.wait(timeout=30), 0, self.read(err))
        self.assertTrue(self.read(out).endswith("detached\n"), self.read(out)[-500:])
        self.assertEqual(self.read(err), "")
        self.wait_listed("py-skel", False, p, err)

    def test_sigterm_detaches_and_no_server_exits_1(self) -> None:
        p, out, err = self.start_skeleton("py-term")
        self.wait_listed("py-term", True, p, err)
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(timeout=30), 0, self.read(err))
        self.wait_listed("py-term", False, p, err)

        p, out, err = self.start_skeleton("py-nowhere", server="127.0.0.1:1")
        self.assertEqual(p.wait(timeout=30), 1, self.read(err))
        self.assertIn("student_dut: UNAVAILABLE: ", self.read(err))


# ---------------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    global TCPLABD
    args = list(argv)
    tcplabd = os.environ.get("TCPLABD", str(REPO / "build" / "bin" / "tcplabd"))
    if "--tcplabd" in args:
        i = args.index("--tcplabd")
        tcplabd = args[i + 1]
        del args[i : i + 2]
    TCPLABD = tcplabd
    if not os.access(TCPLABD, os.X_OK):
        print(f"client_test: no tcplabd at {TCPLABD}; build it (ninja tcplab_python_e2e) or pass --tcplabd", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, _stop_all)
    signal.signal(signal.SIGINT, _stop_all)
    try:
        prog = unittest.main(module=__name__, argv=[sys.argv[0], *args], exit=False)
    finally:
        _stop_all()
    r = prog.result
    if not r.wasSuccessful():
        return 1
    if r.testsRun > 0 and len(r.skipped) == r.testsRun:
        return 77
    if r.testsRun == 0 and r.skipped:  # a class skipped in setUpClass counts as one skip
        return 77
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
