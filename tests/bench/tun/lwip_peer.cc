#include "tests/bench/tun/lwip_peer.h"

#include <poll.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <vector>

#include "lwip/init.h"
#include "lwip/ip.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/tcp.h"
#include "lwip/timeouts.h"
#include "tests/bench/tun/forwarder.h"
#include "tests/bench/tun/kernel_load.h"

namespace tcplab::bench {
namespace {

std::atomic<bool> g_in_use{false};

ip4_addr_t Ip4(wire::Ipv4 a) {
  ip4_addr_t out;
  IP4_ADDR(&out, (a.v >> 24) & 0xff, (a.v >> 16) & 0xff, (a.v >> 8) & 0xff, a.v & 0xff);
  return out;
}

}  // namespace

// Everything lwIP calls back into. Touched only by the driver thread.
struct LwipPeer::State {
  App app;
  int fd = -1;
  int mtu = 1500;
  std::atomic<bool> stop{false};
  netif nif{};
  std::vector<tcp_pcb*> listeners;
  // A connection the app still holds; the tcp_arg of its pcb. Owned by `conns`.
  struct Conn {
    State* s;
    tcp_pcb* pcb;
  };
  std::map<tcp_pcb*, std::unique_ptr<Conn>> conns;
  std::vector<uint8_t> out_buf = std::vector<uint8_t>(65536);
  std::vector<uint8_t> pattern = std::vector<uint8_t>(65535, 'l');

  void Run();
  void StartApp();
  void Teardown();
  void Fill(tcp_pcb* pcb);
  Conn* Hold(tcp_pcb* pcb);   // the app takes `pcb`: callbacks get its Conn
  void Forget(tcp_pcb* pcb);  // the app lets go of `pcb`: no more callbacks from it

