#include "backends/http_session.hpp"

#include <cstdint>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include "backends/https_redirect.hpp"
#include "backends/sys_file.hpp"

namespace acmegw::backends {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kRelayChunk = 16 * 1024;  // one read from production, written as is

// What the client gets when the relay target cannot be reached (docs/backends.md "relay"): an
// ACME server reports the status and the start of the body to the ACME client, so the operator
// reads the cause in certbot's error instead of a bare "connection reset". The target's address
// is not named: anyone can request a challenge path.
constexpr std::string_view kRelayRefused =
    "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: 47\r\n"
    "Connection: close\r\n\r\nacmegw: the validation host refused or is down\n";
constexpr std::string_view kRelayTimedOut =
    "HTTP/1.1 504 Gateway Timeout\r\nContent-Type: text/plain\r\nContent-Length: 51\r\n"
    "Connection: close\r\n\r\nacmegw: the validation host did not answer in time\n";

// One taken-over connection. Every handler runs on the client socket's strand, which the
// production socket and the timer share, so members need no locks. Handlers follow Beast's
// order (STYLE §24): operation_aborted → expected end (eof) → if (ec) return fail().
class Session : public std::enable_shared_from_this<Session> {
 public:
  // `backend` null: relay the whole connection to `production` from the first byte, with the
  // PROXY header and connect timeout of `relay` (non-null then); `warn` may be null.
  Session(tcp::socket client, const tcp::endpoint& production, AnsweringBackend* backend,
          const RelaySpec* relay, RateLimitedWarning* warn, const SessionConfig& cfg,
          SessionStats& stats, SessionSlot slot)
      : client_(std::move(client)),
        slot_(std::move(slot)),
        prod_(client_.get_executor()),
        production_(production),
        timer_(client_.get_executor()),
        backend_(backend),
        relay_spec_(relay != nullptr ? *relay : RelaySpec{}),
        relay_(relay != nullptr ? &relay_spec_ : nullptr),
        warn_(warn),
        cfg_(cfg),
        stats_(stats),
        in_(cfg.limits.max_http_head) {
    stats_.started.fetch_add(1, std::memory_order_relaxed);
    stats_.active.fetch_add(1, std::memory_order_relaxed);
  }

  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Still open here only when the io_context is torn down under us: abort, never FIN. The
  // explicit close() matters: Asio's destructor-close turns a user-set linger off again.
  ~Session() {
    if (client_.is_open()) {
      boost::system::error_code ignored;
      client_.set_option(asio::socket_base::linger(true, 0), ignored);
      client_.close(ignored);
    }
    stats_.active.fetch_sub(1, std::memory_order_relaxed);
  }

  void start() {
    request_start_ = Clock::now();
    born_ = request_start_;
    touch();
    if (backend_ == nullptr) {
      return start_relay();
    }
    read_request();
  }

 private:
  enum class Mode : std::uint8_t { Answering, Relaying, Replying, Done };
  enum class Deadline : std::uint8_t { Idle, Header, Total };  // what deadline_ stands for

  // ---- Answering: one request head at a time; pipelined heads wait in in_.

  void read_request() {
    client_.async_read_some(
        asio::buffer(in_.data() + in_len_, in_.size() - in_len_),
        [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
          self->on_request_read(ec, n);
        });
  }

  void on_request_read(boost::system::error_code ec, std::size_t n) {
    if (ec == asio::error::operation_aborted) {
      return;
    }
    if (ec == asio::error::eof) {
      return finish_passive();
    }
    if (ec) {
      return fail();
    }
    if (in_len_ == 0) {  // a keep-alive request's first byte: its answer time starts now
      request_start_ = std::chrono::steady_clock::now();
    }
    in_len_ += n;
    touch();
    serve();
  }

