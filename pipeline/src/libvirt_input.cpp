#include "parallax/pipeline/libvirt_input.hpp"

#include "parallax/pipeline/libvirt_poller.hpp"
#include "parallax/pipeline/logging.hpp"

#include <map>

namespace parallax {

namespace {

source_sender_options sender_options(const libvirt_input_options& o) {
  source_sender_options s;
  s.endpoint = o.endpoint;
  s.source_id = "libvirt";
  return s;
}

} // namespace

libvirt_input::libvirt_input(zmq::context& ctx, libvirt_input_options opts)
  : opts_{std::move(opts)}, sender_{ctx, sender_options(opts_)} {
  thread_ = std::thread{[this] { run(); }};
}

libvirt_input::~libvirt_input() {
  stop();
}

void libvirt_input::stop() {
  {
    std::lock_guard lock{mtx_};
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable())
    thread_.join();
  sender_.stop();
}

void libvirt_input::run() {
  std::map<std::string, std::unique_ptr<libvirt_poller>> pollers;
  std::map<std::string, bool> failing;
  auto next = std::chrono::steady_clock::now();
  for (;;) {
    std::vector<event> all;
    for (const auto& uri : opts_.uris) {
      auto& p = pollers[uri];
      error err;
      if (!p) {
        auto opened = libvirt_poller::open(uri);
        if (opened)
          p = std::move(*opened);
        else
          err = opened.error();
      }
      if (p) {
        auto events = p->poll(now_ns());
        if (events)
          std::move(events->begin(), events->end(), std::back_inserter(all));
        else
          err = events.error();
      }
      if (err && !failing[uri])
        log::warning("libvirt", "{} (retrying every {} ms)", err.message,
                     opts_.interval.count());
      else if (!err && failing[uri])
        log::info("libvirt", "{}: polling again", uri);
      failing[uri] = static_cast<bool>(err);
    }
    if (!all.empty()) {
      auto n = all.size();
      auto done = sender_.submit(std::move(all));
      if (auto err = done.get())
        log::warning("libvirt", "{} events not stored: {}", n, err.message);
    }
    polls_.fetch_add(1);
    next += opts_.interval;
    std::unique_lock lock{mtx_};
    if (cv_.wait_until(lock, next, [&] { return stopping_; }))
      return;
    // After a long stall, do not poll in a burst to catch up.
    if (next < std::chrono::steady_clock::now())
      next = std::chrono::steady_clock::now();
  }
}

} // namespace parallax
