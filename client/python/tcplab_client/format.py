"""Readable names and one-line renderings of tcplab.v1 values and events."""

from __future__ import annotations

from ._stubs import common_pb2, events_pb2, grading_pb2

# Header bits of SegmentEvent.flags, in the order they are printed.
_FLAG_NAMES = [
    (0x02, "SYN"),
    (0x01, "FIN"),
    (0x04, "RST"),
    (0x08, "PSH"),
    (0x20, "URG"),
    (0x40, "ECE"),
    (0x80, "CWR"),
    (0x10, "ACK"),
]


def state_name(state: int) -> str:
    """The RFC 9293 spelling of a ``TcpState``: ``TIME-WAIT``, ``SYN-RECEIVED``, ``FIN-WAIT-1``."""
    try:
        name = common_pb2.TcpState.Name(state)
    except ValueError:
        return f"STATE({state})"
    if state == common_pb2.TCP_STATE_UNSPECIFIED:
        return "UNSPECIFIED"
    return name.removeprefix("TCP_STATE_").replace("_", "-")


def stack_name(stack: int) -> str:
    """``engine``, ``kernel`` (or ``-`` when unspecified)."""
    return {common_pb2.STACK_ENGINE: "engine", common_pb2.STACK_KERNEL: "kernel"}.get(stack, "-")


def flag_names(flags: int) -> str:
    """Header bits as names joined by ``+``: ``SYN``, ``SYN+ACK``, ``FIN+ACK``, ``PSH+ACK``."""
    names = [n for bit, n in _FLAG_NAMES if flags & bit]
    return "+".join(names) if names else "none"


def _enum_short(enum, value: int, prefix: str) -> str:
    try:
        return enum.Name(value).removeprefix(prefix).lower().replace("_", "-")
    except ValueError:
        return str(value)


def verdict_name(verdict: int) -> str:
    """``sent``, ``accepted``, ``out-of-window``, ... for a ``Verdict``."""
    return _enum_short(events_pb2.Verdict, verdict, "VERDICT_")


def _secs(d) -> float:
    return d.seconds + d.nanos / 1e9


def _options(o) -> str:
    parts = []
    if o.mss:
        parts.append(f"mss {o.mss}")
    if o.sack_permitted:
        parts.append("sackOK")
    if o.has_timestamps:
        parts.append(f"TS val {o.ts_val} ecr {o.ts_ecr}")
    if o.has_window_scale:
        parts.append(f"wscale {o.window_scale}")
    if o.sack:
        parts.append("sack " + " ".join(f"{b.left}:{b.right}" for b in o.sack))
    return ",".join(parts)


def format_segment(seg) -> str:
    """``OUT 198.18.0.2:40000 > 198.18.0.1:80 SYN+ACK seq=0 ack=1 win=65535 len=0 <mss 1460> [sent]``.

    seq and ack are relative (to each side's ISN), as the lesson writes them; ack is left
    out when the ACK bit is not set.
    """
    direction = {
        events_pb2.SegmentEvent.DIRECTION_IN: "IN ",
        events_pb2.SegmentEvent.DIRECTION_OUT: "OUT",
    }.get(seg.direction, "?  ")
    s = (
        f"{direction} {seg.src.ip}:{seg.src.port} > {seg.dst.ip}:{seg.dst.port} "
        f"{flag_names(seg.flags)} seq={seg.relative_seq}"
    )
    if seg.flags & 0x10:
        s += f" ack={seg.relative_ack}"
    s += f" win={seg.window} len={seg.payload_length}"
    if seg.payload_length and seg.payload_preview:
        preview = seg.payload_preview.decode("ascii", "backslashreplace")
        more = "..." if seg.payload_length > len(seg.payload_preview) else ""
        s += f" {preview!r}{more}"
    opts = _options(seg.options)
    if opts:
        s += f" <{opts}>"
    s += f" [{verdict_name(seg.verdict)}]"
    if not seg.checksum_ok:
        s += " BAD-CHECKSUM"
    return s


def format_event(ev) -> str:
    """One readable line for an ``Event``.

    ``#7    +0.012345s  engine conn 1  OUT 198.18.0.2:40000 > 198.18.0.1:80 SYN seq=0 win=65535 len=0 [sent]``
    ``#9    +0.012400s  kernel conn 3  state SYN-RECEIVED -> ESTABLISHED (ACK received)``
    """
    body = ev.WhichOneof("body")
    if body == "gap":
        return f"gap: missed {ev.gap.missed} events; next is #{ev.gap.next_sequence}"
    who = stack_name(ev.stack)
    conn = f"conn {ev.connection_id}" if ev.connection_id else "-"
    head = f"#{ev.sequence:<5d} +{_secs(ev.since_start):.6f}s  {who:6s} {conn:8s} "
    if body == "segment":
        return head + format_segment(ev.segment)
    if body == "state":
        st = ev.state
        cause = f" ({st.cause})" if st.cause else ""
        return head + f"state {state_name(getattr(st, 'from'))} -> {state_name(st.to)}{cause}"
    if body == "timer":
        t = ev.timer
        kind = _enum_short(events_pb2.TimerEvent.Kind, t.kind, "KIND_")
        if t.kind == events_pb2.TimerEvent.KIND_TIME_WAIT:
            kind += " (2*MSL)"
        action = _enum_short(events_pb2.TimerEvent.Action, t.action, "ACTION_")
        s = head + f"timer {kind} {action}"
        if t.action == events_pb2.TimerEvent.ACTION_STARTED and (t.deadline.seconds or t.deadline.nanos):
            s += f", fires at +{_secs(t.deadline):.6f}s"
        if t.backoff:
            s += f", backoff {t.backoff}"
        return s
    if body == "app":
        return head + f"app {ev.app.call} -> {ev.app.result or 'OK'}"
    return head + "(empty event)"


def target_name(target: int) -> str:
    """A ``GradingTarget``: ``engine``, ``kernel``, ``dut`` (or ``-`` when unspecified)."""
    return {
        grading_pb2.GRADING_TARGET_ENGINE: "engine",
        grading_pb2.GRADING_TARGET_KERNEL: "kernel",
        grading_pb2.GRADING_TARGET_DUT: "dut",
    }.get(target, "-")


def format_failure(result, target: str) -> str:
    """A failed ``ScriptResult`` as ``tcplab grade`` and ``tcplab-script`` print it: the error
    line, expected and actual, the fields that differ (field / expected / actual), then the
    timeline. ``target`` is ``"engine"``, ``"kernel"`` or ``"dut"`` (or a ``GradingTarget``)."""
    if not isinstance(target, str):
        target = target_name(target)
    out = [result.error]
    if result.expected or result.actual:
        out.append(f"  expected: {result.expected}")
        out.append(f"  actual:   {result.actual}")
    if result.diffs:
        w = max([5] + [len(d.field) for d in result.diffs])
        out.append(f"  {'field':<{w}}  {'expected':<28} actual")
        out += [f"  {d.field:<{w}}  {d.expected:<28} {d.actual}" for d in result.diffs]
    out.append(f"  timeline ({target}):")
    out += [f"    {t}" for t in result.timeline]
    return "\n".join(out) + "\n"
