#pragma once

// The ingest endpoint's answer to every batch frame (schemas/README.md,
// "Replies"): a MessagePack array of 6 elements
//   [status, source id, sequence | nil, code | nil, message | nil, offset | nil]

#include "parallax/schemas/error.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace parallax::wire {

enum class reply_status : std::uint8_t {
  ack,       ///< the batch is durably committed; do not resend
  duplicate, ///< (source id, sequence) was committed before; do not resend
  rejected,  ///< the batch is malformed or refused; resending will not help
  failed,    ///< the server could not store it now (e.g. full); resend later
};

std::string_view to_string(reply_status s) noexcept;

struct reply {
  reply_status status = reply_status::ack;
  std::string source_id;                ///< empty if the frame had none
  std::optional<std::uint64_t> sequence;///< absent if the frame had none
  ec code = ec::none;                   ///< for rejected and failed
  std::string message;                  ///< for rejected and failed
  std::optional<std::uint64_t> offset;  ///< byte offset for wire errors
};

/// Appends the encoding of `r` to `out`.
void encode_reply(const reply& r, std::string& out);

/// Decodes a reply frame.
result<reply> decode_reply(std::string_view frame);

/// Best effort: the source id and sequence of a frame that may be malformed,
/// so a rejection can name the batch. Empty/absent when unreadable.
struct envelope_peek {
  std::string source_id;
  std::optional<std::uint64_t> sequence;
};
envelope_peek peek_envelope(std::string_view frame) noexcept;

} // namespace parallax::wire
