// `parallax search`: a query over the store, read directly from the data
// directory (read-only, beside a running server) or through a server's
// search endpoint (docs/search.md).

#include "commands.hpp"

#include "parallax/actors/search.hpp"
#include "parallax/pipeline/query_config.hpp"
#include "parallax/pipeline/query_protocol.hpp"
#include "parallax/pipeline/search.hpp"
#include "parallax/pipeline/zmq.hpp"
#include "parallax/storage/environment.hpp"
#include "parallax/storage/store.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <thread>

#include <fmt/format.h>
#include <zmq.h>

namespace parallax::tools {

namespace {

namespace proto = search::protocol;
using namespace std::chrono_literals;

// "2026-11-25T10:00:01Z", with milliseconds when the time has them.
std::string rfc3339(double seconds) {
  auto ms = static_cast<std::int64_t>(std::llround(seconds * 1000.0));
  auto secs = ms / 1000;
  auto frac = ms % 1000;
  if (frac < 0) {
    frac += 1000;
    --secs;
  }
  std::time_t tt = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  auto base = fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                          tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                          tm.tm_hour, tm.tm_min, tm.tm_sec);
  return frac ? fmt::format("{}.{:03}Z", base, frac) : base + "Z";
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos)
    return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"')
      out += '"';
    out += c;
  }
  return out + "\"";
}

bool is_default_field(std::string_view name) {
  return name == "_time" || name == "_raw" || name == "host"
         || name == "sourcetype" || name == "source" || name == "index";
}

// Prints rows as they come, in one of the three formats. Events (rows with
// a time or raw text) go out at once in table and json formats; tables and
// CSV need every row first (column widths, the header).
class printer {
public:
  explicit printer(std::string format) : format_{std::move(format)} {
  }

  void add(const std::vector<search::row>& rows, bool events) {
    for (const auto& r : rows) {
      if (format_ == "json") {
        std::fputs(proto::row_json(r).c_str(), stdout);
        std::fputc('\n', stdout);
      } else if (format_ == "table" && events
                 && (r.get("_time") || r.get("_raw"))) {
        print_event(r);
      } else {
        held_.push_back(r);
      }
    }
    std::fflush(stdout);
  }

  void done() {
    if (held_.empty())
      return;
    auto columns = search::columns_of(held_);
    if (format_ == "csv") {
      std::string line;
      for (const auto& c : columns)
        line += (line.empty() ? "" : ",") + csv_field(c);
      fmt::print("{}\n", line);
      for (const auto& r : held_) {
        line.clear();
        for (std::size_t i = 0; i < columns.size(); ++i) {
          auto v = r.get(columns[i]);
          line += (i ? "," : "") + csv_field(v ? search::to_text(*v) : "");
        }
        fmt::print("{}\n", line);
      }
    } else {
      print_table(columns);
    }
    std::fflush(stdout);
    held_.clear();
  }

private:
  // time host sourcetype, then the raw text or the fields as k=v.
  void print_event(const search::row& r) {
    std::string line;
    auto t = r.get("_time");
    auto n = t ? search::to_number(*t) : std::nullopt;
    line = n ? rfc3339(*n) : (t ? search::to_text(*t) : std::string{"-"});
    for (auto name : {"host", "sourcetype"}) {
      auto v = r.get(name);
      line += ' ';
      line += v ? search::to_text(*v) : "-";
    }
    auto raw = r.get("_raw");
    if (raw && !search::to_text(*raw).empty()) {
      line += ' ';
      line += search::to_text(*raw);
    } else {
      for (const auto& [name, v] : r.cells) {
        if (is_default_field(name) || std::holds_alternative<std::monostate>(v))
          continue;
        auto text = search::to_text(v);
        bool quote = text.empty()
                     || text.find_first_of(" \t\"") != std::string::npos;
        line += fmt::format(" {}={}", name,
                            quote ? fmt::format("\"{}\"", text) : text);
      }
    }
    std::fputs(line.c_str(), stdout);
    std::fputc('\n', stdout);
  }

