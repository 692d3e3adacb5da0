#pragma once

// A real ingest pipeline for tests: an LMDB store in a fresh temp directory,
// a CAF actor system, a detached indexer and a collector on a tcp loopback
// port chosen by the kernel. Nothing is mocked.

#include "parallax/actors/ingest_pipeline.hpp"
#include "parallax/pipeline/metrics.hpp"
#include "parallax/pipeline/system.hpp"
#include "parallax/pipeline/zmq.hpp"
#include "parallax/storage/environment.hpp"
#include "parallax/storage/store.hpp"

#include <filesystem>
#include <memory>
#include <optional>
#include <random>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>

#include "temp_dir.hpp"

#include <doctest/doctest.h>

namespace parallax::test {

/// One running pipeline; `stop()` (or the destructor) shuts it down and
/// closes the store, so a test can start another on the same directory.
class running_pipeline {
public:
  running_pipeline(const std::filesystem::path& dir, zmq::context& zctx,
                   collector_config ccfg = {},
                   std::vector<sourcetype_rules> rules = {},
                   std::uint64_t map_size = std::uint64_t{1} << 30,
                   std::optional<correlator_config> correlator = {}) {
    storage::environment_options eo;
    eo.map_size = map_size;
    auto e = storage::environment::open(dir, eo);
    REQUIRE_MESSAGE(static_cast<bool>(e), (e ? "" : e.error().message));
    env_.emplace(std::move(*e));
    auto s = storage::store::open(*env_);
    REQUIRE_MESSAGE(static_cast<bool>(s), (s ? "" : s.error().message));
    store_.emplace(std::move(*s));
    // The actor system keeps a reference to its config: it lives as long.
    sys_cfg_ = std::make_unique<caf::actor_system_config>();
    configure_actor_system(*sys_cfg_, config::defaults());
    sys_ = std::make_unique<caf::actor_system>(*sys_cfg_);
    ingest_pipeline_config pcfg;
    pcfg.collector = std::move(ccfg);
    if (pcfg.collector.endpoint.empty())
      pcfg.collector.endpoint = "tcp://127.0.0.1:0";
    pcfg.rules = std::move(rules);
    pcfg.store = &*store_;
    pcfg.env = &*env_;
    pcfg.zmq = &zctx;
    pcfg.metrics = &metrics;
    pcfg.correlator = std::move(correlator);
    auto p = ingest_pipeline::start(*sys_, std::move(pcfg));
    REQUIRE_MESSAGE(static_cast<bool>(p), (p ? "" : p.error().message));
    pipeline_ = std::move(*p);
  }

  ~running_pipeline() {
    stop();
  }

  void stop() {
    if (!sys_)
      return;
    pipeline_.reset(); // before the actor system, which waits for it
    sys_.reset();
    store_.reset();
    env_.reset();
  }

  const std::string& endpoint() const {
    return pipeline_->endpoint();
  }

  storage::store& store() {
    return *store_;
  }

  std::uint64_t counter_value(std::string_view component,
                              std::string_view name,
                              std::string_view reason = {}) {
    return metrics.get(component, name, reason).value();
  }

  metrics_registry metrics;

private:
  std::optional<storage::environment> env_;
  std::optional<storage::store> store_;
  std::unique_ptr<caf::actor_system_config> sys_cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  std::unique_ptr<ingest_pipeline> pipeline_;
};

} // namespace parallax::test
