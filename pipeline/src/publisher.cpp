#include "parallax/pipeline/publisher.hpp"

#include "parallax/schemas/publish.hpp"
#include "parallax/schemas/utf8.hpp"

#include <algorithm>
#include <random>

#include <fmt/format.h>
#include <zmq.h>

namespace parallax {

namespace {

// The decoder's limits: what a subscriber would reject is not sent.
bool valid_name(std::string_view s) {
  return !s.empty() && s.size() <= publish::limits{}.max_name_bytes
         && is_valid_utf8(s);
}

bool valid(std::string_view topic, std::span<const field> fields) {
  publish::limits lim;
  if (!valid_name(topic) || fields.size() > lim.max_fields)
    return false;
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (!valid_name(fields[i].name))
      return false;
    if (auto s = std::get_if<std::string>(&fields[i].value);
        s && s->size() > lim.max_string_bytes)
      return false;
    for (std::size_t j = 0; j < i; ++j)
      if (fields[j].name == fields[i].name)
        return false;
  }
  return true;
}

std::string random_id() {
  std::random_device rd;
  auto hi = static_cast<std::uint64_t>(rd());
  auto lo = static_cast<std::uint64_t>(rd());
  return fmt::format("{:016x}", (hi << 32) ^ lo);
}

} // namespace

result<std::unique_ptr<publisher>>
publisher::start(zmq::context& ctx, const publisher_config& cfg,
                 metrics_registry* metrics) {
  std::unique_ptr<publisher> p{new publisher};
  auto& reg = metrics ? *metrics : p->own_metrics_;
  p->published_ = &reg.get("publisher", "published_total");
  p->dropped_ = &reg.get("publisher", "dropped_total");
  p->invalid_ = &reg.get("publisher", "errors_total", "invalid_message");
  p->send_errors_ = &reg.get("publisher", "errors_total", "send");
  p->id_ = random_id();
  if (cfg.endpoint.empty())
    return p;
  auto s = std::make_unique<zmq::socket>(ctx, ZMQ_PUB);
  if (!s->handle())
    return error{ec::system_error, "publisher: cannot create a PUB socket"};
  auto hwm = static_cast<int>(
    std::min<std::uint64_t>(cfg.high_water_mark, 0x7fffffff));
  // Both before bind: they apply to the subscriber pipes created later.
  // NODROP makes a full pipe fail the send (EAGAIN with DONTWAIT) instead of
  // ZeroMQ's silent per-subscriber drop, so drops can be counted.
  if (auto err = s->set_int(ZMQ_SNDHWM, hwm))
    return error{err.code, "publisher: ZMQ_SNDHWM: " + err.message};
  if (auto err = s->set_int(ZMQ_XPUB_NODROP, 1))
    return error{err.code, "publisher: ZMQ_XPUB_NODROP: " + err.message};
  if (auto err = s->bind(cfg.endpoint))
    return error{err.code, "publisher: " + err.message};
  p->endpoint_ = s->last_endpoint();
  p->socket_ = std::move(s);
  return p;
}

publisher::~publisher() = default;

publish_status publisher::publish(std::string_view topic, time_ns time,
                                  std::span<const field> fields) {
  if (!socket_)
    return publish_status::off;
  if (!valid(topic, fields)) {
    invalid_->add();
    return publish_status::invalid;
  }
  std::lock_guard lock{mtx_};
  auto it = next_.find(topic);
  if (it == next_.end())
    it = next_.emplace(std::string{topic}, 1).first;
  // Taken before sending: a dropped message keeps its number (the gap).
  auto sequence = it->second++;
  body_.clear();
  publish::encode(id_, topic, sequence, time, fields, body_);
  std::string_view parts[] = {topic, body_};
  auto err = socket_->send(parts, true);
  if (!err) {
    published_->add();
    return publish_status::sent;
  }
  dropped_->add();
  if (err.message != "EAGAIN")
    send_errors_->add();
  return publish_status::dropped;
}

} // namespace parallax
