#pragma once

// The HTTP endpoint of `parallax serve` (parallax.http.*). Today it serves
//   POST /collectd   collectd write_http, Format "JSON" (collectd.hpp)
//   GET  /healthz    "ok"
// Bound to 127.0.0.1 by default; with parallax.http.token set, every
// request must carry `Authorization: Bearer TOKEN` (the config refuses a
// non-loopback address without a token).
//
// A POST is answered 200 only after its events are acknowledged by the
// store (synced commit); 400 with the reason when the body is wrong (and
// nothing of it is stored); 503 when the store did not acknowledge in time.

#include "parallax/pipeline/collectd.hpp"
#include "parallax/pipeline/metrics.hpp"
#include "parallax/pipeline/source_sender.hpp"
#include "parallax/schemas/error.hpp"

#include <chrono>
#include <memory>
#include <string>

namespace parallax {

struct http_endpoint_options {
  std::string listen = "127.0.0.1:7480"; ///< host:port; port 0 picks one
  std::string token;                     ///< empty: no authentication
  std::size_t max_body_bytes = 8u << 20;
  std::chrono::milliseconds ack_timeout{10'000};
};

class http_endpoint {
public:
  /// Binds and starts serving on its own threads. `collectd` receives the
  /// events of /collectd; it and `metrics` must outlive the endpoint.
  static result<std::unique_ptr<http_endpoint>>
  start(http_endpoint_options opts, source_sender& collectd,
        metrics_registry& metrics);

  ~http_endpoint(); ///< stops
  http_endpoint(const http_endpoint&) = delete;
  http_endpoint& operator=(const http_endpoint&) = delete;

  /// The port actually bound.
  int port() const noexcept {
    return port_;
  }

  void stop();

private:
  struct impl;
  http_endpoint() = default;
  std::unique_ptr<impl> impl_;
  int port_ = 0;
};

} // namespace parallax
