#include "parallax/actors/ingest_pipeline.hpp"

#include "thread_priority.hpp"

#include <caf/actor_system.hpp>
#include <caf/exit_reason.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

namespace parallax {

result<std::unique_ptr<ingest_pipeline>>
ingest_pipeline::start(caf::actor_system& sys, ingest_pipeline_config cfg) {
  std::unique_ptr<ingest_pipeline> p{new ingest_pipeline};
  // The indexer connects its reply socket to the endpoint the collector
  // binds below (inproc allows connect before bind).
  indexer_config icfg;
  icfg.store = cfg.store;
  icfg.env = cfg.env;
  icfg.zmq = cfg.zmq;
  icfg.metrics = cfg.metrics;
  icfg.retention = cfg.retention;
  icfg.reply_endpoint = zmq::unique_inproc_endpoint("replies");
  // Far behind the live path when that is in the normal class; a little
  // behind the collector when it is real-time (indexer_config::nice).
  if (cfg.correlator && detail::real_time_allowed(cfg.correlator->rt_priority))
    icfg.nice = 5;
  p->indexer_ = spawn_indexer(sys, icfg);
  compactor_config kcfg;
  kcfg.store = cfg.store;
  kcfg.metrics = cfg.metrics;
  kcfg.quiet = cfg.compact_after;
  kcfg.nice = icfg.nice;
  p->compactor_ = spawn_compactor(sys, kcfg);
  ingest_sink after_parser = p->indexer_;
  parser_config pcfg;
  if (cfg.correlator) {
    // The parser feeds the correlator: it runs at the same priority. In
    // the real-time class it cannot crowd out the rest of the server: it
    // parses only what the collector (normal class) takes, within the
    // credit that the indexer's commits give back.
    pcfg.rt_priority = cfg.correlator->rt_priority;
    pcfg.nice = cfg.correlator->nice;
    cfg.correlator->next = p->indexer_;
    cfg.correlator->metrics = cfg.metrics;
    cfg.correlator->store = cfg.store;
    // A new guest's held batches (resends included) take at most a quarter
    // of the collector's credit.
    cfg.correlator->hold.max_bytes = cfg.collector.max_inflight_bytes / 4;
    p->correlator_ = spawn_correlator(sys, std::move(*cfg.correlator));
    after_parser = p->correlator_;
  }
  pcfg.rules = std::move(cfg.rules);
  pcfg.next = after_parser;
  pcfg.metrics = cfg.metrics;
  pcfg.max_future = cfg.collector.max_future;
  pcfg.max_fields = cfg.collector.limits.max_fields;
  p->parser_ = spawn_parser(sys, pcfg);
  auto& ccfg = cfg.collector;
  ccfg.zmq = cfg.zmq;
  ccfg.metrics = cfg.metrics;
  ccfg.next = p->parser_;
  ccfg.reply_endpoint = icfg.reply_endpoint;
  auto c = collector::start(std::move(ccfg));
  if (!c) {
    p->stop();
    return c.error();
  }
  p->collector_ = std::move(*c);
  return p;
}

ingest_pipeline::~ingest_pipeline() {
  stop();
}

void ingest_pipeline::stop() {
  if (collector_)
    collector_->stop();
  if (parser_)
    caf::anon_send_exit(parser_, caf::exit_reason::user_shutdown);
  if (correlator_) {
    // The correlator's exit handler stores what it published (and drops
    // what it holds); the indexer's exit message must come after.
    caf::anon_send_exit(correlator_, caf::exit_reason::user_shutdown);
    caf::scoped_actor self{correlator_->home_system()};
    self->wait_for(correlator_);
  }
  if (indexer_)
    caf::anon_send_exit(indexer_, caf::exit_reason::user_shutdown);
  if (compactor_)
    caf::anon_send_exit(compactor_, caf::exit_reason::user_shutdown);
  // The collector holds a handle to the parser, the parser one to the
  // indexer: all must go for the detached indexer's thread to end.
  collector_.reset();
  parser_ = nullptr;
  correlator_ = nullptr;
  indexer_ = nullptr;
  compactor_ = nullptr;
}

} // namespace parallax
