// TcpConfig: every knob a test or a lab needs to pin, in one place (STYLE.md 5).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

#include "engine/tcp/clock.h"

namespace tcplab::tcp {

using namespace std::chrono_literals;

struct TcpConfig {
  // Maximum segment size we announce and send with (RFC 9293 §3.7.1). 1460 = 1500 - 40.
  uint16_t mss = 1460;
  // RFC 9293 §3.7.1: without an MSS option, the peer's MSS is assumed to be 536.
  uint16_t default_peer_mss = 536;
  // TSO: new data may leave in one segment of up to this many octets (rounded down to whole
  // SMSS), for a link that cuts it into SMSS pieces itself (a TUN with vnet_hdr, whose Write
  // asks the kernel to segment). 0 (or <= SMSS): every segment is at most SMSS, as on a wire.
  // Retransmissions always use SMSS. At most 65535 - 120 (the IPv4 length field).
  uint32_t tso_max_bytes = 0;

  size_t send_buffer = 256 * 1024;
  size_t recv_buffer = 256 * 1024;

  // RFC 6298 (2.1): RTO starts at 1 s. (2.4): at least 1 s after measurements; labs lower
  // min_rto so that loss recovery runs fast. (2.5): a maximum of at least 60 s.
  Duration initial_rto = 1s;
  Duration min_rto = 1s;
  Duration max_rto = 60s;
  // RFC 6298 (2.3)/(5.7): after a SYN timeout, data starts with an RTO of 3 s.
  Duration syn_timeout_rto_floor = 3s;

  // RFC 9293 §3.8.3 R1/R2: give up after this many retransmissions of one segment.
  // Defaults follow Linux (tcp_syn_retries = 6, tcp_retries2 = 15).
  int syn_retries = 6;
  int data_retries = 15;

  // RFC 9293 §3.4.2: 2·MSL in TIME-WAIT. RFC 9293 suggests 2 min; Linux holds TIME-WAIT for
  // 60 s, which this default matches. Labs set it in milliseconds.
  Duration msl = 30s;

  // RFC 9293 §3.8.6.3 / RFC 5681 §4.2: delayed ACKs, at most every second full segment and
  // within 500 ms. 40 ms is Linux's minimum delayed-ACK time.
  bool delayed_ack = true;
  Duration delayed_ack_timeout = 40ms;
  // RFC 9293 §3.7.4 (Nagle): hold back small segments while data is unacknowledged.
  bool nagle = true;

  // RFC 9293 §3.8.4 / RFC 1122 §4.2.3.6: keepalives off by default, 2 h idle at least.
  bool keepalive = false;
  Duration keepalive_idle = 2h;
  Duration keepalive_interval = 75s;
  int keepalive_probes = 9;

  // An orphaned FIN-WAIT-2 (the user closed, the peer never sends its FIN) is dropped after
  // this long, as Linux does with tcp_fin_timeout (RFC 9293 has no such timer: a half-closed
  // connection the user still holds waits forever).
  Duration fin_wait2_timeout = 60s;

  // Persist timer (RFC 9293 §3.8.6.1): first probe after one RTO, backing off up to max_rto.
  // Options offered on our SYNs.
  bool window_scaling = true;  // RFC 7323 §2
  bool timestamps = true;      // RFC 7323 §3
  bool sack = true;            // RFC 2018

  // RFC 5961 §7: a limit on challenge ACKs, per connection and second.
  int challenge_ack_limit = 100;

  // RFC 5681 §3.1 eq. (1) when 0; otherwise this many segments (RFC 6928 allows 10).
  int initial_cwnd_segments = 0;
};

}  // namespace tcplab::tcp
