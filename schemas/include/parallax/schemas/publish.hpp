#pragma once

// Published messages: what Parallax publishes live for subscribers such as
// `parallax tail` -- hypervisor-minus-guest deltas, alerts, identity changes
// and (optionally) events. schemas/README.md, "Published messages",
// documents the format for clients in any language; this header is the C++
// contract.
//
// A message is two ZeroMQ frames: the topic (UTF-8 bytes; SUB sockets filter
// on its prefix) and a MessagePack body, an array of 6 elements:
//   [major version, publisher id, topic, sequence, time, fields]
//
// Caveats:
// - Decoding never throws and never reads outside the body. Every malformed
//   body yields an `error` with a code, a sentence and the byte offset.
// - The decoder does not see the topic frame: a subscriber compares the
//   frame with `published_message::topic` itself (`parallax tail` does).

#include "parallax/schemas/error.hpp"
#include "parallax/schemas/event.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace parallax::publish {

/// The body's format version. A decoder refuses another major version.
inline constexpr std::uint64_t major_version = 1;

/// Elements of the body array in version 1. A decoder skips elements after
/// these (reserved for compatible additions) and refuses fewer.
inline constexpr std::size_t message_elements = 6;

// -- topics -----------------------------------------------------------------

/// `delta.<vm>`: one hypervisor-minus-guest delta of one metric of one VM.
inline constexpr std::string_view delta_prefix = "delta.";
/// An alert about a VM's figures drifting from their baseline.
inline constexpr std::string_view alert_drift = "alert.drift";
/// An alert about a security exception (load no guest process explains, a
/// process the guest does not report, ...).
inline constexpr std::string_view alert_security = "alert.security";
/// Prefix of both alert topics.
inline constexpr std::string_view alert_prefix = "alert.";
/// A change in how hypervisor and guest identities are matched.
inline constexpr std::string_view identity_topic = "identity";
/// `event.<sourcetype>`: stored events, re-published as they arrive.
inline constexpr std::string_view event_prefix = "event.";

/// "delta.web-01".
std::string delta_topic(std::string_view vm);
/// The same into `out` (replacing what it held; its room is kept).
void delta_topic(std::string_view vm, std::string& out);
/// "event.os:auth".
std::string event_topic(std::string_view sourcetype);

/// What a topic carries, from its name.
enum class topic_kind : std::uint8_t { delta, alert, identity, event, other };
topic_kind kind_of(std::string_view topic) noexcept;

// -- field names per kind (schemas/README.md lists their types and units) ----

/// delta: vm, vm_uuid, metric, hv_value, guest_value, unit, abs_diff,
/// rel_diff, explained_share, window_start, window_end, host, correction.
inline constexpr std::array<std::string_view, 13> delta_fields = {
  "vm",       "vm_uuid",         "metric",       "hv_value",   "guest_value",
  "unit",     "abs_diff",        "rel_diff",     "explained_share",
  "window_start", "window_end",  "host",         "correction"};

/// alert: `unit` when there is a metric, the last three only when the
/// alert is about one process.
inline constexpr std::array<std::string_view, 16> alert_fields = {
  "id",       "vm",       "vm_uuid",      "kind",       "metric", "unit",
  "state",    "severity", "value",        "baseline",   "message",
  "window_start", "window_end", "process", "user",      "pid"};

/// identity.
inline constexpr std::array<std::string_view, 7> identity_fields = {
  "vm", "vm_uuid", "change", "keys", "confidence", "old", "new"};

/// Values of an alert's `severity` field, least severe first.
inline constexpr std::array<std::string_view, 3> severities = {
  "info", "warning", "critical"};
/// Values of an alert's `state` field.
inline constexpr std::array<std::string_view, 3> alert_states = {
  "open", "update", "resolved"};

/// The rank of a severity name in `severities` (info 0, warning 1,
/// critical 2), or -1 if it is none of them.
int severity_rank(std::string_view name) noexcept;

// -- messages ---------------------------------------------------------------

/// One published message, owning its data.
struct published_message {
  std::string publisher;      ///< random per publisher start
  std::string topic;          ///< same bytes as the topic frame
  std::uint64_t sequence = 0; ///< per (publisher, topic), from 1
  time_ns time = 0;           ///< the event time the message is about
  std::vector<field> fields;

  /// The first field called `name`, or nullptr.
  const parallax::value* find(std::string_view name) const noexcept;

  friend bool operator==(const published_message&,
                         const published_message&) = default;
};

/// Bounds the decoder enforces (the wire format's defaults).
struct limits {
  std::size_t max_body_bytes = 8u << 20;     ///< whole body
  std::size_t max_fields = 256;              ///< fields per message
  std::size_t max_string_bytes = 512u << 10; ///< string values
  std::size_t max_name_bytes = 256;          ///< publisher id, topic, field names
};

/// Appends the body of a message made of these parts to `out`. Strings and
/// integers take their shortest MessagePack form, floats always float 64.
void encode(std::string_view publisher, std::string_view topic,
            std::uint64_t sequence, time_ns time,
            std::span<const field> fields, std::string& out);
/// The same for fields that are views (a message the caller has not built
/// as owned fields: the correlator's deltas).
void encode(std::string_view publisher, std::string_view topic,
            std::uint64_t sequence, time_ns time,
            std::span<const field_view> fields, std::string& out);

/// Returns the body of `m`.
std::string encode(const published_message& m);

/// Decodes one body. Errors: the wire format's codes (schemas/README.md),
/// with the byte offset into the body.
result<published_message> decode(std::string_view body, const limits& lim = {});

} // namespace parallax::publish
