#include "parallax/pipeline/source_sender.hpp"

#include "parallax/pipeline/logging.hpp"
#include "parallax/schemas/wire.hpp"

#include <optional>

#include <fmt/format.h>

namespace parallax {

source_sender::source_sender(zmq::context& ctx, source_sender_options opts)
  : ctx_{ctx}, opts_{std::move(opts)} {
  thread_ = std::thread{[this] { run(); }};
}

source_sender::~source_sender() {
  stop();
}

std::future<error> source_sender::submit(std::vector<event> events) {
  job j{std::move(events), {}};
  auto fut = j.done.get_future();
  {
    std::lock_guard lock{mtx_};
    if (stopping_) {
      j.done.set_value(error{ec::system_error,
                             fmt::format("{}: stopped", opts_.source_id)});
      return fut;
    }
    queue_.push_back(std::move(j));
  }
  cv_.notify_one();
  return fut;
}

void source_sender::stop() {
  {
    std::lock_guard lock{mtx_};
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable())
    thread_.join();
}

void source_sender::run() {
  ingest_client_options copts;
  copts.endpoint = opts_.endpoint;
  copts.window = 4;
  copts.resend_after = std::chrono::seconds{5};
  auto client = ingest_client::connect(ctx_, copts);
  std::optional<error> rejected;
  if (client)
    (*client)->on_rejected = [&](const wire::reply& r) {
      rejected = error{r.code, fmt::format("{}: the server rejected a batch: "
                                           "{}",
                                           opts_.source_id, r.message)};
    };
  auto sequence = static_cast<std::uint64_t>(now_ns());
  for (;;) {
    std::vector<job> jobs;
    {
      std::unique_lock lock{mtx_};
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty())
        return; // stopping, nothing left
      while (!queue_.empty()) {
        jobs.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    error outcome;
    rejected.reset();
    std::uint64_t events = 0;
    if (!client) {
      outcome = client.error();
    } else {
      wire::batch b;
      b.source_id = opts_.source_id;
      auto flush = [&]() -> error {
        if (b.events.empty())
          return {};
        b.sequence = sequence++;
        auto frame = wire::encode(b);
        events += b.events.size();
        b.events.clear();
        return (*client)->send(b.sequence, std::move(frame), opts_.ack_timeout);
      };
      for (auto& j : jobs) {
        for (auto& e : j.events) {
          b.events.push_back(std::move(e));
          if (b.events.size() >= opts_.max_events_per_batch && !outcome)
            outcome = flush();
        }
      }
      if (!outcome)
        outcome = flush();
      if (!outcome)
        outcome = (*client)->drain(opts_.ack_timeout);
      if (rejected && !outcome)
        outcome = std::move(*rejected);
    }
    if (!outcome)
      acked_.fetch_add(events, std::memory_order_relaxed);
    for (auto& j : jobs)
      j.done.set_value(outcome);
  }
}

} // namespace parallax
