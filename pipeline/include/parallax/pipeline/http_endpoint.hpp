#pragma once

// The HTTP endpoint of `parallax serve` (parallax.http.*). It serves
//   POST /collectd   collectd write_http, Format "JSON" (collectd.hpp)
//   GET  /healthz    "ok"
//   GET  /api/...    the JSON API of docs/web.md (vm_view.hpp), when a
//                    store is given
//   GET  /api/stream the publisher's messages as server-sent events, when a
//                    publisher endpoint is given
//   GET  /, /*.html, /*.js, /*.css   the web app from `web_root`
//   GET  /vendor/uplot/*             web_root/node_modules/uplot/dist/*
// Bound to 127.0.0.1 by default; with parallax.http.token set, every
// request must carry `Authorization: Bearer TOKEN`, or, for GET requests,
// `?token=TOKEN` (the config refuses a non-loopback address without a
// token).
//
// Caveats: API requests read the store on the endpoint's threads (LMDB
// readers beside the writer). Each event stream holds one thread and one
// ZeroMQ SUB socket while its client is connected; at most
// `max_streams` run at once (more get 503). Streams end within about
// 250 ms of stop().
//
// A POST is answered 200 only after its events are acknowledged by the
// store (synced commit); 400 with the reason when the body is wrong (and
// nothing of it is stored); 503 when the store did not acknowledge in time.

#include "parallax/pipeline/collectd.hpp"
#include "parallax/pipeline/metrics.hpp"
#include "parallax/pipeline/search.hpp"
#include "parallax/pipeline/source_sender.hpp"
#include "parallax/schemas/error.hpp"

#include <chrono>
#include <memory>
#include <string>

namespace parallax::storage {
class store;
}

namespace parallax::zmq {
class context;
}

namespace parallax {

struct http_endpoint_options {
  std::string listen = "127.0.0.1:7480"; ///< host:port; port 0 picks one
  std::string token;                     ///< empty: no authentication
  std::size_t max_body_bytes = 8u << 20;
  std::chrono::milliseconds ack_timeout{10'000};
  /// The JSON API reads this store (readable from any thread; it must
  /// outlive the endpoint); nullptr: no /api routes but /api/stream.
  const storage::store* store = nullptr;
  /// Base options of the API's queries: the search-time schema and the
  /// bounds of parallax.search.* (search_options_of(cfg)).
  search::options search;
  /// The publisher /api/stream subscribes to; empty: no stream.
  std::string publisher_endpoint;
  /// The ZeroMQ context of the stream's sockets (must outlive the
  /// endpoint); nullptr: no stream.
  zmq::context* zmq = nullptr;
  /// Static files (the web app); empty: the source tree's web/ folder.
  std::string web_root;
  std::size_t max_streams = 16; ///< event streams at once
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
