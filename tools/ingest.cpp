#include "commands.hpp"

#include "parallax/pipeline/ingest_client.hpp"
#include "parallax/pipeline/sourcetypes.hpp"
#include "parallax/pipeline/zmq.hpp"
#include "parallax/schemas/utf8.hpp"
#include "parallax/schemas/wire.hpp"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include <fmt/format.h>
#include <unistd.h>

namespace parallax::tools {

namespace {

using clock_type = std::chrono::steady_clock;

std::string this_host() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0)
    return "localhost";
  return buf;
}

// "[=====>     ]  45%  123,456 events  98.1k/s  ETA 0:12"
void draw_progress(std::uint64_t done_bytes, std::uint64_t total_bytes,
                   std::uint64_t events, double seconds) {
  double frac = total_bytes ? static_cast<double>(done_bytes)
                                / static_cast<double>(total_bytes)
                            : 1.0;
  constexpr int width = 30;
  int filled = static_cast<int>(frac * width);
  std::string bar(static_cast<std::size_t>(filled), '=');
  if (filled < width)
    bar += '>';
  bar.resize(width, ' ');
  double rate = seconds > 0 ? static_cast<double>(events) / seconds : 0;
  double eta = frac > 0 && frac < 1 ? seconds * (1 - frac) / frac : 0;
  fmt::print(stderr, "\r[{}] {:3.0f}%  {} events  {:.1f}k/s  ETA {}:{:02}   ",
             bar, frac * 100, events, rate / 1000,
             static_cast<int>(eta) / 60, static_cast<int>(eta) % 60);
  std::fflush(stderr);
}

} // namespace

