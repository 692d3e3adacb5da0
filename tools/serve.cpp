#include "commands.hpp"

#include "parallax/actors/ingest_pipeline.hpp"
#include "parallax/actors/node.hpp"
#include "parallax/actors/search.hpp"
#include "parallax/pipeline/http_endpoint.hpp"
#include "parallax/pipeline/libvirt_input.hpp"
#include "parallax/pipeline/logging.hpp"
#include "parallax/pipeline/source_sender.hpp"
#include "parallax/pipeline/metrics.hpp"
#include "parallax/pipeline/publisher.hpp"
#include "parallax/pipeline/query_config.hpp"
#include "parallax/pipeline/system.hpp"
#include "parallax/storage/dir_lock.hpp"
#include "parallax/storage/environment.hpp"
#include "parallax/storage/store.hpp"
#include "parallax/version.hpp"

#include <csignal>

#include <fmt/ranges.h>

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
  return serve(*cfg, {});
}

int serve(const config& loaded, const serve_hooks& hooks) {
  const auto* cfg = &loaded;
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
  // The publisher outlives the actors that publish through it.
  auto pub = publisher::start(zctx, cfg->publisher, &metrics);
  if (!pub) {
    log::error("serve", "{} (parallax.publisher.endpoint; \"\" turns "
                        "publishing off)",
               pub.error().message);
    return 1;
  }
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
    pcfg.collector.live_frame_bytes = cfg->live_frame_bytes;
    pcfg.collector.max_future = cfg->max_future;
    pcfg.rules = cfg->sourcetypes;
    pcfg.retention = cfg->retention;
    pcfg.compact_after = cfg->compact_after;
    pcfg.store = &*store;
    pcfg.env = &*env;
    pcfg.zmq = &zctx;
    pcfg.metrics = &metrics;
    if (cfg->correlator.enabled) {
      correlator_config cc;
      cc.options = correlator_options_of(*cfg);
      cc.hold.span = to_ns(cfg->correlator.hold_new_guests);
      cc.hold.wall = cfg->correlator.hold_new_guests;
      cc.nice = cfg->correlator.nice;
      cc.rt_priority = cfg->correlator.rt_priority;
      cc.state_file = cfg->data_dir / "correlator.state";
      if ((*pub)->enabled()) {
        cc.publish = [p = pub->get()](const message_view& m,
                                      const batch_times&) {
          p->publish_view(m.topic, m.time, m.fields, m.names_checked);
        };
        cc.publish_events = [p = pub->get()](std::span<const event_view> evs) {
          p->publish_events(evs);
        };
      }
      pcfg.correlator = std::move(cc);
    }
    auto pipeline = ingest_pipeline::start(sys, std::move(pcfg));
    if (!pipeline) {
      log::error("serve", "{}", pipeline.error().message);
      caf::anon_send_exit(root, caf::exit_reason::user_shutdown);
      return 1;
    }
    // Sources inside the server send through the collector's endpoint like
    // any client (source_sender.hpp).
    std::unique_ptr<source_sender> collectd_sender;
    std::unique_ptr<http_endpoint> http;
    if (!cfg->http.listen.empty()) {
      collectd_sender = std::make_unique<source_sender>(
        zctx, source_sender_options{(*pipeline)->endpoint(), "collectd"});
      http_endpoint_options hopts;
      hopts.listen = cfg->http.listen;
      hopts.token = cfg->http.token;
      hopts.max_body_bytes = cfg->wire.max_frame_bytes;
      // The web view's API reads the store beside the writer.
      hopts.store = &*store;
      hopts.search = search_options_of(*cfg);
      hopts.publisher_endpoint = (*pub)->enabled() ? (*pub)->endpoint() : "";
      hopts.zmq = &zctx;
      hopts.web_root = cfg->http.web_root;
      auto ep = http_endpoint::start(hopts, *collectd_sender, metrics);
      if (!ep) {
        log::error("serve", "{} (parallax.http.listen; \"\" turns the HTTP "
                            "endpoint off)",
                   ep.error().message);
        collectd_sender.reset();
        (*pipeline)->stop();
        caf::anon_send_exit(root, caf::exit_reason::user_shutdown);
        return 1;
      }
      http = std::move(*ep);
      auto host = cfg->http.listen.substr(0, cfg->http.listen.rfind(':'));
      log::info("serve", "http on {}:{} (POST /collectd: collectd "
                         "write_http JSON; the web view and /api, "
                         "docs/web.md{})",
                host, http->port(),
                cfg->http.token.empty() ? "" : "; bearer token required");
    }
    std::unique_ptr<libvirt_input> libvirt;
    if (!cfg->libvirt.uris.empty()) {
      libvirt_input_options lopts;
      lopts.uris = cfg->libvirt.uris;
      lopts.interval = cfg->libvirt.interval;
      lopts.endpoint = (*pipeline)->endpoint();
      libvirt = std::make_unique<libvirt_input>(zctx, std::move(lopts));
      log::info("serve", "polling libvirt every {} ms: {}",
                cfg->libvirt.interval.count(),
                fmt::join(cfg->libvirt.uris, ", "));
    }
    // Searches read the store beside the writer (LMDB readers never block
    // it); their workers share the scheduler with the parser.
    std::unique_ptr<search_service> searches;
    if (!cfg->search.endpoint.empty()) {
      search_service_config scfg;
      scfg.endpoint = cfg->search.endpoint;
      scfg.store = &*store;
      scfg.options = search_options_of(*cfg);
      scfg.job_ttl = cfg->search.job_ttl;
      scfg.zmq = &zctx;
      scfg.metrics = &metrics;
      auto s = search_service::start(sys, std::move(scfg));
      if (!s) {
        log::error("serve", "{} (\"\" turns the search endpoint off)",
                   s.error().message);
        http.reset();
        libvirt.reset();
        collectd_sender.reset();
        (*pipeline)->stop();
        caf::anon_send_exit(root, caf::exit_reason::user_shutdown);
        return 1;
      }
      searches = std::move(*s);
      log::info("serve", "search on {}", searches->endpoint());
    }
    if ((*pub)->enabled())
      log::info("serve", "publishing deltas and alerts on {}{}",
                (*pub)->endpoint(),
                cfg->correlator.enabled ? "" : " (the correlator is off)");
    log::info("serve", "listening on {} ({} scheduler threads)",
              (*pipeline)->endpoint(), sys.scheduler().num_workers());
    if (hooks.started)
      hooks.started(serve_context{(*pipeline)->endpoint(),
                                  (*pub)->endpoint(),
                                  http ? http->port() : 0, *store,
                                  searches ? searches->endpoint() : ""});
    int sig = 0;
    if (hooks.tick) {
      // Wake up once a second for the hook, until a signal or the hook
      // says stop.
      timespec second{1, 0};
      for (;;) {
        siginfo_t info{};
        sig = sigtimedwait(&stop_signals, &info, &second);
        if (sig > 0 || !hooks.tick())
          break;
      }
    } else {
      sigwait(&stop_signals, &sig);
    }
    log::info("serve", "{}, stopping",
              sig == SIGINT    ? "received SIGINT"
              : sig == SIGTERM ? "received SIGTERM"
                               : "done");
    if (hooks.stopping)
      hooks.stopping();
    // Searches first: their jobs end (cancelled) with the actor system.
    if (searches)
      searches->stop();
    // Inner sources first: they send through the collector.
    if (http)
      http->stop();
    if (libvirt)
      libvirt->stop();
    if (collectd_sender)
      collectd_sender->stop();
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