  static err_t NetifInit(netif* n);
  static err_t Output(netif* n, pbuf* p, const ip4_addr_t*);
  static err_t OutputIp6(netif*, pbuf*, const ip6_addr_t*) { return ERR_OK; }  // none expected
  static err_t Accept(void* arg, tcp_pcb* pcb, err_t err);
  static err_t Recv(void* arg, tcp_pcb* pcb, pbuf* p, err_t err);
  static err_t Sent(void* arg, tcp_pcb* pcb, u16_t len);
  static err_t Connected(void* arg, tcp_pcb* pcb, err_t err);
  static void Err(void* arg, err_t err);
};

absl::StatusOr<std::unique_ptr<LwipPeer>> LwipPeer::Create(int mtu) {
  if (g_in_use.exchange(true)) {
    return absl::FailedPreconditionError("lwIP is one global stack: one LwipPeer at a time");
  }
  std::unique_ptr<LwipPeer> p(new LwipPeer());
  p->state_ = std::make_unique<State>();
  p->state_->mtu = mtu;
  absl::StatusOr<std::unique_ptr<sandbox::Netns>> ns = sandbox::Netns::Create();
  if (!ns.ok()) return ns.status();
  p->ns_ = std::move(*ns);
  link::TunConfig cfg;
  cfg.name = "lwip0";
  cfg.kernel_addr = kKernelAddr;
  cfg.mtu = mtu;
  cfg.txqueuelen = 2000;
  absl::StatusOr<std::unique_ptr<link::TunDevice>> tun = OpenTunIn(*p->ns_, cfg);
  if (!tun.ok()) return tun.status();
  p->tun_ = std::move(*tun);
  p->state_->fd = p->tun_->fd();
  return p;
}

void LwipPeer::Start(App app) {
  state_->app = app;
  thread_ = std::thread([s = state_.get()] { s->Run(); });
}

LwipPeer::~LwipPeer() {
  if (state_) state_->stop = true;
  if (thread_.joinable()) thread_.join();
  tun_.reset();
  ns_.reset();
  g_in_use = false;
}

void LwipPeer::State::Run() {
  pthread_setname_np(pthread_self(), "lwip-driver");
  PinToDatapathCpu();
  static std::once_flag once;
  std::call_once(once, [] { lwip_init(); });
  ip4_addr_t ip = Ip4(kLwipAddr), mask = Ip4(wire::Ipv4::Of(255, 255, 255, 0)), gw = Ip4(kKernelAddr);
  netif_add(&nif, &ip, &mask, &gw, this, &State::NetifInit, ip_input);
  netif_set_default(&nif);
  netif_set_link_up(&nif);
  netif_set_up(&nif);
  StartApp();

  pbuf* spare = nullptr;
  pollfd pfd{fd, POLLIN, 0};
  while (!stop) {
    int got = 0;
    // Up to 64 datagrams per wakeup, each read straight into a pbuf lwIP then owns.
    for (; got < 64; ++got) {
      if (!spare) spare = pbuf_alloc(PBUF_RAW, static_cast<u16_t>(mtu), PBUF_RAM);
      if (!spare) break;
      ssize_t n = read(fd, spare->payload, static_cast<size_t>(mtu));
      if (n <= 0) break;
      pbuf* p = std::exchange(spare, nullptr);
      pbuf_realloc(p, static_cast<u16_t>(n));
      if (nif.input(p, &nif) != ERR_OK) pbuf_free(p);
    }
    sys_check_timeouts();
    if (got == 0) {
      // Sleep until a datagram comes or lwIP's next timer is due (and look at `stop` at least
      // every 50 ms).
      u32_t sleep = sys_timeouts_sleeptime();
      poll(&pfd, 1, static_cast<int>(std::min<u32_t>(sleep, 50)));
    }
  }
  if (spare) pbuf_free(spare);
  Teardown();
}

void LwipPeer::State::StartApp() {
  switch (app.kind) {
    case App::Kind::kSink:
    case App::Kind::kAcceptClose:
      for (int i = 0; i < (app.kind == App::Kind::kSink ? 1 : app.ports); ++i) {
        tcp_pcb* pcb = tcp_new_ip_type(IPADDR_TYPE_V4);
        tcp_bind(pcb, IP4_ADDR_ANY, static_cast<u16_t>(app.port + i));
        tcp_pcb* l = tcp_listen_with_backlog(pcb, 255);
        tcp_arg(l, this);
        tcp_accept(l, &State::Accept);
        listeners.push_back(l);
      }
      break;
    case App::Kind::kSource: {
      tcp_pcb* pcb = tcp_new_ip_type(IPADDR_TYPE_V4);
      Hold(pcb);
      ip_addr_t remote;
      IP_ADDR4(&remote, 198, 18, 0, 1);
      tcp_connect(pcb, &remote, app.port, &State::Connected);
      break;
    }
  }
}

LwipPeer::State::Conn* LwipPeer::State::Hold(tcp_pcb* pcb) {
  auto& c = conns[pcb];
  c = std::make_unique<Conn>(Conn{this, pcb});
  tcp_arg(pcb, c.get());
  tcp_err(pcb, &State::Err);
  return c.get();
}

void LwipPeer::State::Forget(tcp_pcb* pcb) {
  tcp_arg(pcb, nullptr);
  tcp_recv(pcb, nullptr);  // lwIP's default then frees data and closes on FIN
  tcp_sent(pcb, nullptr);
  tcp_err(pcb, nullptr);
  conns.erase(pcb);
}

void LwipPeer::State::Teardown() {
  std::vector<tcp_pcb*> held;
  for (auto& [pcb, c] : conns) held.push_back(pcb);
  for (tcp_pcb* pcb : held) {
    Forget(pcb);
    tcp_abort(pcb);  // RST: the kernel's side ends at once
  }
  for (tcp_pcb* l : listeners) tcp_close(l);
  listeners.clear();
  // Connections lwIP still owns (closing ones) are aborted with the address they use.
  netif_remove(&nif);
}

err_t LwipPeer::State::NetifInit(netif* n) {
  auto* s = static_cast<State*>(n->state);
  n->name[0] = 't';
  n->name[1] = 'n';
  n->mtu = static_cast<u16_t>(s->mtu);
  n->output = &State::Output;
  n->output_ip6 = &State::OutputIp6;
  return ERR_OK;
}

err_t LwipPeer::State::Output(netif* n, pbuf* p, const ip4_addr_t*) {
  auto* s = static_cast<State*>(n->state);
  // One write(2) per datagram. LWIP_NETIF_TX_SINGLE_PBUF (Debian's lwipopts.h) makes TCP
  // hand over one contiguous pbuf; copy a chain anyway if one comes.
  if (p->len == p->tot_len) {
    (void)write(s->fd, p->payload, p->len);
  } else {
    pbuf_copy_partial(p, s->out_buf.data(), p->tot_len, 0);
    (void)write(s->fd, s->out_buf.data(), p->tot_len);
  }
  return ERR_OK;
}

err_t LwipPeer::State::Accept(void* arg, tcp_pcb* pcb, err_t err) {
  auto* s = static_cast<State*>(arg);
  if (err != ERR_OK || pcb == nullptr || s == nullptr) return ERR_VAL;
  s->Hold(pcb);
  tcp_recv(pcb, &State::Recv);
  return ERR_OK;
}

err_t LwipPeer::State::Recv(void* arg, tcp_pcb* pcb, pbuf* p, err_t) {
  State* s = static_cast<Conn*>(arg)->s;
  if (p == nullptr) {  // the peer's FIN: close our half (LAST-ACK); lwIP finishes it alone
    s->Forget(pcb);
    if (tcp_close(pcb) != ERR_OK) {
      tcp_abort(pcb);
      return ERR_ABRT;
    }
    return ERR_OK;
  }
  if (s->app.meter) *s->app.meter += p->tot_len;
  tcp_recved(pcb, p->tot_len);
  pbuf_free(p);
  return ERR_OK;
}

err_t LwipPeer::State::Connected(void* arg, tcp_pcb* pcb, err_t err) {
  State* s = static_cast<Conn*>(arg)->s;
  if (err != ERR_OK) return err;
  tcp_sent(pcb, &State::Sent);
  s->Fill(pcb);
  return ERR_OK;
}

err_t LwipPeer::State::Sent(void* arg, tcp_pcb* pcb, u16_t) {
  static_cast<Conn*>(arg)->s->Fill(pcb);
  return ERR_OK;
}

// Queues as much as lwIP's send buffer takes (copied, as an application's buffer would be),
// then sends.
void LwipPeer::State::Fill(tcp_pcb* pcb) {
  for (;;) {
    u16_t room = tcp_sndbuf(pcb);
    if (room == 0) break;
    if (tcp_write(pcb, pattern.data(), room, TCP_WRITE_FLAG_COPY) != ERR_OK) break;
  }
  tcp_output(pcb);
}

void LwipPeer::State::Err(void* arg, err_t) {
  // The pcb is gone (reset or aborted; lwIP frees it): only forget it.
  auto* c = static_cast<Conn*>(arg);
  if (c) c->s->conns.erase(c->pcb);  // destroys *c
}

}  // namespace tcplab::bench
