#pragma once

// The collector: the ZeroMQ ingest endpoint.
//
// A ROUTER socket accepts one batch frame per message from DEALER clients.
// Each frame is decoded and validated here; a bad one is answered at once
// with a typed rejection and touches nothing else. A good one goes to the
// indexer (anon_send), whose reply after the commit comes back over an inproc
// PUSH/PULL pair and is routed to the client.
//
// Backpressure: the collector counts the bytes of frames sent to the indexer
// and not yet answered. Above parallax.collector.max-inflight-bytes (the
// credit) it takes no more frames; clients see slower acks. Agents'
// periodic batches should not wait behind a bulk sender's backlog (their
// deltas are live), so while the credit is spent the collector still reads:
// a frame of at most parallax.collector.live-frame-bytes from a client with
// nothing parked is taken from a reserve of an eighth of the credit; any
// other frame is parked, in arrival order, until the credit allows (a
// client's frames keep their order; a frame beyond the wire limit is
// rejected at once). Once a credit's worth is parked (each frame counted at
// least 256 bytes), or the reserve is spent, it stops reading: ZeroMQ's
// receive high-water mark and TCP flow control then slow the clients down.
// Memory held: the credit (overshot by at most one frame), the reserve, and
// up to a credit of parked frames (overshot by at most one frame).
// Left: an agent's frame that finds the reserve spent is parked, and so
// are its later ones, behind the bulk frames parked before it.
//
// Caveats: the sockets belong to the collector's own thread (it is a socket
// poller, not a scheduled actor). `start` binds before returning, so a bad
// endpoint is reported to the caller; `stop` joins the thread.

#include "parallax/pipeline/actors.hpp"
#include "parallax/pipeline/defaults.hpp"
#include "parallax/pipeline/metrics.hpp"
#include "parallax/pipeline/zmq.hpp"
#include "parallax/schemas/error.hpp"
#include "parallax/schemas/wire.hpp"

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

namespace parallax {

struct collector_config {
  std::string endpoint;                    ///< e.g. tcp://127.0.0.1:7400
  /// Where the indexer sends replies; an inproc endpoint unique in the
  /// process (zmq::unique_inproc_endpoint). The indexer may connect first.
  std::string reply_endpoint;
  wire::limits limits;
  std::uint64_t max_inflight_bytes = defaults::collector_max_inflight_bytes;
  /// Frames up to this size keep flowing while the credit is spent (see
  /// above); 0: none do, the collector stops reading at the credit.
  std::uint64_t live_frame_bytes = defaults::collector_live_frame_bytes;
  std::chrono::milliseconds max_future{std::chrono::hours{24}};
  zmq::context* zmq = nullptr;             ///< must outlive the collector
  metrics_registry* metrics = nullptr;     ///< must outlive the collector
  ingest_sink next; ///< the parser (or the indexer directly)
};

class collector {
public:
  /// Binds both endpoints and starts the polling thread.
  static result<std::unique_ptr<collector>> start(collector_config cfg);

  ~collector();

  /// Stops reading and joins the thread. Idempotent.
  void stop();

  /// The bound endpoint (with the real port if the configured one was 0).
  const std::string& endpoint() const noexcept {
    return bound_;
  }


private:
  collector() = default;
  void run();

  collector_config cfg_;
  std::string bound_;
  std::unique_ptr<zmq::socket> router_;
  std::unique_ptr<zmq::socket> replies_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

} // namespace parallax
