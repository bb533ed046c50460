"""tcplab_client: a small Python client for tcplabd (the tcplab.v1 gRPC API).

    from tcplab_client import Client, format_event

    with Client("127.0.0.1:50051") as c:
        sb = c.create_sandbox(msl=0.5)
        srv = c.listen(sb.name, "kernel", 80)
        cli = c.connect(sb.name, "engine", to="198.18.0.1:80")
        c.send(cli, b"hello")
        for ev in c.watch(sb.name, follow=False):
            print(format_event(ev))

        run = c.grade(["lifecycle/handshake_passive.pkt"], "engine", student="s042")
        for r in run:                   # ScriptResult messages, as each script finishes
            print("PASS" if r.passed else "FAIL", r.name)
        print(run.summary.id, run.summary.passed, run.summary.failed)

The generated stubs (module ``tcplab.v1``) are found through ``TCPLAB_PY_STUBS`` or the
repository's ``build/python``; see client/python/README.md. They are re-exported here as
``tcplab_client.pb`` (``pb.common_pb2``, ``pb.events_pb2``, ...).
"""

from . import _stubs as pb
from .client import Client, Conn, GradeRun, Received, TcplabError
from .format import (
    flag_names,
    format_event,
    format_failure,
    format_segment,
    stack_name,
    state_name,
    target_name,
    verdict_name,
)

__all__ = [
    "Client",
    "Conn",
    "GradeRun",
    "Received",
    "TcplabError",
    "flag_names",
    "format_event",
    "format_failure",
    "format_segment",
    "pb",
    "stack_name",
    "state_name",
    "target_name",
    "verdict_name",
]
