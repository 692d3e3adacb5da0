#include "parallax/actors/collector.hpp"

#include "thread_priority.hpp"

#include "parallax/pipeline/logging.hpp"
#include "parallax/schemas/reply.hpp"

#include "parallax/pipeline/string_map.hpp"

#include <algorithm>
#include <deque>

#include <caf/send.hpp>
#include <fmt/format.h>
#include <zmq.h>

namespace parallax {

namespace {



// Keeps a received ZeroMQ message alive for as long as a batch views it.
struct frame_owner {
  zmq::message msg;
};

} // namespace

result<std::unique_ptr<collector>> collector::start(collector_config cfg) {
  if (!cfg.zmq || !cfg.metrics || !cfg.next
      || !cfg.reply_endpoint.starts_with("inproc://"))
    return error{ec::usage, "collector: zmq context, metrics, next stage and an "
                            "inproc reply endpoint are required"};
  std::unique_ptr<collector> c{new collector};
  c->cfg_ = std::move(cfg);
  c->router_ = std::make_unique<zmq::socket>(*c->cfg_.zmq, ZMQ_ROUTER);
  // Frames a little beyond the limit still get a typed rejection; a peer
  // sending far more than that is disconnected by ZeroMQ before we buffer it.
  auto max_msg = static_cast<std::int64_t>(c->cfg_.limits.max_frame_bytes) * 4
                 + 4096;
  if (auto err = c->router_->set_int64(ZMQ_MAXMSGSIZE, max_msg))
    return err;
  if (auto err = c->router_->set_int(ZMQ_RCVHWM, 64))
    return err;
  if (auto err = c->router_->bind(c->cfg_.endpoint))
    return error{ec::system_error,
                 fmt::format("parallax.collector.endpoint: {}", err.message)};
  c->bound_ = c->router_->last_endpoint();
  c->replies_ = std::make_unique<zmq::socket>(*c->cfg_.zmq, ZMQ_PULL);
  if (auto err = c->replies_->set_int(ZMQ_RCVHWM, 0)) // bounded by the credit
    return err;
  if (auto err = c->replies_->bind(c->cfg_.reply_endpoint))
    return err;
  c->thread_ = std::thread{[p = c.get()] { p->run(); }};
  return c;
}

collector::~collector() {
  stop();
}

void collector::stop() {
  stop_.store(true);
  if (thread_.joinable())
    thread_.join();
}

void collector::run() {
  detail::set_thread_name("plx-collector");
  auto& m = *cfg_.metrics;
  auto& received_batches = m.get("collector", "received_batches_total");
  auto& received_events = m.get("collector", "received_events_total");
  auto& received_bytes = m.get("collector", "received_bytes_total");
  auto& sent_events = m.get("collector", "sent_events_total");
  auto& acked = m.get("collector", "replies_total", "ack");
  auto& dups = m.get("collector", "replies_total", "duplicate");
  auto& failed = m.get("collector", "replies_total", "failed");
  auto& paused = m.get("collector", "backpressure_pauses_total");
  auto& live = m.get("collector", "live_frames_total");
  auto& parked_total = m.get("collector", "parked_frames_total");
  std::uint64_t inflight = 0;
  bool was_paused = false;
  std::string buf;
  zmq::socket* socks[] = {router_.get(), replies_.get()};
  auto reject = [&](std::string_view peer, std::string_view frame,
                    const error& err) {
    m.get("collector", "errors_total", to_string(err.code)).add();
    auto peek = wire::peek_envelope(frame);
    wire::reply r;
    r.status = wire::reply_status::rejected;
    r.source_id = peek.source_id;
    r.sequence = peek.sequence;
    r.code = err.code;
    r.message = err.message;
    if (err.offset != no_offset)
      r.offset = err.offset;
    buf.clear();
    wire::encode_reply(r, buf);
    std::string_view parts[] = {peer, buf};
    router_->send(parts, true); // a vanished peer loses its reply, nothing else
    log::debug("collector", "rejected a batch from {}: {}",
               peek.source_id.empty() ? "?" : peek.source_id, err.render());
  };
  // Decodes and validates a frame; passes it on, or rejects it.
  auto take = [&](std::string peer, std::shared_ptr<frame_owner> owner) {
    auto bytes = owner->msg.bytes();
    auto frame = owner->msg.view();
    auto batch = wire::decode(bytes, owner, cfg_.limits);
    if (!batch) {
      reject(peer, frame, batch.error());
      return;
    }
    // Times must be plausible: not before 1970, not beyond the allowed
    // clock skew. One bad time rejects the batch, naming the event.
    auto latest = now_ns() + to_ns(cfg_.max_future);
    auto events = batch->events();
    bool bad = false;
    for (std::size_t i = 0; i < events.size(); ++i) {
      for (const auto& f : events[i].fields)
        if (f.name.front() == '_') {
          reject(peer, frame,
                 error{ec::invalid_value,
                       fmt::format("event {}: field '{}': names starting "
                                   "with _ are reserved for Parallax",
                                   i, f.name)});
          bad = true;
          break;
        }
      if (bad)
        break;
      if (events[i].time == unknown_time)
        continue; // the parser works it out
      if (events[i].time < 0 || events[i].time > latest) {
        reject(peer, frame,
               error{ec::invalid_value,
                     fmt::format("event {}: time {} ns is {}; see "
                                 "parallax.collector.max-future",
                                 i, events[i].time,
                                 events[i].time < 0
                                   ? "before 1970"
                                   : "too far in the future")});
        bad = true;
        break;
      }
    }
    if (bad)
      return;
    received_events.add(events.size());
    sent_events.add(events.size());
    inflight += bytes.size();
    auto item = std::make_shared<ingest_item>();
    item->batch = std::move(*batch);
    item->peer = std::move(peer);
    item->bytes = bytes.size();
    item->times.received = now_ns();
    caf::anon_send(cfg_.next, ingest_atom::value, std::move(item));
  };
  // Frames read while the credit is spent and not taken at once, in the
  // order they came; a peer with one here has all its later ones here too.
  struct parked_frame {
    std::string peer;
    std::shared_ptr<frame_owner> owner;
  };
  std::deque<parked_frame> parked;
  std::uint64_t parked_bytes = 0;
  string_map<std::size_t> parked_per_peer;
  const auto live_bytes = cfg_.live_frame_bytes;
  const auto credit = cfg_.max_inflight_bytes;
  const auto reserve = live_bytes > 0 ? credit / 8 : 0;
  const auto park_limit = live_bytes > 0 ? credit : 0;
  // What a parked frame counts for: an empty one is not free to hold.
  auto parked_cost = [](const frame_owner& o) {
    return std::max<std::uint64_t>(o.msg.bytes().size(), 256);
  };
  auto unpark = [&] {
    auto f = std::move(parked.front());
    parked.pop_front();
    parked_bytes -= parked_cost(*f.owner);
    if (auto it = parked_per_peer.find(f.peer); --it->second == 0)
      parked_per_peer.erase(it);
    take(std::move(f.peer), std::move(f.owner));
  };
  // Whether the socket may be read: within the credit, or (live frames on)
  // with room to park and to take live frames beyond it.
  auto can_read = [&] {
    return inflight < credit
           || (parked_bytes < park_limit && inflight < credit + reserve);
  };
  while (!stop_.load(std::memory_order_relaxed)) {
    // What waited goes first, as the credit allows.
    while (!parked.empty() && inflight < credit)
      unpark();
    bool can_take = inflight < credit;
    if (!can_take && !was_paused)
      paused.add();
    was_paused = !can_take;
    bool want[] = {can_read(), true};
    auto ready = zmq::poll_in(socks, want, std::chrono::milliseconds{50});
    if (!ready) {
      log::error("collector", "{}", ready.error().message);
      break;
    }
    // Replies first: they free credit.
    while ((*ready)[1]) {
      auto parts = replies_->recv(true);
      if (!parts)
        break;
      if (parts->size() != 3)
        continue;
      auto peer = (*parts)[0].view();
      auto reply = (*parts)[1].view();
      auto b = (*parts)[2].view();
      std::uint64_t bytes = 0;
      for (auto c : b)
        bytes = (bytes << 8) | static_cast<unsigned char>(c);
      inflight -= std::min(inflight, bytes);
      // Byte 0 is the array header, 1 the status string header, 2 its
      // first letter: enough to count the reply by status.
      if (reply.size() > 2 && reply[2] == 'a')
        acked.add();
      else if (reply.size() > 2 && reply[2] == 'd')
        dups.add();
      else
        failed.add();
      std::string_view out[] = {peer, reply};
      router_->send(out, true);
    }
    if (!(*ready)[0])
      continue;
    // Drain what is waiting, within the credit: beyond it, small frames
    // of peers with nothing parked are taken from the reserve, the rest
    // is parked.
    while (can_read()) {
      while (!parked.empty() && inflight < credit)
        unpark();
      if (!can_read())
        break;
      auto parts = router_->recv(true);
      if (!parts)
        break;
      if (parts->size() != 2) {
        auto peer = (*parts)[0].view();
        reject(peer, {}, error{ec::wrong_type,
                               fmt::format("expected one frame per batch, got "
                                           "{} parts",
                                           parts->size() - 1)});
        continue;
      }
      received_batches.add();
      std::string peer{(*parts)[0].view()};
      auto owner = std::make_shared<frame_owner>(
        frame_owner{std::move((*parts)[1])});
      auto size = owner->msg.bytes().size();
      received_bytes.add(size); // as received_batches: when read
      // Within the credit; or beyond the wire limit: rejected, at once.
      if ((inflight < credit && parked.empty())
          || size > cfg_.limits.max_frame_bytes) {
        take(std::move(peer), std::move(owner));
        continue;
      }
      auto waiting = parked_per_peer.find(peer);
      if (waiting == parked_per_peer.end() && size <= live_bytes
          && inflight + size <= credit + reserve) {
        live.add();
        take(std::move(peer), std::move(owner));
        continue;
      }
      if (waiting == parked_per_peer.end())
        waiting = parked_per_peer.emplace(peer, 0).first;
      ++waiting->second;
      parked_total.add();
      parked_bytes += parked_cost(*owner);
      parked.push_back({std::move(peer), std::move(owner)});
    }
  }
}

} // namespace parallax
