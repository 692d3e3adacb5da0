#pragma once

// The libvirt input of `parallax serve`: one thread that polls every
// configured URI each interval (libvirt_poller) and submits the events
// through a source_sender. A URI that cannot be reached is retried each
// interval; the failure is logged once, and its recovery too.

#include "parallax/pipeline/source_sender.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace parallax {

struct libvirt_input_options {
  std::vector<std::string> uris;
  std::chrono::milliseconds interval{20'000};
  std::string endpoint; ///< the collector's ingest endpoint
};

class libvirt_input {
public:
  libvirt_input(zmq::context& ctx, libvirt_input_options opts);
  ~libvirt_input(); ///< stops

  libvirt_input(const libvirt_input&) = delete;
  libvirt_input& operator=(const libvirt_input&) = delete;

  void stop();

  /// Completed polls (all URIs), for tests and metrics.
  std::uint64_t polls() const noexcept {
    return polls_.load();
  }

private:
  void run();

  libvirt_input_options opts_;
  source_sender sender_;
  std::mutex mtx_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::atomic<std::uint64_t> polls_{0};
  std::thread thread_;
};

} // namespace parallax
