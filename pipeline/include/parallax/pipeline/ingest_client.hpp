#pragma once

// A client of the ingest endpoint: sends batch frames over a DEALER socket,
// keeps up to `window` of them awaiting replies, resends what is not
// answered in time or answered `failed`, and forgets a batch only once it is
// acknowledged (ack or duplicate) or rejected. Because the server
// deduplicates by (source id, sequence), resending is always safe.
//
// Batches are first sent in sequence order: a batch that finds no
// connected server (a new socket connects asynchronously) waits to be tried
// again, and every later one waits behind it. The server needs this: an
// agent's first batch carries its identity, and the rest of its batches are
// attributed by it. (A batch lost with a dropped connection is resent after
// `resend_after`, behind later ones: order is kept on a new connection, not
// across a reconnect.)
//
// Caveats: one source id per client, sequences strictly increasing; the
// client and its socket belong to one thread.

#include "parallax/pipeline/zmq.hpp"
#include "parallax/schemas/error.hpp"
#include "parallax/schemas/reply.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <vector>

namespace parallax {

struct ingest_client_options {
  std::string endpoint = "tcp://127.0.0.1:7400";
  std::size_t window = 64; ///< batches awaiting a reply
  std::chrono::milliseconds resend_after{10'000};
  std::chrono::milliseconds retry_failed_after{1'000};
  /// With no connection to a server for this long, send and drain fail.
  std::chrono::milliseconds connect_timeout{10'000};
};

struct ingest_client_stats {
  std::uint64_t acked = 0;      ///< batches acknowledged
  std::uint64_t duplicates = 0; ///< batches the server had already
  std::uint64_t rejected = 0;   ///< batches refused (not resent)
  std::uint64_t failed = 0;     ///< `failed` replies (resent later)
  std::uint64_t resent = 0;     ///< resends after a timeout or failure
  /// Microseconds from send() taking a batch to its ack.
  std::vector<double> latencies_us;
};

class ingest_client {
public:
  static result<std::unique_ptr<ingest_client>>
  connect(zmq::context& ctx, ingest_client_options opts);

  /// Sends a frame whose envelope carries `sequence`; first waits (handling
  /// replies, resending) while the window is full, at most `max_wait`: a
  /// server that answers nothing or only `failed` for that long makes
  /// send fail, with the batch not sent.
  error send(std::uint64_t sequence, std::string frame,
             std::chrono::milliseconds max_wait = std::chrono::minutes{1});

  /// Waits until nothing is outstanding, or fails after `timeout`.
  error drain(std::chrono::milliseconds timeout);

  /// Batches taken by send() and not yet answered for good.
  std::size_t outstanding() const noexcept {
    return pending_.size();
  }

  const ingest_client_stats& stats() const noexcept {
    return stats_;
  }

  /// Called for every rejected batch.
  std::function<void(const wire::reply&)> on_rejected;

  /// Called with the sequence of every batch answered for good (ack,
  /// duplicate or rejected), after `on_rejected`.
  std::function<void(std::uint64_t)> on_done;

  /// Handles the replies that arrive within `wait`, resends what is due
  /// and sends what waited behind a batch not yet sent; takes no new batch.
  error poll(std::chrono::milliseconds wait) {
    return pump(wait);
  }

private:
  using clock = std::chrono::steady_clock;
  struct pending {
    std::string frame;
    clock::time_point first_sent;
    clock::time_point last_sent;
    clock::time_point retry_at;
    bool sent = false; ///< reached the socket at least once
  };

  ingest_client(zmq::socket s, ingest_client_options opts)
    : socket_{std::move(s)}, opts_{std::move(opts)} {
  }
  error pump(std::chrono::milliseconds wait);
  error transmit(pending& p);

  zmq::socket socket_;
  ingest_client_options opts_;
  std::map<std::uint64_t, pending> pending_;
  std::size_t unsent_ = 0; ///< batches in pending_ not yet sent once
  /// Since when every send found no connected server (ZMQ_IMMEDIATE).
  std::optional<clock::time_point> unreachable_since_;
  ingest_client_stats stats_;
};

} // namespace parallax
