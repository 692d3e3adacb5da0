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

std::size_t string_bytes(const value& v) {
  auto s = std::get_if<std::string>(&v);
  return s ? s->size() : 0;
}

std::size_t string_bytes(const value_view& v) {
  auto s = std::get_if<std::string_view>(&v);
  return s ? s->size() : 0;
}

template <class Field>
bool valid(std::string_view topic, std::span<const Field> fields,
           bool names_checked) {
  publish::limits lim;
  if (!valid_name(topic) || fields.size() > lim.max_fields
      || (!names_checked && !valid_field_names(fields, lim.max_name_bytes)))
    return false;
  for (const auto& f : fields)
    if (string_bytes(f.value) > lim.max_string_bytes)
      return false;
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
  // XPUB: a PUB that also reports subscriptions (see wants_event).
  auto s = std::make_unique<zmq::socket>(ctx, ZMQ_XPUB);
  if (!s->handle())
    return error{ec::system_error, "publisher: cannot create an XPUB socket"};
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

void publisher::read_subscriptions() {
  auto now = std::chrono::steady_clock::now();
  if (now - subs_read_ < std::chrono::milliseconds{50})
    return;
  subs_read_ = now;
  // Each message is 1 (subscribe) or 0 (unsubscribe) and the prefix; XPUB
  // reports a prefix's first subscription and its last unsubscription.
  while (auto parts = socket_->recv(true)) {
    for (const auto& part : *parts) {
      auto v = part.view();
      if (v.empty() || (v[0] != 0 && v[0] != 1))
        continue;
      auto prefix = v.substr(1);
      if (!prefix.starts_with("event."))
        continue;
      if (v[0] == 1)
        event_subs_.emplace(prefix);
      else if (auto i = event_subs_.find(prefix); i != event_subs_.end())
        event_subs_.erase(i);
    }
  }
}

bool publisher::wants_events() {
  if (!socket_)
    return false;
  std::lock_guard lock{mtx_};
  read_subscriptions();
  return !event_subs_.empty();
}

bool publisher::wants_event(std::string_view topic) {
  if (!socket_)
    return false;
  std::lock_guard lock{mtx_};
  read_subscriptions();
  for (const auto& p : event_subs_)
    if (topic.starts_with(p))
      return true;
  return false;
}

publish_status publisher::publish(std::string_view topic, time_ns time,
                                  std::span<const field> fields) {
  return publish_fields(topic, time, fields, false);
}

publish_status publisher::publish_view(std::string_view topic, time_ns time,
                                       std::span<const field_view> fields,
                                       bool names_checked) {
  return publish_fields(topic, time, fields, names_checked);
}

template <class Field>
publish_status publisher::publish_fields(std::string_view topic, time_ns time,
                                         std::span<const Field> fields,
                                         bool names_checked) {
  if (!socket_)
    return publish_status::off;
  if (!valid(topic, fields, names_checked)) {
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

std::size_t publisher::publish_events(std::span<const event_view> events) {
  if (events.empty() || !wants_events())
    return 0;
  std::size_t n = 0;
  std::string topic;
  std::vector<field> fields;
  for (const auto& e : events) {
    topic.assign("event.");
    topic.append(e.sourcetype.empty() ? std::string_view{"unknown"}
                                      : e.sourcetype);
    if (!wants_event(topic))
      continue;
    fields.clear();
    auto add = [&](std::string_view name, value v) {
      for (const auto& f : fields)
        if (f.name == name)
          return;
      fields.push_back({std::string{name}, std::move(v)});
    };
    add("_index", std::string{e.index});
    add("_host", std::string{e.host});
    add("_source", std::string{e.source});
    if (e.raw)
      add("_raw", std::string{*e.raw});
    for (const auto& f : e.fields) {
      if (fields.size() >= 256)
        break;
      add(f.name, materialize(f.value));
    }
    if (publish(topic, e.time, fields) == publish_status::sent)
      ++n;
  }
  return n;
}

} // namespace parallax