  void serve() {
    const std::span<const std::byte> buf{in_.data(), in_len_};
    if (buf.empty()) {
      return read_request();
    }
    const auto c = classifier::classify(buf, classifier::Protocol::Http, cfg_.limits);
    if (c.decision == classifier::Decision::Production) {
      return cfg_.redirect_https ? redirect_https(buf, c.reason) : start_relay();
    }
    // A challenge is answered once its whole head is here, so the next pipelined request
    // starts right after it. in_ holds max_http_head bytes, where classify() stops NeedMore.
    const auto end =
        c.decision == classifier::Decision::Challenge ? find_head_end(buf) : std::nullopt;
    if (!end) {
      if (in_len_ == in_.size()) {
        stats_.head_too_large.fetch_add(1, std::memory_order_relaxed);
        return cfg_.redirect_https ? abort() : start_relay();
      }
      return read_request();
    }
    const std::string_view head{reinterpret_cast<const char*>(in_.data()), *end};
    const RequestLine line = split_request_line(head);
    const Answer a = backend_->answer({line.method, c.token, c.host.view(), line.target});
    if (a.to_production) {  // routes: no route for this Host, or on-miss = production
      return start_relay();
    }
    count(a.kind);
    const bool close = wants_close(head);
    format_response(a, line.method == "HEAD", close, out_);
    if (close) {
      // The client asked to close (every Boulder request does): we end the connection. Its FIN
      // first makes that a passive close; without one within drain_timeout, a RST. Either way
      // no TIME_WAIT holds production's address:port (pitfall 6).
      stats_.answered_close.fetch_add(1, std::memory_order_relaxed);
      return reply_then_drain(out_);
    }
    write_answer(*end);
  }

  // Writes out_, the answer to the request head of `consumed` bytes at the start of in_; the
  // connection stays open for the next request.
  void write_answer(std::size_t consumed) {
    asio::async_write(
        client_, asio::buffer(out_),
        [self = shared_from_this(), consumed](boost::system::error_code e, std::size_t) {
          self->on_response_written(e, consumed);
        });
  }

  // ---- policy "redirect-https": a request that is not a challenge gets a 301 once its head is
  // complete; anything that is not HTTP/1.x is reset (RST, never a FIN first: pitfall 6).

  void redirect_https(std::span<const std::byte> buf, classifier::Reason reason) {
    const auto end = reason == classifier::Reason::NotHttp ? std::nullopt : find_head_end(buf);
    if (!end) {
      if (reason != classifier::Reason::NotHttp && in_len_ < in_.size()) {
        return read_request();
      }
      stats_.malformed_reset.fetch_add(1, std::memory_order_relaxed);
      return abort();
    }
    const HttpsRedirect r = https_redirect_for({reinterpret_cast<const char*>(in_.data()), *end});
    format_https_redirect(r, out_);
    switch (r.kind) {
      case HttpsRedirect::Kind::Malformed:
        stats_.malformed_reset.fetch_add(1, std::memory_order_relaxed);
        return abort();
      case HttpsRedirect::Kind::BadRequest:
        stats_.bad_request.fetch_add(1, std::memory_order_relaxed);
        return reply_then_drain(out_);
      case HttpsRedirect::Kind::MovedPermanently:
        stats_.answered_redirect_https.fetch_add(1, std::memory_order_relaxed);
        return r.close ? reply_then_drain(out_) : write_answer(*end);
    }
  }

  void on_response_written(boost::system::error_code ec, std::size_t consumed) {
    if (ec == asio::error::operation_aborted) {
      return;
    }
    if (ec) {
      return fail();
    }
    const auto now = std::chrono::steady_clock::now();
    stats_.answer_latency.observe(now - request_start_);
    request_start_ = now;  // a pipelined request waited for this one; a later one resets below
    answered_ = true;
    std::memmove(in_.data(), in_.data() + consumed, in_len_ - consumed);
    in_len_ -= consumed;
    touch();
    serve();
  }

  void count(Answer::Kind k) noexcept {
    switch (k) {
      case Answer::Kind::KeyAuthorization:
        stats_.answered_keyauth.fetch_add(1, std::memory_order_relaxed);
        return;
      case Answer::Kind::NotFound:
        stats_.answered_not_found.fetch_add(1, std::memory_order_relaxed);
        return;
      case Answer::Kind::Redirect:
        stats_.answered_redirect.fetch_add(1, std::memory_order_relaxed);
        return;
      case Answer::Kind::Unavailable:
        stats_.answered_unavailable.fetch_add(1, std::memory_order_relaxed);
        return;
    }
  }

