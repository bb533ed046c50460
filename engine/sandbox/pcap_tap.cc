#include "engine/sandbox/pcap_tap.h"

#include <pcap/pcap.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <ctime>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace tcplab::sandbox {

absl::StatusOr<std::unique_ptr<PcapTap>> PcapTap::Create(size_t max_bytes) {
  if (max_bytes < kFileHeaderBytes) {
    return absl::InvalidArgumentError(absl::StrCat("pcap_max_bytes must be 0 (off) or at least ",
                                                   kFileHeaderBytes, " (the pcap file header), got ",
                                                   max_bytes));
  }
  std::unique_ptr<PcapTap> tap(new PcapTap(max_bytes));
  // A handle with no interface behind it: it only tells the dumper the link type (raw IP,
  // no link-layer header), the snapshot length and that timestamps are in nanoseconds, which
  // selects the nanosecond magic 0xa1b23c4d in the file header.
  tap->dead_ = pcap_open_dead_with_tstamp_precision(DLT_RAW, kSnapLen, PCAP_TSTAMP_PRECISION_NANO);
  if (tap->dead_ == nullptr) {
    return absl::InternalError("pcap_open_dead_with_tstamp_precision(DLT_RAW, nano) failed");
  }
  // The file lives in memory: open_memstream grows its buffer as libpcap writes.
  FILE* file = open_memstream(&tap->memory_, &tap->memory_size_);
  if (file == nullptr) return absl::ErrnoToStatus(errno, "open_memstream for the pcap capture");
  tap->dumper_ = pcap_dump_fopen(tap->dead_, file);  // writes the file header
  if (tap->dumper_ == nullptr) {
    std::string err = pcap_geterr(tap->dead_);
    std::fclose(file);
    return absl::InternalError(absl::StrCat("pcap_dump_fopen: ", err));
  }
  if (pcap_dump_flush(tap->dumper_) != 0 || tap->memory_size_ != kFileHeaderBytes) {
    return absl::InternalError(
        absl::StrCat("pcap file header: ", tap->memory_size_, " octets in memory, want ", kFileHeaderBytes));
  }
  tap->counters_.file_bytes = kFileHeaderBytes;
  return tap;
}

PcapTap::~PcapTap() {
  if (dumper_ != nullptr) pcap_dump_close(dumper_);  // fcloses the memstream
  std::free(memory_);                                 // open_memstream's buffer is ours
  if (dead_ != nullptr) pcap_close(dead_);
}

void PcapTap::Record(std::span<const uint8_t> datagram, absl::Time when) {
  const size_t caplen = std::min(datagram.size(), static_cast<size_t>(kSnapLen));
  const uint64_t need = kRecordHeaderBytes + caplen;
  auto drop = [&] {
    counters_.full = true;
    counters_.datagrams_dropped++;
    counters_.bytes_dropped += datagram.size();
  };
  // Once one datagram did not fit, none after it is written either, not even a smaller one:
  // the capture stays a gap-free prefix of the traffic (see the header).
  if (counters_.full || counters_.file_bytes + need > max_bytes_) return drop();

  timespec ts = absl::ToTimespec(when);
  if (ts.tv_sec < 0) ts = {};  // before 1970: pcap's seconds are unsigned
  pcap_pkthdr hdr{};
  hdr.ts.tv_sec = ts.tv_sec;
  // With PCAP_TSTAMP_PRECISION_NANO the "usec" field carries nanoseconds; libpcap writes it
  // to the file unchanged.
  hdr.ts.tv_usec = ts.tv_nsec;
  hdr.caplen = static_cast<bpf_u_int32>(caplen);
  hdr.len = static_cast<bpf_u_int32>(datagram.size());
  pcap_dump(reinterpret_cast<u_char*>(dumper_), &hdr, datagram.data());
  // The flush publishes memory_/memory_size_ (a memstream flush is a pointer update, no
  // system call). If the buffer could not grow, the record may be cut short: stop there and
  // keep serving the file up to the last whole record.
  if (pcap_dump_flush(dumper_) != 0 || memory_size_ != counters_.file_bytes + need) return drop();
  counters_.datagrams_captured++;
  counters_.bytes_captured += datagram.size();
  counters_.file_bytes += need;
}

std::string PcapTap::Snapshot(size_t offset) const {
  if (offset >= counters_.file_bytes) return {};
  return std::string(memory_ + offset, counters_.file_bytes - offset);
}

}  // namespace tcplab::sandbox