int run_ingest(const ingest_args& args) {
  auto cfg = load(args.cfg, "ingest");
  if (!cfg)
    return 2;
  if (args.files.empty()) {
    fmt::print(stderr, "parallax ingest: no files given\n");
    return 2;
  }
  if (args.sourcetype.empty()) {
    fmt::print(stderr, "parallax ingest: --sourcetype is required\n");
    return 2;
  }
  auto book = rulebook::make(cfg->sourcetypes);
  if (!book) {
    fmt::print(stderr, "parallax ingest: config: {}\n", book.error().message);
    return 2;
  }
  const auto& rules = book->find(args.sourcetype);
  std::uint64_t total_bytes = 0;
  for (const auto& f : args.files) {
    std::error_code ec;
    auto size = std::filesystem::file_size(f, ec);
    if (ec) {
      fmt::print(stderr, "parallax ingest: {}: {}\n", f, ec.message());
      return 1;
    }
    total_bytes += size;
  }
  zmq::context zctx;
  ingest_client_options copts;
  copts.endpoint = args.endpoint.empty() ? cfg->collector_endpoint
                                         : args.endpoint;
  copts.window = 16;
  copts.connect_timeout = std::chrono::seconds{std::min(10u, args.timeout)};
  auto client = ingest_client::connect(zctx, copts);
  if (!client) {
    fmt::print(stderr, "parallax ingest: {}\n", client.error().message);
    return 1;
  }
  // Check what the server would reject, before sending anything: names
  // must be valid UTF-8 within the wire limit; over-long events are cut.
  auto bad_name = [&](std::string_view what, std::string_view v) {
    if (v.size() > cfg->wire.max_name_bytes || !is_valid_utf8(v)) {
      fmt::print(stderr, "parallax ingest: {} \"{}\" is not valid UTF-8 of "
                         "at most {} bytes (parallax.wire.max-name-bytes)\n",
                 what, v, cfg->wire.max_name_bytes);
      return true;
    }
    return false;
  };
  if (bad_name("--sourcetype", args.sourcetype) || bad_name("--index", args.index)
      || (!args.host.empty() && bad_name("--host", args.host)))
    return 2;
  for (const auto& f : args.files)
    if (bad_name("the file path", std::filesystem::absolute(f).string()))
      return 2;
  std::uint64_t truncated = 0;
  std::vector<std::string> rejections;
  (*client)->on_rejected = [&](const wire::reply& r) {
    if (rejections.size() < 5)
      rejections.push_back(fmt::format("batch {}: {}: {}", r.sequence.value_or(0),
                                       to_string(r.code), r.message));
  };
  // A fresh source id per run: sequences restart at 1.
  std::random_device rd;
  auto host = args.host.empty() ? this_host() : args.host;
  wire::batch b;
  b.source_id = fmt::format("ingest-{}-{:08x}", host.substr(0, 64), rd());
  if (bad_name("the host name", host))
    return 2;
  const bool tty = ::isatty(STDERR_FILENO);
  auto t0 = clock_type::now();
  auto last_draw = t0;
  std::uint64_t done_bytes = 0, events = 0, batch_bytes = 0;
  std::string frame;
  auto flush = [&]() -> bool {
    if (b.events.empty())
      return true;
    ++b.sequence;
    frame.clear();
    wire::encode(b, frame);
    events += b.events.size();
    b.events.clear();
    batch_bytes = 0;
    if (auto err = (*client)->send(b.sequence, std::move(frame))) {
      fmt::print(stderr, "\nparallax ingest: {} (is `parallax serve` "
                         "running?)\n",
                 err.message);
      return false;
    }
    frame = std::string{};
    return true;
  };
  for (const auto& path : args.files) {
    std::ifstream in{path, std::ios::binary};
    if (!in) {
      fmt::print(stderr, "parallax ingest: cannot read {}\n", path);
      return 1;
    }
    auto source = std::filesystem::absolute(path).string();
    std::optional<event> current;
    auto finish = [&]() -> bool {
      if (!current)
        return true;
      if (current->raw->size() > cfg->wire.max_string_bytes) {
        current->raw->resize(cfg->wire.max_string_bytes); // as Splunk's TRUNCATE
        ++truncated;
      }
      batch_bytes += current->raw->size();
      b.events.push_back(std::move(*current));
      current.reset();
      if (b.events.size() >= 1000 || batch_bytes >= (1u << 20))
        return flush();
      return true;
    };
    for (std::string line; std::getline(in, line);) {
      done_bytes += line.size() + 1;
      if (!line.empty() && line.back() == '\r')
        line.pop_back();
      if (line.empty()) {
        if (current && rules.line_breaker)
          *current->raw += '\n'; // a blank line inside a multi-line event
        continue;
      }
      // One event per line, unless the sourcetype's line breaker says
      // which lines start an event (the others continue it).
      if (current && !rules.starts_event(line)) {
        *current->raw += '\n';
        *current->raw += line;
        continue;
      }
      if (!finish())
        return 1;
      current.emplace();
      current->time = unknown_time; // the server's parser extracts it
      current->index = args.index;
      current->host = host;
      current->source = source;
      current->sourcetype = args.sourcetype;
      current->raw = std::move(line);
      auto now = clock_type::now();
      if (tty && now - last_draw > std::chrono::milliseconds{200}) {
        draw_progress(done_bytes, total_bytes, events,
                      std::chrono::duration<double>(now - t0).count());
        last_draw = now;
      }
    }
    if (!finish())
      return 1;
  }
  if (!flush())
    return 1;
  if (auto err = (*client)->drain(std::chrono::seconds{args.timeout})) {
    fmt::print(stderr, "\nparallax ingest: {} (is `parallax serve` running "
                       "on {}?)\n",
               err.message, copts.endpoint);
    return 1;
  }
  auto secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  if (tty) {
    draw_progress(total_bytes, total_bytes, events, secs);
    fmt::print(stderr, "\n");
  }
  const auto& st = (*client)->stats();
  fmt::print("parallax ingest: {} events from {} files ({} bytes) in {:.2f} s "
             "({:.0f} events/s): {} batches acknowledged, {} duplicate, {} "
             "rejected\n",
             events, args.files.size(), total_bytes, secs,
             secs > 0 ? static_cast<double>(events) / secs : 0.0, st.acked,
             st.duplicates, st.rejected);
  if (truncated)
    fmt::print(stderr, "parallax ingest: {} events longer than {} bytes were "
                       "cut (parallax.wire.max-string-bytes)\n",
               truncated, cfg->wire.max_string_bytes);
  for (const auto& r : rejections)
    fmt::print(stderr, "parallax ingest: rejected {}\n", r);
  return st.rejected ? 1 : 0;
}

} // namespace parallax::tools