  // ---- Relaying: from the first non-challenge request on, the rest of the connection goes
  // to production byte for byte (responses are not parsed, so there is no way back).

  void start_relay() {
    mode_ = Mode::Relaying;
    stats_.relayed.fetch_add(1, std::memory_order_relaxed);
    connecting_ = true;
    if (relay_ != nullptr) {
      deadline_ = Clock::now() + relay_->connect_timeout;
      arm_timer();  // the deadline moved earlier
    }
    prod_.async_connect(production_, [self = shared_from_this()](boost::system::error_code ec) {
      self->on_prod_connected(ec);
    });
  }

  void on_prod_connected(boost::system::error_code ec) {
    // !connecting_: the timeout fired first (and answered the client) or the session ended.
    if (ec == asio::error::operation_aborted || !connecting_ || mode_ == Mode::Done) {
      return;
    }
    connecting_ = false;
    if (ec) {
      stats_.relay_connect_failed.fetch_add(1, std::memory_order_relaxed);
      if (relay_ != nullptr) {
        return relay_unreachable(kRelayRefused, "validation host " + endpoint_text() +
                                                    " refused or unreachable: " + ec.message());
      }
      return abort();
    }
    touch();
    // The PROXY header goes first, in the same write as the held bytes: the target may read
    // the request at once (v2 signature and v1 "PROXY " cannot start an HTTP request).
    std::size_t proxy_len = 0;
    if (relay_ != nullptr && relay_->proxy != ProxyProtocol::None) {
      boost::system::error_code e1;
      boost::system::error_code e2;
      const auto peer = client_.remote_endpoint(e1);
      const auto local = client_.local_endpoint(e2);
      if (e1 || e2) {
        return fail();  // the client is gone already
      }
      proxy_len = encode_proxy_header(relay_->proxy, peer, local, proxy_);
    }
    const std::array<asio::const_buffer, 2> bufs{asio::buffer(proxy_.data(), proxy_len),
                                                 asio::buffer(in_.data(), in_len_)};
    asio::async_write(prod_, bufs,
                      [self = shared_from_this()](boost::system::error_code e, std::size_t) {
                        if (e == asio::error::operation_aborted) {
                          return;
                        }
                        if (e) {
                          return self->fail();
                        }
                        self->in_len_ = 0;
                        self->pump_up();
                        self->pump_down();
                      });
  }

  // Client -> production; in_ is the buffer from here on.
  void pump_up() {
    client_.async_read_some(asio::buffer(in_), [self = shared_from_this()](
                                                   boost::system::error_code ec, std::size_t n) {
      if (ec == asio::error::operation_aborted) {
        return;
      }
      if (ec == asio::error::eof) {
        self->client_eof_ = true;
        boost::system::error_code ignored;
        self->prod_.shutdown(tcp::socket::shutdown_send, ignored);  // our own connection
        return self->maybe_finish();
      }
      if (ec) {
        return self->fail();
      }
      self->touch();
      asio::async_write(self->prod_, asio::buffer(self->in_.data(), n),
                        [self](boost::system::error_code e, std::size_t) {
                          if (e == asio::error::operation_aborted) {
                            return;
                          }
                          if (e) {
                            return self->fail();
                          }
                          self->pump_up();
                        });
    });
  }

  // Production -> client.
  void pump_down() {
    prod_.async_read_some(asio::buffer(down_),
                          [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
                            if (ec == asio::error::operation_aborted) {
                              return;
                            }
                            if (ec == asio::error::eof) {
                              self->prod_eof_ = true;
                              self->pass_fin_on();
                              return self->maybe_finish();
                            }
                            if (ec) {
                              return self->fail();
                            }
                            self->touch();
                            asio::async_write(self->client_, asio::buffer(self->down_.data(), n),
                                              [self](boost::system::error_code e, std::size_t) {
                                                if (e == asio::error::operation_aborted) {
                                                  return;
                                                }
                                                if (e) {
                                                  return self->fail();
                                                }
                                                self->pump_down();
                                              });
                          });
  }

