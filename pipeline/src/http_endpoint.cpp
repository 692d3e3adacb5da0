#include "parallax/pipeline/http_endpoint.hpp"

#include "parallax/pipeline/logging.hpp"

#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <httplib.h>

namespace parallax {

struct http_endpoint::impl {
  httplib::Server server;
  std::thread thread;
  std::mutex converter_mtx;
  collectd_converter converter;
};

namespace {

// "host:port", "[::1]:port" -> (host, port); nullopt when malformed.
std::optional<std::pair<std::string, int>> split_listen(std::string_view s) {
  auto colon = s.rfind(':');
  if (colon == std::string_view::npos || colon == 0)
    return std::nullopt;
  auto host = std::string{s.substr(0, colon)};
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  int port = 0;
  for (auto c : s.substr(colon + 1)) {
    if (c < '0' || c > '9')
      return std::nullopt;
    port = port * 10 + (c - '0');
    if (port > 65535)
      return std::nullopt;
  }
  if (colon + 1 == s.size())
    return std::nullopt;
  return std::pair{host, port};
}

} // namespace

result<std::unique_ptr<http_endpoint>>
http_endpoint::start(http_endpoint_options opts, source_sender& collectd,
                     metrics_registry& metrics) {
  auto hp = split_listen(opts.listen);
  if (!hp)
    return error{ec::config_bad_value,
                 fmt::format("http: listen address \"{}\" is not host:port",
                             opts.listen)};
  std::unique_ptr<http_endpoint> ep{new http_endpoint};
  ep->impl_ = std::make_unique<impl>();
  auto& srv = ep->impl_->server;
  auto* state = ep->impl_.get();
  auto& requests = metrics.get("http", "requests_total");
  auto& refused = metrics.get("http", "requests_refused_total");
  auto& collectd_events = metrics.get("http", "collectd_events_total");
  srv.set_payload_max_length(opts.max_body_bytes);
  auto token = opts.token;
  srv.set_pre_routing_handler([token, &requests, &refused](
                                const httplib::Request& req,
                                httplib::Response& res) {
    requests.add();
    if (token.empty())
      return httplib::Server::HandlerResponse::Unhandled;
    if (req.get_header_value("Authorization") == "Bearer " + token)
      return httplib::Server::HandlerResponse::Unhandled;
    refused.add();
    res.status = 401;
    res.set_header("WWW-Authenticate", "Bearer");
    res.set_content("missing or wrong bearer token\n", "text/plain");
    return httplib::Server::HandlerResponse::Handled;
  });
  srv.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  auto ack_timeout = opts.ack_timeout;
  srv.Post("/collectd", [state, &collectd, &refused, &collectd_events,
                         ack_timeout](const httplib::Request& req,
                                      httplib::Response& res) {
    result<std::vector<event>> events = std::vector<event>{};
    {
      std::lock_guard lock{state->converter_mtx};
      events = state->converter.convert(req.body, now_ns());
    }
    if (!events) {
      refused.add();
      log::warning("http", "POST /collectd from {}: {}", req.remote_addr,
                   events.error().message);
      res.status = 400;
      res.set_content(events.error().message + "\n", "text/plain");
      return;
    }
    auto n = events->size();
    auto done = collectd.submit(std::move(*events));
    if (done.wait_for(ack_timeout + std::chrono::seconds{1})
        != std::future_status::ready) {
      res.status = 503;
      res.set_content("the store did not acknowledge in time\n", "text/plain");
      return;
    }
    if (auto err = done.get()) {
      res.status = 503;
      res.set_content(err.message + "\n", "text/plain");
      return;
    }
    collectd_events.add(n);
    res.set_content(fmt::format("stored {} events\n", n), "text/plain");
  });
  int port = hp->second;
  if (port == 0)
    port = srv.bind_to_any_port(hp->first);
  else if (!srv.bind_to_port(hp->first, port))
    port = -1;
  if (port <= 0)
    return error{ec::system_error,
                 fmt::format("http: cannot listen on {} (address in use or "
                             "not local?)",
                             opts.listen)};
  ep->port_ = port;
  ep->impl_->thread = std::thread{[state] { state->server.listen_after_bind(); }};
  return ep;
}

http_endpoint::~http_endpoint() {
  stop();
}

void http_endpoint::stop() {
  if (!impl_)
    return;
  impl_->server.stop();
  if (impl_->thread.joinable())
    impl_->thread.join();
}

} // namespace parallax
