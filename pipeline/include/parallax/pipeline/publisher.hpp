#pragma once

// The publisher: deltas, alerts, identity changes and events, live, on a
// ZeroMQ PUB socket (schemas/README.md, "Published messages", documents
// what subscribers receive; `parallax tail` is one).
//
// publish() never blocks. Each subscriber gets a queue of
// `parallax.publisher.high-water-mark` messages; when the queue of a
// subscriber that wants a message is full, the message is dropped for every
// subscriber and counted (ZMQ_XPUB_NODROP plus ZMQ_DONTWAIT: the send fails
// with EAGAIN instead of ZeroMQ dropping silently per subscriber). A dropped
// message keeps its sequence number, so subscribers see the gap.
//
// Self-metrics (component "publisher"): published_total, dropped_total,
// errors_total{reason="invalid_message"|"send"}.
//
// Caveats:
// - Thread safety: publish() may be called from any thread. An internal
//   mutex serialises the socket; holding it is the full memory barrier that
//   ZeroMQ requires when a socket changes threads. Each call holds it for
//   one encoding and one non-blocking send.
// - The ZeroMQ context must outlive the publisher.
// - PUB/SUB: a subscriber receives only what is published after its
//   subscription reached the socket (a few ms after it connects).
//
// Events (`event.<sourcetype>`) would be every stored event, so they are
// published only while some subscriber has subscribed to a prefix that
// starts with `event.` (`event.` for all of them, `event.os:auth` for one
// sourcetype): the socket is an XPUB, and wants_event() reads the
// subscriptions it reports. A subscriber to everything ("") gets events
// only while someone else asks for them.

#include "parallax/pipeline/config.hpp"
#include "parallax/pipeline/metrics.hpp"
#include "parallax/pipeline/string_map.hpp"
#include "parallax/pipeline/zmq.hpp"
#include "parallax/schemas/error.hpp"
#include "parallax/schemas/event.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <string_view>

namespace parallax {

/// What publish() did with a message.
enum class publish_status : std::uint8_t {
  sent,    ///< queued for every subscriber that wants it
  dropped, ///< a subscriber's queue was full (or the send failed); counted
  invalid, ///< topic or fields break the format's rules; counted, no sequence used
  off,     ///< the publisher is off (empty endpoint); nothing counted
};

class publisher {
public:
  /// Binds a PUB socket at `cfg.endpoint` (tcp://127.0.0.1:0 picks a free
  /// port), or fails with the reason (address in use, bad endpoint). An
  /// empty endpoint gives a publisher that is off: publish() returns `off`.
  /// Counters go to `metrics` when given (it must outlive the publisher).
  static result<std::unique_ptr<publisher>>
  start(zmq::context& ctx, const publisher_config& cfg,
        metrics_registry* metrics = nullptr);

  publisher(const publisher&) = delete;
  publisher& operator=(const publisher&) = delete;
  ~publisher();

  /// Publishes one message on `topic` about event time `time`. Never blocks.
  /// The topic must be 1-256 bytes of UTF-8; field names non-empty, at most
  /// 256 bytes of UTF-8 and unique; at most 256 fields (else `invalid`).
  publish_status publish(std::string_view topic, time_ns time,
                         std::span<const field> fields);

  /// publish() for fields that are views. With `names_checked` the caller
  /// vouches that the field names pass valid_field_names (its own
  /// literals, which its tests check): that check is skipped; the topic,
  /// the number of fields and string sizes are checked as ever.
  publish_status publish_view(std::string_view topic, time_ns time,
                              std::span<const field_view> fields,
                              bool names_checked = false);

  /// True if a subscriber asked for events on `topic` (`event.<sourcetype>`)
  /// with a prefix of it that starts with `event.`. Subscriptions are read
  /// from the socket at most every 50 ms. Thread-safe.
  bool wants_event(std::string_view topic);

  /// True if any subscriber asked for events of any sourcetype.
  bool wants_events();

  /// Publishes each event on `event.<sourcetype>` that a subscriber asked
  /// for (wants_event), as schemas/README.md's "Fields of an event" says:
  /// its fields (the first of a repeated name; at most 252) plus `_index`,
  /// `_host`, `_source`, `_raw`. Returns how many were published.
  std::size_t publish_events(std::span<const event_view> events);

  /// False when the endpoint was empty.
  bool enabled() const noexcept {
    return static_cast<bool>(socket_);
  }

  /// This start's publisher id (16 random hex digits).
  const std::string& id() const noexcept {
    return id_;
  }

  /// The bound endpoint with the port resolved; empty when off.
  const std::string& endpoint() const noexcept {
    return endpoint_;
  }

  std::uint64_t published() const noexcept {
    return published_->value();
  }
  std::uint64_t dropped() const noexcept {
    return dropped_->value();
  }

private:
  publisher() = default;

  std::string id_;
  std::string endpoint_;
  std::unique_ptr<zmq::socket> socket_;
  std::mutex mtx_;
  std::string body_;                                       // reused buffer
  string_map<std::uint64_t> next_; // per topic: the next sequence number
  std::set<std::string, std::less<>> event_subs_; // event.* prefixes
  std::chrono::steady_clock::time_point subs_read_{};
  void read_subscriptions(); // with mtx_ held
  template <class Field>
  publish_status publish_fields(std::string_view topic, time_ns time,
                                std::span<const Field> fields,
                                bool names_checked);
  metrics_registry own_metrics_;                           // without `metrics`
  counter* published_ = nullptr;
  counter* dropped_ = nullptr;
  counter* invalid_ = nullptr;
  counter* send_errors_ = nullptr;
};

} // namespace parallax
