// PcapTap: a bounded, in-memory packet capture of raw IPv4 datagrams, written by libpcap as
// a pcap file (link type DLT_RAW, nanosecond timestamps: magic 0xa1b23c4d) that tshark,
// tcpdump and Wireshark read as is. The sandbox records every datagram where it goes on or
// comes off the wire; ExportPcap hands the bytes to the user.
//
// When full, the tap stops: the datagram that does not fit and every one after it are
// counted as dropped, not written. Not a ring of the most recent datagrams, because
//   - the start of a capture is what a lab is about: the SYNs carry MSS, window scale, SACK
//     and timestamp options, without which tshark can neither scale windows nor make sense
//     of sequence analysis; a ring would cut them off first;
//   - a capture that is a gap-free prefix of the traffic keeps tshark's TCP analysis honest:
//     no "ACKed unseen segment" or "previous segment not captured" made up by the tap;
//   - the file only ever grows at its end, so bytes already exported stay valid and an
//     exporter can stream the capture incrementally (Snapshot(offset)).
// A user who wants the traffic after the bound makes a new sandbox or raises the bound.
//
// Thread-compatible: the sandbox uses it from its reactor thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

// libpcap's handles, kept out of this header so includers need not see <pcap/pcap.h>.
struct pcap;
struct pcap_dumper;

namespace tcplab::sandbox {

struct PcapCounters {
  uint64_t datagrams_captured = 0, bytes_captured = 0;  // datagram octets, not file octets
  uint64_t datagrams_dropped = 0, bytes_dropped = 0;    // not written: the capture was full
  uint64_t file_bytes = 0;                              // Snapshot().size()
  bool full = false;

  friend bool operator==(const PcapCounters&, const PcapCounters&) = default;
};

class PcapTap {
 public:
  static constexpr size_t kDefaultMaxBytes = size_t{64} << 20;
  // The pcap file header (24 octets) and one record header (16 octets): a record costs
  // kRecordHeaderBytes plus the datagram.
  static constexpr size_t kFileHeaderBytes = 24;
  static constexpr size_t kRecordHeaderBytes = 16;
  // The snapshot length in the file header: every IPv4 datagram fits whole (RFC 791).
  static constexpr int kSnapLen = 65535;

  // `max_bytes` bounds the whole file, header included. Errors:
  //   INVALID_ARGUMENT  max_bytes < kFileHeaderBytes; the message names pcap_max_bytes.
  //   INTERNAL          libpcap or open_memstream failed; the message says which call.
  static absl::StatusOr<std::unique_ptr<PcapTap>> Create(size_t max_bytes = kDefaultMaxBytes);
  ~PcapTap();
  PcapTap(const PcapTap&) = delete;
  PcapTap& operator=(const PcapTap&) = delete;

  // Appends one datagram stamped `when` (wall time, kept to the nanosecond), or counts it as
  // dropped once the capture is full. A datagram longer than kSnapLen is cut to kSnapLen
  // octets; its record keeps the original length, as pcap intends.
  void Record(std::span<const uint8_t> datagram, absl::Time when);

  // The whole capture as a pcap file: always complete and valid, even when full.
  std::string Snapshot() const { return Snapshot(0); }
  // The file from `offset` on (empty when offset >= size): the file only grows at its end,
  // so an exporter may send Snapshot(sent) again and again.
  std::string Snapshot(size_t offset) const;

  const PcapCounters& counters() const { return counters_; }
  size_t max_bytes() const { return max_bytes_; }

 private:
  explicit PcapTap(size_t max_bytes) : max_bytes_(max_bytes) {}

  const size_t max_bytes_;
  pcap* dead_ = nullptr;            // pcap_open_dead: a handle with no interface behind it
  pcap_dumper* dumper_ = nullptr;   // writes into memory_
  // open_memstream's buffer: valid (and of size memory_size_) after each flush.
  char* memory_ = nullptr;
  size_t memory_size_ = 0;
  PcapCounters counters_;
};

}  // namespace tcplab::sandbox
