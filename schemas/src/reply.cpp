#include "parallax/schemas/reply.hpp"

#include "parallax/schemas/wire.hpp"

#include "msgpack_out.hpp"

#include <msgpack.hpp>

namespace parallax::wire {

namespace {

constexpr std::string_view status_names[] = {"ack", "duplicate", "rejected",
                                             "failed"};

} // namespace

std::string_view to_string(reply_status s) noexcept {
  return status_names[static_cast<int>(s)];
}

void encode_reply(const reply& r, std::string& out) {
  detail::msgpack_out pk{out};
  pk.array(6);
  pk.str(to_string(r.status));
  pk.str(r.source_id);
  if (r.sequence)
    pk.uint(*r.sequence);
  else
    pk.nil();
  if (r.code != ec::none)
    pk.str(to_string(r.code));
  else
    pk.nil();
  if (r.code != ec::none || !r.message.empty())
    pk.str(r.message);
  else
    pk.nil();
  if (r.offset)
    pk.uint(*r.offset);
  else
    pk.nil();
}

result<reply> decode_reply(std::string_view frame) {
  // Replies are small and come from Parallax itself: msgpack-cxx's object
  // tree is fine here, with every type checked.
  msgpack::object_handle oh;
  try {
    oh = msgpack::unpack(frame.data(), frame.size());
  } catch (const std::exception& e) {
    return error{ec::not_msgpack, std::string{"reply: "} + e.what()};
  }
  const auto& o = oh.get();
  auto bad = [](std::string what) {
    return error{ec::wrong_type, "reply: " + what};
  };
  if (o.type != msgpack::type::ARRAY || o.via.array.size != 6)
    return bad("expected an array of 6 elements");
  const auto* a = o.via.array.ptr;
  auto str = [](const msgpack::object& x) -> std::optional<std::string> {
    if (x.type != msgpack::type::STR)
      return std::nullopt;
    return std::string{x.via.str.ptr, x.via.str.size};
  };
  reply r;
  auto status = str(a[0]);
  if (!status)
    return bad("status is not a string");
  bool known = false;
  for (int i = 0; i < 4; ++i)
    if (*status == status_names[i]) {
      r.status = static_cast<reply_status>(i);
      known = true;
    }
  if (!known)
    return bad("unknown status " + *status);
  auto src = str(a[1]);
  if (!src)
    return bad("source id is not a string");
  r.source_id = *src;
  if (a[2].type == msgpack::type::POSITIVE_INTEGER)
    r.sequence = a[2].via.u64;
  else if (a[2].type != msgpack::type::NIL)
    return bad("sequence is not an unsigned integer");
  if (auto c = str(a[3])) {
    for (int i = 0; i <= static_cast<int>(ec::last); ++i)
      if (to_string(static_cast<ec>(i)) == *c)
        r.code = static_cast<ec>(i);
    if (r.code == ec::none)
      r.code = ec::system_error; // a code this client does not know
  } else if (a[3].type != msgpack::type::NIL) {
    return bad("code is not a string");
  }
  if (auto m = str(a[4]))
    r.message = *m;
  else if (a[4].type != msgpack::type::NIL)
    return bad("message is not a string");
  if (a[5].type == msgpack::type::POSITIVE_INTEGER)
    r.offset = a[5].via.u64;
  else if (a[5].type != msgpack::type::NIL)
    return bad("offset is not an unsigned integer");
  return r;
}

} // namespace parallax::wire
