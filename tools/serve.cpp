#include "commands.hpp"

#include "parallax/actors/ingest_pipeline.hpp"
#include "parallax/actors/node.hpp"
#include "parallax/pipeline/logging.hpp"
#include "parallax/pipeline/metrics.hpp"
#include "parallax/pipeline/system.hpp"
#include "parallax/storage/dir_lock.hpp"
#include "parallax/storage/environment.hpp"
#include "parallax/storage/store.hpp"
#include "parallax/version.hpp"

#include <csignal>

#include <thread>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/exit_reason.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <pthread.h>

namespace parallax::tools {

int run_serve(const config_args& args) {
  auto cfg = load(args, "serve");
  if (!cfg)
    return 2;
  log::set_level(cfg->log);
  // Block the stop signals before any thread exists, so every thread
  // inherits the mask and only sigwait below receives them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  auto lock = storage::dir_lock::acquire(cfg->data_dir);
  if (!lock) {
    log::error("serve", "{}", lock.error().message);
    return 1;
  }
  storage::environment_options env_opts;
  env_opts.map_size = cfg->storage_map_size;
  auto env = storage::environment::open(cfg->data_dir / "store", env_opts);
  if (!env) {
    log::error("serve", "{}", env.error().message);
    return 1;
  }
  auto store = storage::store::open(*env, store_options_of(*cfg));
  if (!store) {
    log::error("serve", "{}", store.error().message);
    return store.error().code == ec::config_bad_value ? 2 : 1;
  }
  metrics_registry metrics;
  zmq::context zctx;
  int exit_code = 0;
  {
    caf::actor_system_config sys_cfg;
    configure_actor_system(sys_cfg, *cfg);
    caf::actor_system sys{sys_cfg};
    node_config ncfg;
    ncfg.metrics = &metrics;
    ncfg.report_interval = cfg->metrics_interval;
    auto root = spawn_node(sys, ncfg);
    log::info("serve", "parallax {} (pid {}) started", version_string,
              ::getpid());
    log::info("serve", "storing in {} (store format v{}, map size {} MiB)",
              env->path().string(), static_cast<unsigned>(env->version()),
              cfg->storage_map_size >> 20);
    ingest_pipeline_config pcfg;
    pcfg.collector.endpoint = cfg->collector_endpoint;
    pcfg.collector.limits = cfg->wire;
    pcfg.collector.max_inflight_bytes = cfg->max_inflight_bytes;
    pcfg.collector.max_future = cfg->max_future;
    pcfg.rules = cfg->sourcetypes;
    pcfg.retention = cfg->retention;
    pcfg.store = &*store;
    pcfg.env = &*env;
    pcfg.zmq = &zctx;
    pcfg.metrics = &metrics;
    auto pipeline = ingest_pipeline::start(sys, std::move(pcfg));
    if (!pipeline) {
      log::error("serve", "{}", pipeline.error().message);
      caf::anon_send_exit(root, caf::exit_reason::user_shutdown);
      return 1;
    }
    log::info("serve", "listening on {} ({} scheduler threads)",
              (*pipeline)->endpoint(), sys.scheduler().num_workers());
    int sig = 0;
    sigwait(&stop_signals, &sig);
    log::info("serve", "received {}, stopping",
              sig == SIGINT ? "SIGINT" : "SIGTERM");
    // Stop taking batches first; what was not committed is not acked, and
    // clients resend it.
    (*pipeline)->stop();
    {
      caf::scoped_actor self{sys};
      self->request(root, std::chrono::seconds{5}, status_atom::value)
        .receive([](const std::string& status) {
                   log::info("serve", "final counters:\n{}", status);
                 },
                 [&](const caf::error& err) {
                   log::error("serve", "node did not answer: {}",
                              sys.render(err));
                   exit_code = 1;
                 });
      caf::anon_send_exit(root, caf::exit_reason::user_shutdown);
    }
    // The actor system's destructor waits for every actor to finish.
  }
  log::info("serve", "stopped cleanly");
  return exit_code;
}

} // namespace parallax::tools