  // Production closed and everything it sent is written (pump_down reads only after a write):
  // FIN the client, which may be reading to EOF (HTTP/1.0 without Content-Length, e.g. certbot
  // --standalone). If the client has not closed yet, this is an active close whose TIME_WAIT
  // finish_passive() removes (pitfall 6); the endpoints are saved now because getpeername fails
  // once the socket is closed, the cookie so that only this socket's TIME_WAIT can match.
  void pass_fin_on() {
    boost::system::error_code e1;
    boost::system::error_code e2;
    fin_local_ = client_.local_endpoint(e1);
    fin_peer_ = client_.remote_endpoint(e2);
    const auto cookie = sys::socket_cookie(client_.native_handle());
    fin_cookie_ = cookie.value;
    fin_first_ = !client_eof_ && !e1 && !e2 && cookie.ok();
    boost::system::error_code ignored;
    client_.shutdown(tcp::socket::shutdown_send, ignored);
  }

  // Ends once both sides closed; until then touch() gives the client drain_timeout after
  // production's close, then the timer aborts.
  void maybe_finish() {
    if (client_eof_ && prod_eof_) {
      return finish_passive();
    }
    touch();
  }

  // ---- The relay target is down: answer the client, then wait for its FIN.

  void relay_unreachable(std::string_view response, const std::string& why) {
    if (warn_ != nullptr) {
      warn_->warn("relay: " + why);
    }
    if (relay_->tls) {
      return abort();  // no HTTP answer inside a TLS connection
    }
    reply_then_drain(response);
  }

  // Writes a final response ("Connection: close"; `response` must outlive the write) and waits
  // at most drain_timeout for the client's FIN.
  void reply_then_drain(std::string_view response) {
    mode_ = Mode::Replying;
    prod_eof_ = true;  // nothing will come from production or the target: drain_timeout
    touch();
    asio::async_write(client_, asio::buffer(response),
                      [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                        if (ec == asio::error::operation_aborted) {
                          return;
                        }
                        if (ec) {
                          return self->fail();
                        }
                        self->discard_until_eof();
                      });
  }

  // "Connection: close" was sent; the client's FIN makes it a passive close (pitfall 6).
  void discard_until_eof() {
    client_.async_read_some(asio::buffer(in_),
                            [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                              if (ec == asio::error::operation_aborted) {
                                return;
                              }
                              if (ec == asio::error::eof) {
                                return self->finish_passive();
                              }
                              if (ec) {
                                return self->fail();
                              }
                              self->discard_until_eof();
                            });
  }

  std::string endpoint_text() const { return to_string(RelaySpec{production_}); }

  // ---- Ends and the deadline.

  // Both sides closed. If the client sent FIN first this is a passive close (LAST_ACK, no
  // TIME_WAIT); if we did (pass_fin_on), the TIME_WAIT on production's address:port would
  // black-hole the client's next connection from the same port via early demux (pitfall 6), so
  // it is destroyed at once.
  void finish_passive() {
    close(false);
    if (fin_first_ &&
        !sys::destroy_tcp_socket(fin_local_.data(), fin_peer_.data(), fin_cookie_).ok()) {
      stats_.timewait_left.fetch_add(1, std::memory_order_relaxed);
    }
    stats_.client_closed.fetch_add(1, std::memory_order_relaxed);  // last: the session is done
  }

  void fail() {
    stats_.io_errors.fetch_add(1, std::memory_order_relaxed);
    abort();
  }

  void abort() { close(true); }

  void close(bool reset) {
    if (mode_ == Mode::Done) {
      return;
    }
    mode_ = Mode::Done;
    boost::system::error_code ignored;
    if (reset) {
      client_.set_option(asio::socket_base::linger(true, 0), ignored);
    }
    client_.close(ignored);
    prod_.close(ignored);
    timer_.cancel();
  }