  void print_table(const std::vector<std::string>& columns) {
    std::vector<std::size_t> width(columns.size());
    std::vector<bool> numeric(columns.size(), true);
    std::vector<std::vector<std::string>> cells;
    for (std::size_t i = 0; i < columns.size(); ++i)
      width[i] = columns[i].size();
    for (const auto& r : held_) {
      auto& out = cells.emplace_back();
      for (std::size_t i = 0; i < columns.size(); ++i) {
        auto v = r.get(columns[i]);
        out.push_back(v ? search::to_text(*v) : "");
        if (v && !std::holds_alternative<double>(*v)
            && !std::holds_alternative<std::monostate>(*v))
          numeric[i] = false;
        width[i] = std::max(width[i], out.back().size());
      }
    }
    auto emit = [&](const std::vector<std::string>& vals) {
      std::string line;
      for (std::size_t i = 0; i < vals.size(); ++i) {
        if (i)
          line += "  ";
        auto pad = std::string(width[i] - std::min(width[i], vals[i].size()),
                               ' ');
        line += numeric[i] ? pad + vals[i]
                           : (i + 1 == vals.size() ? vals[i] : vals[i] + pad);
      }
      fmt::print("{}\n", line);
    };
    emit(columns);
    std::vector<std::string> rule;
    for (auto w : width)
      rule.emplace_back(w, '-');
    emit(rule);
    for (const auto& c : cells)
      emit(c);
  }

  std::string format_;
  std::vector<search::row> held_;
};

void print_stats(const search::counters& c, std::size_t rows,
                 std::chrono::steady_clock::duration took) {
  fmt::print(stderr,
             "{} rows in {:.3f} s; buckets: {} in range, {} from tuple "
             "counts, {} from rollups, {} through the index, {} scanned; "
             "events: {} read, {} matched\n",
             rows, std::chrono::duration<double>(took).count(), c.buckets,
             c.buckets_from_tuples, c.buckets_from_rollups,
             c.buckets_from_postings,
             c.buckets_scanned, c.events_read, c.events_matched);
}

// Exit code and message for a failed query.
int report(const search_args& args, const error& e) {
  if (e.code == ec::bad_query) {
    fmt::print(stderr, "parallax search: bad query\n{}\n",
               search::render_error(args.query, e));
    return 2;
  }
  fmt::print(stderr, "parallax search: {}\n", e.message);
  return e.code == ec::usage ? 2 : 1;
}

int run_direct(const search_args& args, const config& cfg) {
  // Read-only: works beside a running server (LMDB readers never block the
  // writer, and no lock is taken) and never creates anything.
  storage::environment_options eo;
  eo.read_only = true;
  eo.map_size = cfg.storage_map_size;
  auto env = storage::environment::open(cfg.data_dir / "store", eo);
  if (!env) {
    fmt::print(stderr, "parallax search: {}\n", env.error().message);
    return 1;
  }
  auto st = storage::store::open(*env, store_options_of(cfg));
  if (!st) {
    fmt::print(stderr, "parallax search: {}\n", st.error().message);
    return st.error().code == ec::config_bad_value ? 2 : 1;
  }
  auto now = now_ns();
  auto opts = search_options_of(cfg);
  for (auto [name, given, out] :
       {std::tuple{"--earliest", &args.earliest, &opts.earliest},
        std::tuple{"--latest", &args.latest, &opts.latest}}) {
    if (!*given)
      continue;
    auto t = search::parse_time(**given, now);
    if (!t) {
      fmt::print(stderr, "parallax search: {} {}: {}\n", name, **given,
                 t.error().message);
      return 2;
    }
    *out = *t;
  }
  if (args.limit)
    opts.max_results = static_cast<std::size_t>(
      std::min<std::uint64_t>(*args.limit, opts.max_results));
  opts.cancel = &stop_on_signals();
  printer out{args.format};
  std::size_t streamed = 0;
  // Rows are printed as they come only when they are certainly the first
  // rows of the result (the endpoint's rule, actors/search.hpp).
  auto q = search::parse(args.query, now);
  if (!q)
    return report(args, q.error());
  std::function<void(const std::vector<search::row>&)> on_rows;
  if (stream_cap(*q))
    on_rows = [&](const std::vector<search::row>& rows) {
      streamed += rows.size();
      out.add(rows, true);
    };
  auto t0 = std::chrono::steady_clock::now();
  auto res = search::run(*st, args.query, opts, now, on_rows);
  if (!res) {
    out.done();
    return report(args, res.error());
  }
  std::vector<search::row> rest(
    res->rows.begin()
      + static_cast<std::ptrdiff_t>(std::min(streamed, res->rows.size())),
    res->rows.end());
  out.add(rest, res->events);
  out.done();
  if (args.stats)
    print_stats(res->stats, res->rows.size(),
                std::chrono::steady_clock::now() - t0);
  return 0;
}

