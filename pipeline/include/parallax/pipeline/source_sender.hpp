#pragma once

// How sources that live inside `parallax serve` (the libvirt poller, the
// collectd HTTP endpoint) hand their events to the ingest path: through the
// collector's own endpoint, as any external client does. They get the same
// validation, acks after the synced commit and deduplication, and the same
// code runs unchanged when the source moves to another process or host.
//
// One thread owns the ingest_client. Events submitted while a batch is in
// flight are sent together as the next batch (group submission).
//
// Sequence numbers start at the wall clock in nanoseconds when the sender
// starts and grow by one per batch, so a restarted server process never
// reuses a (source id, sequence) pair that was stored before.

#include "parallax/pipeline/ingest_client.hpp"
#include "parallax/pipeline/zmq.hpp"
#include "parallax/schemas/event.hpp"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace parallax {

struct source_sender_options {
  std::string endpoint;  ///< the collector's ingest endpoint
  std::string source_id; ///< e.g. "libvirt:test:///default"
  /// How long one batch may wait for its ack before its submitters are told
  /// it failed (the client keeps resending it in the background).
  std::chrono::milliseconds ack_timeout{10'000};
  std::size_t max_events_per_batch = 5'000;
};

class source_sender {
public:
  source_sender(zmq::context& ctx, source_sender_options opts);
  ~source_sender(); ///< stops: see stop()

  source_sender(const source_sender&) = delete;
  source_sender& operator=(const source_sender&) = delete;

  /// Queues `events`; the future is ready once they are acknowledged (no
  /// error) or could not be (the error). Never blocks.
  std::future<error> submit(std::vector<event> events);

  /// Sends what is queued (waiting for acks up to the ack timeout), then
  /// ends the thread. Submissions after stop() fail at once.
  void stop();

  std::uint64_t events_acked() const noexcept {
    return acked_.load(std::memory_order_relaxed);
  }

private:
  struct job {
    std::vector<event> events;
    std::promise<error> done;
  };
  void run();

  zmq::context& ctx_;
  source_sender_options opts_;
  std::mutex mtx_;
  std::condition_variable cv_;
  std::deque<job> queue_;
  bool stopping_ = false;
  std::atomic<std::uint64_t> acked_{0};
  std::thread thread_;
};

} // namespace parallax