  // Moves the deadline: idle_timeout from now, or drain_timeout once production has closed;
  // unless relaying, no later than the current head's header_timeout and the session's
  // total_timeout. A deadline earlier than the armed one re-arms the timer.
  void touch() {
    deadline_ = Clock::now() + (prod_eof_ ? cfg_.drain_timeout : cfg_.idle_timeout);
    deadline_cause_ = Deadline::Idle;
    if (mode_ != Mode::Relaying) {
      if (mode_ == Mode::Answering && (in_len_ > 0 || !answered_)) {
        bound(request_start_ + cfg_.header_timeout, Deadline::Header);
      }
      bound(born_ + cfg_.total_timeout, Deadline::Total);
    }
    if (deadline_ < armed_) {
      arm_timer();
    }
  }

  void bound(Clock::time_point limit, Deadline cause) {
    if (limit < deadline_) {
      deadline_ = limit;
      deadline_cause_ = cause;
    }
  }

  void count_deadline() {
    switch (deadline_cause_) {
      case Deadline::Idle:
        stats_.idle_aborted.fetch_add(1, std::memory_order_relaxed);
        return;
      case Deadline::Header:
        stats_.header_timeout.fetch_add(1, std::memory_order_relaxed);
        return;
      case Deadline::Total:
        stats_.total_timeout.fetch_add(1, std::memory_order_relaxed);
        return;
    }
  }

  // One timer per session: it wakes at the deadline it was armed with and re-arms itself when
  // activity moved the deadline later meanwhile; moving it earlier re-arms explicitly.
  void arm_timer() {
    armed_ = deadline_;
    timer_.expires_at(deadline_);
    timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec == asio::error::operation_aborted || self->mode_ == Mode::Done) {
        return;
      }
      self->armed_ = Clock::time_point::max();  // nothing pending until armed again
      if (Clock::now() >= self->deadline_ && self->connecting_ && self->relay_ != nullptr) {
        self->connecting_ = false;
        self->stats_.relay_connect_timeout.fetch_add(1, std::memory_order_relaxed);
        boost::system::error_code ignored;
        self->prod_.close(ignored);  // the pending connect ends as operation_aborted
        return self->relay_unreachable(
            kRelayTimedOut, "validation host " + self->endpoint_text() + " did not accept within " +
                                std::to_string(self->relay_->connect_timeout.count()) + " ms");
      }
      if (Clock::now() >= self->deadline_) {
        self->count_deadline();
        return self->abort();
      }
      self->arm_timer();
    });
  }

  tcp::socket client_;
  SessionSlot slot_;  // the session's place under the per-source cap, until it ends
  tcp::socket prod_;
  tcp::endpoint production_;
  asio::steady_timer timer_;
  AnsweringBackend* backend_;  // null: relay only
  // A copy: a SIGHUP may replace the TLS route set that held the caller's spec.
  RelaySpec relay_spec_;
  const RelaySpec* relay_;    // &relay_spec_ for a relay session; null for an HTTP session
  RateLimitedWarning* warn_;  // relay target down; may be null
  const SessionConfig& cfg_;
  SessionStats& stats_;
  std::vector<std::byte> in_;  // request heads; client -> production chunks when relaying
  std::size_t in_len_ = 0;
  // When the request being served started (stats_.answer_latency).
  std::chrono::steady_clock::time_point request_start_;
  std::string out_;  // the response being written
  std::array<std::byte, kRelayChunk> down_{};
  ProxyHeaderBuffer proxy_{};
  Clock::time_point deadline_{};
  Clock::time_point armed_ = Clock::time_point::max();  // the timer's pending expiry
  Clock::time_point born_{};                            // the takeover (total_timeout)
  Deadline deadline_cause_ = Deadline::Idle;
  Mode mode_ = Mode::Answering;
  bool answered_ = false;  // a response was written: between requests only idle_timeout holds
  bool client_eof_ = false;
  bool prod_eof_ = false;
  bool fin_first_ = false;  // our FIN to the client preceded its FIN: TIME_WAIT to destroy
  tcp::endpoint fin_local_;
  tcp::endpoint fin_peer_;
  std::uint64_t fin_cookie_ = 0;
  bool connecting_ = false;  // the relay's connect is pending (its timeout is the deadline)
};

}  // namespace

void start_http_session(tcp::socket client, const tcp::endpoint& production,
                        AnsweringBackend& backend, const SessionConfig& cfg, SessionStats& stats,
                        SessionSlot slot) {
  const auto ex = client.get_executor();
  auto s = std::make_shared<Session>(std::move(client), production, &backend, nullptr, nullptr, cfg,
                                     stats, std::move(slot));
  asio::dispatch(ex, [s = std::move(s)] { s->start(); });
}