// One request to the endpoint; `on_reply` sees each reply and returns
// false once the conversation is over. Returns an exit code on failure.
std::optional<int>
converse(zmq::socket& sock, const std::string& endpoint,
         const proto::request& req, std::chrono::milliseconds timeout,
         const std::function<bool(const proto::reply&)>& on_reply) {
  auto text = proto::render_request(req);
  std::string_view parts[] = {text};
  if (auto err = sock.send(parts)) {
    fmt::print(stderr, "parallax search: cannot send to {}: {}\n", endpoint,
               err.message);
    return 1;
  }
  zmq::socket* socks[] = {&sock};
  const bool want[] = {true};
  const auto& stop = stop_on_signals();
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (stop.load())
      return 1;
    if (std::chrono::steady_clock::now() > deadline) {
      fmt::print(stderr, "parallax search: no answer from {} within {} s; "
                         "is `parallax serve` running with "
                         "parallax.search.endpoint set?\n",
                 endpoint, timeout.count() / 1000);
      return 1;
    }
    auto ready = zmq::poll_in(socks, want, 100ms);
    if (!ready || !(*ready)[0])
      continue;
    auto msg = sock.recv(true);
    if (!msg || msg->empty())
      continue;
    auto rep = proto::parse_reply(msg->back().view());
    if (!rep) {
      fmt::print(stderr, "parallax search: bad reply from {}: {}\n", endpoint,
                 rep.error().message);
      return 1;
    }
    // A reply resets the clock: a long result keeps streaming.
    deadline = std::chrono::steady_clock::now() + timeout;
    if (!on_reply(*rep))
      return std::nullopt;
  }
}

int run_remote(const search_args& args, const config& cfg) {
  auto endpoint = args.server.value_or(cfg.search.endpoint);
  if (endpoint.empty()) {
    fmt::print(stderr, "parallax search: no endpoint: give --server or set "
                       "parallax.search.endpoint\n");
    return 2;
  }
  zmq::context ctx;
  zmq::socket sock{ctx, ZMQ_DEALER};
  sock.set_int(ZMQ_LINGER, 0);
  if (auto err = sock.connect(endpoint)) {
    fmt::print(stderr, "parallax search: {}: {}\n", endpoint, err.message);
    return 2;
  }
  // The server bounds the query by parallax.search.timeout; wait a little
  // longer for its answer.
  auto timeout = cfg.search.timeout + 10s;
  printer out{args.format};
  auto t0 = std::chrono::steady_clock::now();
  std::size_t rows = 0;
  int code = 0;
  auto results = [&](const proto::reply& r) {
    if (r.type == "rows") {
      rows += r.rows.size();
      out.add(r.rows, r.events);
      return true;
    }
    if (r.type == "done") {
      out.done();
      if (args.stats)
        print_stats(r.stats, rows, std::chrono::steady_clock::now() - t0);
      return false;
    }
    if (r.type == "error") {
      out.done();
      code = report(args, r.err);
      return false;
    }
    return true; // running, job: not in this conversation
  };
  proto::request req;
  if (args.cancel) {
    req.op = "cancel";
    req.id = *args.cancel;
    auto failed = converse(sock, endpoint, req, timeout,
                           [&](const proto::reply& r) {
                             if (r.type == "error") {
                               fmt::print(stderr, "parallax search: {}\n",
                                          r.err.message);
                               code = 1;
                             } else {
                               fmt::print("cancelled {}\n", r.id);
                             }
                             return false;
                           });
    return failed ? *failed : code;
  }
  if (args.job) {
    // Fetch until the job is done, asking again while it runs.
    req.op = "fetch";
    req.id = *args.job;
    for (bool running = true; running;) {
      running = false;
      auto failed = converse(sock, endpoint, req, timeout,
                             [&](const proto::reply& r) {
                               if (r.type == "running") {
                                 running = true;
                                 return false;
                               }
                               return results(r);
                             });
      if (failed)
        return *failed;
      if (running)
        std::this_thread::sleep_for(200ms);
    }
    return code;
  }
  req.op = "search";
  req.query = args.query;
  req.earliest = args.earliest;
  req.latest = args.latest;
  req.limit = args.limit;
  req.async = args.async;
  if (args.async) {
    auto failed = converse(sock, endpoint, req, timeout,
                           [&](const proto::reply& r) {
                             if (r.type == "job")
                               fmt::print("{}\n", r.id);
                             else
                               return results(r);
                             return false;
                           });
    return failed ? *failed : code;
  }
  auto failed = converse(sock, endpoint, req, timeout, results);
  return failed ? *failed : code;
}

} // namespace

int run_search(const search_args& args) {
  auto cfg = load(args.cfg, "search");
  if (!cfg)
    return 2;
  if (args.query.empty() && !args.job && !args.cancel) {
    fmt::print(stderr, "parallax search: a QUERY is required (or --job ID, "
                       "--cancel ID); see parallax search --help\n");
    return 2;
  }
  if (args.server || args.async || args.job || args.cancel)
    return run_remote(args, *cfg);
  return run_direct(args, *cfg);
}

} // namespace parallax::tools
