#include "parallax/pipeline/http_endpoint.hpp"

#include "parallax/pipeline/logging.hpp"
#include "parallax/pipeline/query_protocol.hpp"
#include "parallax/pipeline/vm_view.hpp"
#include "parallax/pipeline/zmq.hpp"
#include "parallax/schemas/json.hpp"
#include "parallax/schemas/publish.hpp"

#include <atomic>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <zmq.h>

namespace parallax {

struct http_endpoint::impl {
  httplib::Server server;
  std::thread thread;
  std::mutex converter_mtx;
  collectd_converter converter;
  std::atomic<bool> stopping{false};
  std::atomic<std::size_t> streams{0};
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

using ojson = nlohmann::ordered_json;

std::string dump(const ojson& j) {
  return j.dump(-1, ' ', false, ojson::error_handler_t::replace);
}

// 400/404 with {"error":MESSAGE,"code":CODE} (and "column" for a query).
void fail(httplib::Response& res, int status, const error& e) {
  auto j = ojson::object();
  j["error"] = e.message;
  j["code"] = std::string{to_string(e.code)};
  if (e.code == ec::bad_query && e.offset != no_offset)
    j["column"] = e.offset;
  res.status = status;
  res.set_content(dump(j), "application/json");
}

void not_found(httplib::Response& res, std::string message) {
  auto j = ojson::object();
  j["error"] = std::move(message);
  j["code"] = "not_found";
  res.status = 404;
  res.set_content(dump(j), "application/json");
}

// A failed query: the request's fault (400) unless the engine failed.
void query_failed(httplib::Response& res, const error& e) {
  fail(res,
       e.code == ec::bad_query || e.code == ec::usage
           || e.code == ec::query_limit
         ? 400
         : 500,
       e);
}

// A time parameter (`-1h`, `now`, epoch seconds, RFC 3339), or `fallback`.
result<time_ns> time_param(const httplib::Request& req, const char* name,
                           time_ns fallback, time_ns now) {
  if (!req.has_param(name))
    return fallback;
  auto text = req.get_param_value(name);
  auto t = search::parse_time(text, now);
  if (!t)
    return error{ec::usage, fmt::format("{}={}: {}", name, text,
                                        t.error().message)};
  return *t;
}

result<std::size_t> count_param(const httplib::Request& req, const char* name,
                                std::size_t fallback, std::size_t max) {
  if (!req.has_param(name))
    return fallback;
  auto text = req.get_param_value(name);
  std::size_t n = 0;
  auto [end, ec_] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec_ != std::errc{} || end != text.data() + text.size() || n == 0
      || n > max)
    return error{ec::usage, fmt::format("{}={}: expected a whole number from "
                                        "1 to {}",
                                        name, text, max)};
  return n;
}

// earliest (default -1h), latest (default now), points (default 720).
result<vm_view::range> range_params(const httplib::Request& req, time_ns now) {
  auto earliest = time_param(req, "earliest", now - 3600 * 1'000'000'000LL, now);
  if (!earliest)
    return earliest.error();
  auto latest = time_param(req, "latest", now, now);
  if (!latest)
    return latest.error();
  auto points = count_param(req, "points", 720, 10'000);
  if (!points)
    return points.error();
  if (*earliest >= *latest)
    return error{ec::usage, "earliest must be before latest"};
  return vm_view::range{*earliest, *latest, *points};
}

// window (default -10m) as a negative offset from now.
result<time_ns> window_param(const httplib::Request& req, time_ns now) {
  auto t = time_param(req, "window", now - 600 * 1'000'000'000LL, now);
  if (!t)
    return t.error();
  if (*t >= now)
    return error{ec::usage, "window must lie in the past, e.g. -10m"};
  return *t - now;
}

std::string_view content_type_of(const std::filesystem::path& p) {
  auto ext = p.extension().string();
  if (ext == ".html")
    return "text/html; charset=utf-8";
  if (ext == ".js" || ext == ".mjs")
    return "text/javascript; charset=utf-8";
  if (ext == ".css")
    return "text/css; charset=utf-8";
  if (ext == ".json" || ext == ".map")
    return "application/json";
  if (ext == ".svg")
    return "image/svg+xml";
  if (ext == ".png")
    return "image/png";
  if (ext == ".ico")
    return "image/x-icon";
  return {};
}

// Serves root/rel when rel is a plain relative path (no `..`, no hidden
// parts) to a file of a known type; false otherwise.
bool serve_file(const std::filesystem::path& root, std::string_view rel,
                httplib::Response& res) {
  if (root.empty() || rel.empty() || rel.find('\0') != std::string_view::npos
      || rel.find('\\') != std::string_view::npos)
    return false;
  std::filesystem::path p{std::string{rel}};
  if (p.is_absolute())
    return false;
  for (const auto& part : p)
    if (part.empty() || part.string().front() == '.')
      return false; // `..`, `.`, hidden files
  auto type = content_type_of(p);
  if (type.empty())
    return false;
  auto full = root / p;
  std::error_code ec_;
  if (!std::filesystem::is_regular_file(full, ec_))
    return false;
  std::ifstream in{full, std::ios::binary};
  if (!in)
    return false;
  std::ostringstream body;
  body << in.rdbuf();
  res.set_content(body.str(), std::string{type});
  res.set_header("Cache-Control", "no-cache");
  return true;
}

// One published message as the stream's JSON.
std::string stream_json(const publish::published_message& m) {
  std::string out = "{\"topic\":";
  json::append_string(out, m.topic);
  fmt::format_to(std::back_inserter(out), ",\"seq\":{},\"time\":{}",
                 m.sequence, static_cast<double>(m.time) / 1e9);
  out += ",\"fields\":{";
  bool first = true;
  for (const auto& f : m.fields) {
    if (!first)
      out += ',';
    first = false;
    json::append_string(out, f.name);
    out += ':';
    json::append_value(out, view(f.value));
  }
  out += "}}";
  return out;
}

// A client's event stream: its own SUB socket, created and used only on
// the thread httplib runs the content provider on.
struct stream_state {
  zmq::socket sub;
  std::string vm;
  std::chrono::steady_clock::time_point last_write;
  std::atomic<std::size_t>* streams;
  stream_state(zmq::context& ctx, std::atomic<std::size_t>* n)
    : sub{ctx, ZMQ_SUB}, streams{n} {
  }
  ~stream_state() {
    streams->fetch_sub(1);
  }
};

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
  // Without TCP_NODELAY every answer on a kept-alive connection after the
  // first waited about 40 ms: its last short segment sat behind Nagle's
  // algorithm until the client's delayed ACK came (curl, 4 requests on one
  // connection: 23 ms, then 68-72 ms each). Browsers keep connections
  // alive, and server-sent events are many short writes.
  srv.set_tcp_nodelay(true);
  // Event streams hold a thread each while connected.
  auto threads = opts.max_streams + 8;
  srv.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  auto token = opts.token;
  srv.set_pre_routing_handler([token, &requests, &refused](
                                const httplib::Request& req,
                                httplib::Response& res) {
    requests.add();
    // Debian's cpp-httplib compresses with brotli at its highest quality
    // whenever a client accepts `br` (browsers do): 60 ms more for a day's
    // VM answer (40 KB) and 85 ms for uPlot's 51 KB, against 3-8 ms for
    // gzip. The request is rewritten to offer gzip only. httplib hands it
    // over as const but made it non-const, so changing it is defined.
    if (auto enc = req.get_header_value("Accept-Encoding");
        enc.find("br") != std::string::npos) {
      auto& headers = const_cast<httplib::Request&>(req).headers;
      headers.erase("Accept-Encoding");
      if (enc.find("gzip") != std::string::npos)
        headers.emplace("Accept-Encoding", "gzip");
    }
    if (token.empty())
      return httplib::Server::HandlerResponse::Unhandled;
    if (req.get_header_value("Authorization") == "Bearer " + token)
      return httplib::Server::HandlerResponse::Unhandled;
    // Pages and EventSource cannot set headers: GET may carry ?token=.
    if (req.method == "GET" && req.has_param("token")
        && req.get_param_value("token") == token)
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
  // -- the JSON API (docs/web.md) ------------------------------------------
  const auto* store = opts.store;
  auto base = opts.search;
  if (store) {
    srv.Get("/api/vms", [store, base](const httplib::Request& req,
                                      httplib::Response& res) {
      auto now = now_ns();
      auto window = window_param(req, now);
      if (!window)
        return fail(res, 400, window.error());
      auto f = vm_view::list_vms(*store, base, now, *window);
      if (!f)
        return query_failed(res, f.error());
      res.set_content(dump(vm_view::to_json(*f)), "application/json");
    });
    srv.Get(R"(/api/vm/([^/]+))", [store, base](const httplib::Request& req,
                                                httplib::Response& res) {
      auto now = now_ns();
      auto r = range_params(req, now);
      if (!r)
        return fail(res, 400, r.error());
      auto vm = req.matches[1].str();
      auto d = vm_view::vm_page(*store, base, now, vm, *r);
      if (!d)
        return query_failed(res, d.error());
      if (!*d)
        return not_found(res, fmt::format("no VM called {}", vm));
      res.set_content(dump(vm_view::to_json(**d)), "application/json");
    });
    srv.Get(R"(/api/vm/([^/]+)/process/([0-9]+))",
            [store, base](const httplib::Request& req,
                          httplib::Response& res) {
      auto now = now_ns();
      auto r = range_params(req, now);
      if (!r)
        return fail(res, 400, r.error());
      auto vm = req.matches[1].str();
      std::int64_t pid = 0;
      auto text = req.matches[2].str();
      std::from_chars(text.data(), text.data() + text.size(), pid);
      auto d = vm_view::process_page(*store, base, now, vm, pid, *r);
      if (!d)
        return query_failed(res, d.error());
      if (!*d)
        return not_found(res,
                         fmt::format("no process {} on VM {}", pid, vm));
      res.set_content(dump(vm_view::to_json(**d)), "application/json");
    });
    srv.Get("/api/process", [store, base](const httplib::Request& req,
                                          httplib::Response& res) {
      auto now = now_ns();
      auto name = req.get_param_value("name");
      if (name.empty())
        return fail(res, 400, error{ec::usage, "name= is required"});
      auto window = window_param(req, now);
      if (!window)
        return fail(res, 400, window.error());
      auto p = vm_view::process_fleet(*store, base, now, name, *window);
      if (!p)
        return query_failed(res, p.error());
      res.set_content(dump(vm_view::to_json(*p)), "application/json");
    });
    srv.Get("/api/search", [store, base](const httplib::Request& req,
                                         httplib::Response& res) {
      auto now = now_ns();
      auto q = req.get_param_value("q");
      if (q.empty())
        return fail(res, 400, error{ec::usage, "q= is required"});
      auto opts = base;
      auto earliest = time_param(req, "earliest", opts.earliest, now);
      if (!earliest)
        return fail(res, 400, earliest.error());
      auto latest = time_param(req, "latest", opts.latest, now);
      if (!latest)
        return fail(res, 400, latest.error());
      auto limit = count_param(req, "limit", opts.max_results,
                               opts.max_results);
      if (!limit)
        return fail(res, 400, limit.error());
      opts.earliest = *earliest;
      opts.latest = *latest;
      opts.max_results = *limit;
      auto r = search::run(*store, q, opts, now);
      if (!r)
        return query_failed(res, r.error());
      std::string out = "{\"columns\":";
      out += dump(ojson(r->columns));
      out += ",\"rows\":[";
      for (std::size_t i = 0; i < r->rows.size(); ++i) {
        if (i)
          out += ',';
        out += search::protocol::row_json(r->rows[i]);
      }
      out += "],\"events\":";
      out += r->events ? "true" : "false";
      out += ",\"stats\":";
      out += search::protocol::counters_json(r->stats);
      out += '}';
      res.set_content(out, "application/json");
    });
  }
  // -- server-sent events --------------------------------------------------
  if (!opts.publisher_endpoint.empty() && opts.zmq) {
    auto* zctx = opts.zmq;
    // A publisher bound to every interface is reached on loopback.
    auto endpoint = opts.publisher_endpoint;
    for (std::string_view any : {"://*:", "://0.0.0.0:"})
      if (auto at = endpoint.find(any); at != std::string::npos)
        endpoint.replace(at, any.size(), "://127.0.0.1:");
    auto max_streams = opts.max_streams;
    srv.Get("/api/stream", [state, zctx, endpoint, max_streams](
                             const httplib::Request& req,
                             httplib::Response& res) {
      if (state->streams.fetch_add(1) >= max_streams) {
        state->streams.fetch_sub(1);
        return fail(res, 503,
                    error{ec::usage, fmt::format("more than {} event streams",
                                                 max_streams)});
      }
      auto s = std::make_shared<stream_state>(*zctx, &state->streams);
      s->vm = req.get_param_value("vm");
      s->sub.set_int(ZMQ_LINGER, 0);
      std::vector<std::string> topics;
      for (std::size_t i = 0, n = req.get_param_value_count("topic"); i < n;
           ++i)
        topics.push_back(req.get_param_value("topic", i));
      // Not `event.` by default: subscribing to it makes the publisher
      // re-publish every stored event (as `parallax tail`'s default).
      if (topics.empty())
        topics = {std::string{publish::delta_prefix},
                  std::string{publish::alert_prefix},
                  std::string{publish::identity_topic}};
      for (const auto& t : topics)
        zmq_setsockopt(s->sub.handle(), ZMQ_SUBSCRIBE, t.data(), t.size());
      if (auto err = s->sub.connect(endpoint))
        return fail(res, 500, err);
      res.set_header("Cache-Control", "no-cache");
      res.set_header("X-Accel-Buffering", "no");
      // The socket was made on this thread; httplib calls the provider on
      // it too (the same connection's task).
      s->last_write = std::chrono::steady_clock::time_point{};
      res.set_chunked_content_provider(
        "text/event-stream",
        [s, state](std::size_t, httplib::DataSink& sink) {
          using namespace std::chrono_literals;
          if (state->stopping.load())
            return false;
          auto now = std::chrono::steady_clock::now();
          if (s->last_write == std::chrono::steady_clock::time_point{}) {
            // Opens the stream at once, so clients see it is connected.
            std::string hello = "retry: 2000\n: connected\n\n";
            s->last_write = now;
            return sink.write(hello.data(), hello.size());
          }
          zmq::socket* socks[] = {&s->sub};
          const bool want[] = {true};
          auto ready = zmq::poll_in(socks, want, 250ms);
          if (!ready)
            return false;
          std::string out;
          if (ready && (*ready)[0]) {
            for (int i = 0; i < 256; ++i) {
              auto parts = s->sub.recv(true);
              if (!parts)
                break;
              if (parts->size() != 2)
                continue;
              auto m = publish::decode((*parts)[1].view());
              if (!m || m->topic != (*parts)[0].view())
                continue;
              if (!s->vm.empty()) {
                auto v = m->find("vm");
                auto name = v ? std::get_if<std::string>(v) : nullptr;
                if (!name || *name != s->vm)
                  continue;
              }
              out += "event: ";
              out += m->topic;
              out += "\ndata: ";
              out += stream_json(*m);
              out += "\n\n";
            }
          }
          // A comment now and then finds clients that went away.
          if (out.empty() && now - s->last_write >= 10s)
            out = ": keepalive\n\n";
          if (out.empty())
            return !state->stopping.load();
          s->last_write = now;
          return sink.write(out.data(), out.size())
                 && !state->stopping.load();
        });
    });
  }
  // -- static files ----------------------------------------------------------
  {
    std::filesystem::path root{opts.web_root.empty() ? PARALLAX_WEB_ROOT
                                                     : opts.web_root};
    srv.Get("/", [root](const httplib::Request&, httplib::Response& res) {
      if (!serve_file(root, "index.html", res))
        not_found(res, "no index.html in the web root");
    });
    srv.Get(R"(/vendor/uplot/(.+))", [root](const httplib::Request& req,
                                            httplib::Response& res) {
      if (!serve_file(root / "node_modules" / "uplot" / "dist",
                      req.matches[1].str(), res))
        not_found(res, "no such file");
    });
    srv.Get(R"(/(.+\.(html|js|css)))", [root](const httplib::Request& req,
                                             httplib::Response& res) {
      auto rel = req.matches[1].str();
      if (rel.starts_with("node_modules/") || !serve_file(root, rel, res))
        not_found(res, "no such file");
    });
  }
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
  impl_->stopping.store(true);
  impl_->server.stop();
  if (impl_->thread.joinable())
    impl_->thread.join();
}

} // namespace parallax