void start_relay_session(tcp::socket client, const RelaySpec& relay, const SessionConfig& cfg,
                         SessionStats& stats, RateLimitedWarning* warn, SessionSlot slot) {
  const auto ex = client.get_executor();
  auto s = std::make_shared<Session>(std::move(client), relay.target, nullptr, &relay, warn, cfg,
                                     stats, std::move(slot));
  asio::dispatch(ex, [s = std::move(s)] { s->start(); });
}

std::optional<std::size_t> find_head_end(std::span<const std::byte> bytes) noexcept {
  const auto at = [&](std::size_t i) { return static_cast<char>(bytes[i]); };
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (at(i) != '\n') {
      continue;
    }
    if (i + 1 < bytes.size() && at(i + 1) == '\n') {
      return i + 2;
    }
    if (i + 2 < bytes.size() && at(i + 1) == '\r' && at(i + 2) == '\n') {
      return i + 3;
    }
  }
  return std::nullopt;
}

RequestLine split_request_line(std::string_view head) noexcept {
  RequestLine r;
  const std::size_t sp1 = head.find(' ');
  if (sp1 == std::string_view::npos) {
    return r;
  }
  r.method = head.substr(0, sp1);
  const std::size_t start = sp1 + 1;
  const std::size_t end = head.find_first_of(" \r\n", start);
  r.target = head.substr(start, end == std::string_view::npos ? head.size() - start : end - start);
  return r;
}

namespace {

bool ascii_iequals(std::string_view a, std::string_view b) noexcept {
  const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [&](char x, char y) {
           return lower(x) == y;  // b is lower-case
         });
}

std::string_view trim_ows(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

// Whether the comma-separated list `value` holds `token` (case-insensitive).
bool has_token(std::string_view value, std::string_view token) noexcept {
  while (!value.empty()) {
    const std::size_t comma = value.find(',');
    if (ascii_iequals(trim_ows(value.substr(0, comma)), token)) {
      return true;
    }
    value = comma == std::string_view::npos ? std::string_view{} : value.substr(comma + 1);
  }
  return false;
}

}  // namespace

bool wants_close(std::string_view head) noexcept {
  std::size_t nl = head.find('\n');
  const std::string_view line = trim_ows(head.substr(0, nl));
  const bool http10 = line.ends_with(" HTTP/1.0");
  bool close = false;
  bool keep_alive = false;
  while (nl != std::string_view::npos) {
    head.remove_prefix(nl + 1);
    nl = head.find('\n');
    const std::string_view field = head.substr(0, nl);
    const std::size_t colon = field.find(':');
    if (colon != std::string_view::npos && ascii_iequals(field.substr(0, colon), "connection")) {
      const std::string_view value = field.substr(colon + 1);
      close = close || has_token(value, "close");
      keep_alive = keep_alive || has_token(value, "keep-alive");
    }
  }
  return close || (http10 && !keep_alive);
}

void format_response(const Answer& a, bool head, bool close, std::string& out) {
  std::string_view status;
  std::string_view body;
  switch (a.kind) {
    case Answer::Kind::KeyAuthorization:
      status = "200 OK";
      body = a.body;
      break;
    case Answer::Kind::NotFound:
      status = "404 Not Found";
      body = "not found\n";
      break;
    case Answer::Kind::Redirect:
      status = "302 Found";
      break;
    case Answer::Kind::Unavailable:
      status = "503 Service Unavailable";
      body = "unavailable\n";
      break;
  }
  out.assign("HTTP/1.1 ").append(status).append("\r\n");
  if (a.kind == Answer::Kind::Redirect) {
    out.append("Location: ").append(a.location).append("\r\n");
  }
  if (!body.empty()) {
    out.append("Content-Type: text/plain\r\n");
  }
  if (close) {
    out.append("Connection: close\r\n");
  }
  out.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n\r\n");
  if (!head) {
    out.append(body);
  }
}

}  // namespace acmegw::backends
