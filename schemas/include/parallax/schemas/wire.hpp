#pragma once

// The Parallax wire format: a versioned MessagePack batch envelope carrying
// events. schemas/README.md documents it field by field; this header is the
// C++ contract.
//
// Caveats:
// - A `batch_view` points into the frame it was decoded from. It keeps the
//   frame alive through the owner handle passed to `decode`, and it is
//   move-only: its events' field spans point into its own storage.
// - Decoding never throws and never reads outside the frame. Every malformed
//   input yields an `error` with a code, a sentence and the byte offset.

#include "parallax/schemas/error.hpp"
#include "parallax/schemas/event.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace parallax::wire {

/// The format version this code writes. A decoder accepts the same major
/// version and any minor version, as long as the batch uses no element that
/// the decoder's minor version does not know (see schemas/README.md).
inline constexpr std::uint64_t major_version = 1;
inline constexpr std::uint64_t minor_version = 0;

/// Number of elements of the batch array and of each event array in 1.0.
inline constexpr std::size_t batch_elements = 5;
inline constexpr std::size_t event_elements = 7;

/// Bounds that a receiver enforces. The defaults are the documented defaults
/// of the `parallax.wire.*` configuration options.
struct limits {
  std::size_t max_frame_bytes = 8u << 20;     ///< whole frame
  std::size_t max_events = 100'000;           ///< events per batch
  std::size_t max_fields = 256;               ///< fields per event
  std::size_t max_string_bytes = 512u << 10;  ///< raw text and string values
  std::size_t max_name_bytes = 256;           ///< field names, index, host, ...
};

/// An owning batch, as producers build it.
struct batch {
  std::string source_id;
  std::uint64_t sequence = 0;
  std::vector<event> events;
};

/// A decoded batch whose strings point into the frame. Move-only.
class batch_view {
public:
  batch_view() = default;
  batch_view(batch_view&&) noexcept = default;
  batch_view& operator=(batch_view&&) noexcept = default;
  batch_view(const batch_view&) = delete;
  batch_view& operator=(const batch_view&) = delete;

  std::uint64_t major() const noexcept {
    return major_;
  }
  std::uint64_t minor() const noexcept {
    return minor_;
  }
  std::string_view source_id() const noexcept {
    return source_id_;
  }
  std::uint64_t sequence() const noexcept {
    return sequence_;
  }
  std::span<const event_view> events() const noexcept {
    return events_;
  }
  /// Total number of fields over all events.
  std::size_t field_count() const noexcept {
    return fields_.size();
  }
  /// Size of the frame this batch was decoded from.
  std::size_t frame_bytes() const noexcept {
    return frame_bytes_;
  }

  /// Deep copy into an owning batch.
  batch materialize() const;

private:
  friend class decoder;
  std::shared_ptr<const void> owner_;
  std::uint64_t major_ = 0;
  std::uint64_t minor_ = 0;
  std::string_view source_id_;
  std::uint64_t sequence_ = 0;
  std::vector<event_view> events_;
  std::vector<field_view> fields_;
  std::size_t frame_bytes_ = 0;
};

/// Decodes one frame. `owner` keeps the bytes alive for the batch's lifetime
/// (pass nullptr if the caller guarantees that itself).
result<batch_view> decode(std::span<const std::byte> frame,
                          std::shared_ptr<const void> owner,
                          const limits& lim = {});

/// Decodes only the events whose index `keep` accepts; the others are
/// stepped over (their structure is walked, their content not checked) and
/// stay empty in the view. For frames this process wrote and checked
/// before, such as stored blocks, when a few events of many are wanted.
/// The caller keeps the bytes alive.
result<batch_view> decode_some(std::span<const std::byte> frame,
                               const std::function<bool(std::size_t)>& keep,
                               const limits& lim = {});

/// Decodes a frame held in a string, taking ownership of it.
result<batch_view> decode(std::string frame, const limits& lim = {});

/// Appends the encoding of `b` to `out`.
void encode(const batch& b, std::string& out);

/// Returns the encoding of `b`.
std::string encode(const batch& b);

/// A batch's encoding in two parts, for a sender that sends the same
/// events again under new sequence numbers (a load generator) or encodes
/// them before it knows when they leave: the envelope (source id,
/// sequence, number of events), then the events. encode_head() followed by
/// encode_events() appends what encode() does; `events` must be the number
/// of events encoded after the head (the frame is malformed otherwise).
void encode_head(std::string_view source_id, std::uint64_t sequence,
                 std::size_t events, std::string& out);
void encode_events(std::span<const event> events, std::string& out);

/// Appends the MessagePack encoding of one field value as this format writes
/// it: the shortest form for integers, always float 64 for floats (other
/// formats that carry Parallax values, such as the published messages of
/// publish.hpp, use it so a value's type never depends on the encoder).
void append_value(std::string& out, const value_view& v);

/// Appends the encoding of a batch made of event views (for re-encoding
/// decoded events without copying them into owning events first).
void encode(std::string_view source_id, std::uint64_t sequence,
            std::span<const event_view* const> events, std::string& out);

} // namespace parallax::wire
