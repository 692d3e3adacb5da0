#include "parallax/actors/search.hpp"

#include "thread_priority.hpp"

#include "parallax/pipeline/logging.hpp"
#include "parallax/pipeline/query_protocol.hpp"

#include <deque>
#include <map>
#include <mutex>
#include <random>

#include <fmt/format.h>
#include <zmq.h>

namespace parallax {

namespace proto = search::protocol;
using namespace std::chrono_literals;

namespace {

/// Rows per `rows` message when a result is sent whole.
constexpr std::size_t rows_per_message = 500;

using steady = std::chrono::steady_clock;

struct job_record {
  std::string id;
  std::string peer; ///< sync: who gets the replies; async: empty
  std::shared_ptr<std::atomic<bool>> cancel;
  // Guarded by the hub's mutex:
  bool finished = false;
  steady::time_point finished_at;
  std::optional<result<search::results>> outcome; ///< async: kept for fetch
};

// Appends the messages of a finished result, from row `from` on.
void queue_result(std::deque<std::pair<std::string, std::string>>& out,
                  const std::string& peer,
                  const result<search::results>& res, std::size_t from) {
  if (!res) {
    out.emplace_back(peer, proto::error_reply(res.error()));
    return;
  }
  const auto& rows = res->rows;
  for (auto i = std::min(from, rows.size()); i < rows.size();
       i += rows_per_message) {
    auto n = std::min(rows_per_message, rows.size() - i);
    out.emplace_back(peer, proto::rows_reply(std::span{rows}.subspan(i, n),
                                                 res->events));
  }
  out.emplace_back(peer,
                   proto::done_reply(res->columns, res->stats, res->events));
}

} // namespace

struct search_service::hub {
  std::mutex mtx;
  /// (peer, message) for the endpoint thread to send.
  std::deque<std::pair<std::string, std::string>> outbox;
  std::map<std::string, std::shared_ptr<job_record>, std::less<>> jobs;
  counter* queries = nullptr;
  counter* errors = nullptr;
};

result<std::unique_ptr<search_service>>
search_service::start(caf::actor_system& sys, search_service_config cfg) {
  if (!cfg.zmq || !cfg.store || cfg.endpoint.empty())
    return error{ec::usage, "search service: zmq context, store and endpoint "
                            "are required"};
  std::unique_ptr<search_service> s{new search_service};
  s->sys_ = &sys;
  s->cfg_ = std::move(cfg);
  s->hub_ = std::make_shared<hub>();
  if (s->cfg_.metrics) {
    s->hub_->queries = &s->cfg_.metrics->get("search", "queries_total");
    s->hub_->errors = &s->cfg_.metrics->get("search", "errors_total");
  }
  s->router_ = std::make_unique<zmq::socket>(*s->cfg_.zmq, ZMQ_ROUTER);
  // Results are bounded by max-results and max-memory; a slow client must
  // not lose part of one, so nothing is dropped at a high-water mark. A
  // vanished client makes sends fail (ROUTER_MANDATORY): its job stops.
  if (auto err = s->router_->set_int(ZMQ_SNDHWM, 0))
    return err;
  if (auto err = s->router_->set_int(ZMQ_ROUTER_MANDATORY, 1))
    return err;
  if (auto err = s->router_->set_int64(ZMQ_MAXMSGSIZE, 1 << 20))
    return err;
  if (auto err = s->router_->set_int(ZMQ_LINGER, 0))
    return err;
  if (auto err = s->router_->bind(s->cfg_.endpoint))
    return error{ec::system_error,
                 fmt::format("parallax.search.endpoint: {}", err.message)};
  s->bound_ = s->router_->last_endpoint();
  s->thread_ = std::thread{[p = s.get()] { p->run(); }};
  return s;
}

search_service::~search_service() {
  stop();
}

void search_service::stop() {
  if (hub_) {
    std::lock_guard lock{hub_->mtx};
    for (auto& [id, job] : hub_->jobs)
      job->cancel->store(true);
  }
  stop_.store(true);
  if (thread_.joinable())
    thread_.join();
}

void search_service::run() {
  detail::set_thread_name("plx-search");
  std::mt19937_64 rng{std::random_device{}()};
  auto& h = *hub_;
  auto reply = [&](std::string_view peer, const std::string& msg) {
    std::string_view parts[] = {peer, msg};
    return router_->send(parts, true);
  };
  auto new_id = [&] {
    std::lock_guard lock{h.mtx};
    for (;;) {
      auto id = fmt::format("{:016x}", rng());
      if (!h.jobs.contains(id))
        return id;
    }
  };
  auto handle = [&](const std::string& peer, std::string_view text) {
    auto req = proto::parse_request(text);
    if (!req) {
      reply(peer, proto::error_reply(req.error()));
      return;
    }
    if (req->op == "fetch" || req->op == "cancel") {
      std::vector<std::pair<std::string, std::string>> out;
      {
        std::lock_guard lock{h.mtx};
        auto it = h.jobs.find(req->id);
        if (it == h.jobs.end() || !it->second->peer.empty()) {
          out.emplace_back(
            peer, proto::error_reply(error{
                    ec::invalid_value,
                    fmt::format("unknown job \"{}\" (finished jobs are kept "
                                "for parallax.search.job-ttl)",
                                req->id)}));
        } else if (req->op == "cancel") {
          it->second->cancel->store(true);
          out.emplace_back(peer, proto::job_reply("cancelled", req->id));
        } else if (!it->second->finished) {
          out.emplace_back(peer, proto::job_reply("running", req->id));
        } else {
          std::deque<std::pair<std::string, std::string>> q;
          queue_result(q, peer, *it->second->outcome, 0);
          out.assign(q.begin(), q.end());
        }
      }
      for (const auto& [p, m] : out)
        reply(p, m);
      return;
    }
    // A search.
    if (h.queries)
      h.queries->add();
    auto now = now_ns();
    auto opts = cfg_.options;
    for (auto [name, given, out] :
         {std::tuple{"earliest", &req->earliest, &opts.earliest},
          std::tuple{"latest", &req->latest, &opts.latest}}) {
      if (!*given)
        continue;
      auto t = search::parse_time(**given, now);
      if (!t) {
        if (h.errors)
          h.errors->add();
        reply(peer, proto::error_reply(
                      error{ec::usage, fmt::format("{}: {}", name,
                                                   t.error().message)}));
        return;
      }
      *out = *t;
    }
    if (req->limit)
      opts.max_results = static_cast<std::size_t>(
        std::min<std::uint64_t>(*req->limit, opts.max_results));
    auto job = std::make_shared<job_record>();
    job->id = new_id();
    job->cancel = std::make_shared<std::atomic<bool>>(false);
    if (!req->async)
      job->peer = peer;
    search_sink sink;
    std::weak_ptr<hub> weak = hub_;
    if (!req->async)
      sink.rows = [weak, peer](std::vector<search::row> rows) {
        if (auto hp = weak.lock()) {
          auto msg = proto::rows_reply(rows, true);
          std::lock_guard lock{hp->mtx};
          hp->outbox.emplace_back(peer, std::move(msg));
        }
      };
    sink.done = [weak, job](result<search::results> res,
                            std::size_t streamed) {
      auto hp = weak.lock();
      if (!hp)
        return;
      if (!res && hp->errors)
        hp->errors->add();
      std::lock_guard lock{hp->mtx};
      if (!job->peer.empty())
        queue_result(hp->outbox, job->peer, res, streamed);
      else
        job->outcome = std::move(res);
      job->finished = true;
      job->finished_at = steady::now();
    };
    {
      std::lock_guard lock{h.mtx};
      h.jobs.emplace(job->id, job);
    }
    auto err = start_search(*sys_, *cfg_.store, req->query, std::move(opts),
                            now, job->cancel, std::move(sink));
    if (err) {
      if (h.errors)
        h.errors->add();
      {
        std::lock_guard lock{h.mtx};
        h.jobs.erase(job->id);
      }
      reply(peer, proto::error_reply(err));
      return;
    }
    if (req->async)
      reply(peer, proto::job_reply("job", job->id));
  };
  zmq::socket* socks[] = {router_.get()};
  const bool want[] = {true};
  auto last_purge = steady::now();
  std::vector<std::pair<std::string, std::string>> sending;
  while (!stop_.load(std::memory_order_relaxed)) {
    auto ready = zmq::poll_in(socks, want, 10ms);
    if (!ready) {
      log::error("search", "{}", ready.error().message);
      break;
    }
    if ((*ready)[0]) {
      // Bounded per round, so replies keep flowing under a request flood.
      for (int i = 0; i < 64; ++i) {
        auto parts = router_->recv(true);
        if (!parts)
          break;
        std::string peer{(*parts)[0].view()};
        if (parts->size() != 2) {
          reply(peer, proto::error_reply(
                        error{ec::usage, "a request is one message part "
                                         "holding one JSON object"}));
          continue;
        }
        handle(peer, (*parts)[1].view());
      }
    }
    {
      std::lock_guard lock{h.mtx};
      sending.assign(std::make_move_iterator(h.outbox.begin()),
                     std::make_move_iterator(h.outbox.end()));
      h.outbox.clear();
    }
    for (const auto& [peer, msg] : sending)
      if (auto err = reply(peer, msg)) {
        // The client is gone: stop its queries.
        std::lock_guard lock{h.mtx};
        for (auto& [id, job] : h.jobs)
          if (job->peer == peer)
            job->cancel->store(true);
      }
    sending.clear();
    if (steady::now() - last_purge > 1s) {
      last_purge = steady::now();
      std::lock_guard lock{h.mtx};
      std::erase_if(h.jobs, [&](const auto& kv) {
        const auto& job = *kv.second;
        return job.finished
               && (!job.peer.empty()
                   || steady::now() - job.finished_at > cfg_.job_ttl);
      });
    }
  }
}

} // namespace parallax
