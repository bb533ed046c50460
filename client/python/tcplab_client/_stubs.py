"""Finds the generated tcplab.v1 stubs and imports them.

The stubs are generated, never committed (client/python/README.md). Where they are:

1. the directory named by the environment variable ``TCPLAB_PY_STUBS`` (it holds
   ``tcplab/v1/*_pb2.py``), else
2. ``build/python`` in the repository this package sits in (what the CMake target
   ``tcplab_python_stubs`` writes), else
3. anywhere already on ``sys.path``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[3]


def _candidates() -> list[Path]:
    env = os.environ.get("TCPLAB_PY_STUBS")
    if env:
        return [Path(env)]
    return [_REPO / "build" / "python"]


def _add_to_path() -> None:
    for d in _candidates():
        if (d / "tcplab" / "v1").is_dir():
            s = str(d)
            if s not in sys.path:
                sys.path.insert(0, s)
            return


_add_to_path()

try:
    from tcplab.v1 import common_pb2, connection_pb2, connection_pb2_grpc  # noqa: E402
    from tcplab.v1 import events_pb2, sandbox_pb2, sandbox_pb2_grpc  # noqa: E402
    from tcplab.v1 import grading_pb2, grading_pb2_grpc  # noqa: E402
    from tcplab.v1 import dut_pb2, dut_pb2_grpc  # noqa: E402
except ImportError as e:  # pragma: no cover - depends on the environment
    where = os.environ.get("TCPLAB_PY_STUBS") or str(_REPO / "build" / "python")
    raise ImportError(
        f"tcplab_client: cannot import the generated tcplab.v1 stubs ({e}); looked in {where}. "
        "Generate them with `ninja -C build tcplab_python_stubs` or "
        "`client/python/gen_stubs.sh DIR` and set TCPLAB_PY_STUBS=DIR. "
        "Use Debian's /usr/bin/python3, which has grpcio and protobuf."
    ) from e

__all__ = [
    "common_pb2",
    "connection_pb2",
    "connection_pb2_grpc",
    "dut_pb2",
    "dut_pb2_grpc",
    "events_pb2",
    "grading_pb2",
    "grading_pb2_grpc",
    "sandbox_pb2",
    "sandbox_pb2_grpc",
]
