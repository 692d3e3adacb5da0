#include "parallax/pipeline/ingest_client.hpp"

#include <fmt/format.h>
#include <zmq.h>

namespace parallax {

result<std::unique_ptr<ingest_client>>
ingest_client::connect(zmq::context& ctx, ingest_client_options opts) {
  zmq::socket s{ctx, ZMQ_DEALER};
  // Never drop or block silently on a slow server: the window bounds what
  // is queued, so the send queue needs no lower limit than the window.
  if (auto err = s.set_int(ZMQ_SNDHWM, static_cast<int>(opts.window) * 2 + 16))
    return err;
  // Queue nothing while no server is connected: sends then fail at once
  // (EAGAIN) and the batch waits in `pending_` for the next resend.
  if (auto err = s.set_int(ZMQ_IMMEDIATE, 1))
    return err;
  if (auto err = s.connect(opts.endpoint))
    return err;
  return std::unique_ptr<ingest_client>{
    new ingest_client{std::move(s), std::move(opts)}};
}

error ingest_client::transmit(pending& p) {
  std::string_view parts[] = {p.frame};
  p.last_sent = clock::now();
  // Never block: with no server yet (or a full queue) the batch stays
  // pending and is tried again shortly.
  if (auto err = socket_.send(parts, true)) {
    if (err.message != "EAGAIN")
      return err;
    p.retry_at = p.last_sent + std::chrono::milliseconds{50};
    if (!unreachable_since_)
      unreachable_since_ = p.last_sent;
    else if (p.last_sent - *unreachable_since_ >= opts_.connect_timeout)
      return error{ec::system_error,
                   fmt::format("no server reachable at {} for {} ms",
                               opts_.endpoint,
                               opts_.connect_timeout.count())};
    return {};
  }
  unreachable_since_.reset();
  if (!p.sent) {
    p.sent = true;
    --unsent_;
  }
  return {};
}

error ingest_client::send(std::uint64_t sequence, std::string frame,
                          std::chrono::milliseconds max_wait) {
  auto deadline = clock::now() + max_wait;
  while (pending_.size() >= opts_.window) {
    if (clock::now() >= deadline)
      return error{ec::system_error,
                   fmt::format("{} batches unanswered for {} ms (last reply: "
                               "{} failed so far); the server is down or "
                               "cannot store",
                               pending_.size(), max_wait.count(),
                               stats_.failed)};
    if (auto err = pump(std::chrono::milliseconds{100}))
      return err;
  }
  auto now = clock::now();
  auto [it, fresh] = pending_.emplace(
    sequence, pending{std::move(frame), now, now, clock::time_point::max()});
  if (!fresh)
    return error{ec::usage,
                 fmt::format("sequence {} is already in flight", sequence)};
  // Behind a batch not sent yet, this one waits its turn (pump).
  if (unsent_++ > 0)
    it->second.retry_at = now;
  else if (auto err = transmit(it->second))
    return err;
  // Take whatever replies are already here without waiting.
  return pump(std::chrono::milliseconds{0});
}

error ingest_client::pump(std::chrono::milliseconds wait) {
  zmq::socket* socks[] = {&socket_};
  bool want[] = {true};
  auto ready = zmq::poll_in(socks, want, wait);
  if (!ready)
    return ready.error();
  while ((*ready)[0]) {
    auto parts = socket_.recv(true);
    if (!parts) {
      if (parts.error().message == "EAGAIN")
        break;
      return parts.error();
    }
    auto r = wire::decode_reply(parts->back().view());
    if (!r)
      return error{r.error().code,
                   "the server sent an unreadable reply: " + r.error().message};
    if (!r->sequence)
      return error{r->code, "the server rejected a frame it could not "
                            "attribute: "
                              + r->message};
    auto it = pending_.find(*r->sequence);
    if (it == pending_.end())
      continue; // a reply to a resend already answered
    auto& p = it->second; // answered, so sent: unsent_ does not count it
    switch (r->status) {
      case wire::reply_status::ack:
      case wire::reply_status::duplicate:
        (r->status == wire::reply_status::ack ? stats_.acked
                                              : stats_.duplicates)++;
        stats_.latencies_us.push_back(
          std::chrono::duration<double, std::micro>(clock::now()
                                                    - p.first_sent)
            .count());
        pending_.erase(it);
        if (on_done)
          on_done(*r->sequence);
        break;
      case wire::reply_status::rejected:
        ++stats_.rejected;
        if (on_rejected)
          on_rejected(*r);
        pending_.erase(it);
        if (on_done)
          on_done(*r->sequence);
        break;
      case wire::reply_status::failed:
        ++stats_.failed;
        p.retry_at = clock::now() + opts_.retry_failed_after;
        break;
    }
  }
  // Resend what timed out or failed; send what waited, in order: nothing
  // goes out for the first time while an earlier batch has not.
  auto now = clock::now();
  bool blocked = false;
  for (auto& [seq, p] : pending_) {
    if (!p.sent && blocked)
      continue;
    if (now >= p.retry_at || now - p.last_sent >= opts_.resend_after) {
      p.retry_at = clock::time_point::max();
      if (p.sent)
        ++stats_.resent;
      if (auto err = transmit(p))
        return err;
    }
    blocked = blocked || !p.sent;
  }
  return {};
}

error ingest_client::drain(std::chrono::milliseconds timeout) {
  auto deadline = clock::now() + timeout;
  while (!pending_.empty()) {
    if (clock::now() >= deadline)
      return error{ec::system_error,
                   fmt::format("{} batches still unanswered after {} ms",
                               pending_.size(), timeout.count())};
    if (auto err = pump(std::chrono::milliseconds{50}))
      return err;
  }
  return {};
}

} // namespace parallax
