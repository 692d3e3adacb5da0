// `parallax`: one binary, one subcommand per job.

#include "commands.hpp"

#include "parallax/bench/agent.hpp"
#include "parallax/bench/codec.hpp"
#include "parallax/bench/correlate.hpp"
#include "parallax/bench/ingest.hpp"
#include "parallax/bench/nab.hpp"
#include "parallax/bench/search.hpp"
#include "parallax/version.hpp"

#include <cstdio>

#include <CLI/CLI.hpp>


int main(int argc, char** argv) {
  using namespace parallax::tools;
  CLI::App app{"Parallax: watches a fleet of virtual machines from the "
               "hypervisor and from inside each guest,\nand tells you where "
               "the two views disagree.",
               "parallax"};
  app.set_version_flag("-V,--version",
                       std::string{"parallax "} + parallax::version_string);
  app.require_subcommand(1);
  app.footer("Exit codes: 0 success, 1 failure, 2 bad usage or configuration.\n"
             "Run `parallax COMMAND --help` for a command's options.");

  config_args serve_args;
  auto serve = app.add_subcommand(
    "serve", "Run the Parallax daemon until SIGINT or SIGTERM");
  add_config_options(*serve, serve_args);

  decode_args dec_args;
  auto decode = app.add_subcommand(
    "decode", "Decode one wire-format batch frame and print its events "
              "(or why it is rejected)");
  add_config_options(*decode, dec_args.cfg);
  decode->add_option("file", dec_args.file, "Frame file, or - for stdin")
    ->capture_default_str();
  decode->add_flag("--json", dec_args.json,
                   "One JSON object per line: the batch header, then events");

  config_cmd_args cfg_args;
  auto config = app.add_subcommand(
    "config", "Print the effective configuration, or every option with "
              "--example");
  add_config_options(*config, cfg_args.cfg);
  config->add_flag("--example", cfg_args.example,
                   "Print every option with its documentation and default");

  ingest_args in_args;
  auto ingest_cmd = app.add_subcommand(
    "ingest", "Send log files to a running server through the ingest "
              "endpoint (timestamps and fields are extracted by the server's "
              "parser)");
  add_config_options(*ingest_cmd, in_args.cfg);
  ingest_cmd->add_option("files", in_args.files, "Log files to send")
    ->required()
    ->check(CLI::ExistingFile);
  ingest_cmd->add_option("-s,--sourcetype", in_args.sourcetype,
                         "Sourcetype of the lines, e.g. os:auth (chooses the "
                         "parsing rules)")
    ->required();
  ingest_cmd->add_option("--host", in_args.host,
                         "Host field (default: this machine's name)");
  ingest_cmd->add_option("--index", in_args.index, "Index to store into")
    ->capture_default_str();
  ingest_cmd->add_option("--endpoint", in_args.endpoint,
                         "Ingest endpoint (default: "
                         "parallax.collector.endpoint)");
  ingest_cmd->add_option("--timeout", in_args.timeout,
                         "Seconds to wait for the server's last "
                         "acknowledgements")
    ->capture_default_str();

  agent_args ag_args;
  auto agent_cmd = app.add_subcommand("agent",
                                      std::string{agent_command_summary});
  add_agent_options(*agent_cmd, ag_args);

  demo_args demo_a;
  auto demo_cmd = app.add_subcommand(
    "demo", "Run the server on its defaults (data in ./var) fed live by a "
            "simulated fleet, plus this machine's own agent when run as "
            "root, and print what arrives; until Ctrl-C");
  add_config_options(*demo_cmd, demo_a.cfg);
  demo_cmd->add_option("--vms", demo_a.vms, "Simulated VMs")
    ->capture_default_str();
  demo_cmd->add_option("--hosts", demo_a.hosts,
                       "Simulated hosts, alternately libvirt and vSphere")
    ->capture_default_str();
  demo_cmd->add_option("--seed", demo_a.seed, "Simulator seed")
    ->capture_default_str();
  demo_cmd->add_option("--scenario", demo_a.scenario,
                       "Scenario to inject (e.g. etc/scenarios/demo.toml; "
                       "times are relative to the start)")
    ->check(CLI::ExistingFile);
  demo_cmd->add_flag("--no-agent", demo_a.no_agent,
                     "Do not run this machine's agent, even as root");
  demo_cmd->add_option("--every", demo_a.every,
                       "Seconds between status lines")
    ->capture_default_str()
    ->check(CLI::Range(1, 3600));

  tail_args tl_args;
  auto tail_cmd = app.add_subcommand(
    "tail", "Follow what a running server publishes -- deltas, alerts, "
            "identity changes -- one line per message (JSON lines when "
            "stdout is not a terminal); reports sequence gaps on stderr");
  add_config_options(*tail_cmd, tl_args.cfg);
  tail_cmd->add_option("--endpoint", tl_args.endpoint,
                       "Publisher to subscribe to (default: "
                       "parallax.publisher.endpoint, tcp://127.0.0.1:7401)");
  tail_cmd->add_option("-t,--topic", tl_args.topics,
                       "Topic prefix to subscribe to (repeatable; default: "
                       "delta., alert. and identity; event. adds events)");
  tail_cmd->add_option("--vm", tl_args.vms,
                       "Only messages about this VM (repeatable)");
  tail_cmd->add_option("--metric", tl_args.metric,
                       "Only deltas and alerts of this metric, e.g. "
                       "mem_used");
  tail_cmd->add_option("--min-severity", tl_args.min_severity,
                       "Skip alerts below this severity (other messages "
                       "pass)")
    ->check(CLI::IsMember({"info", "warning", "critical"}));
  auto tail_json = tail_cmd->add_flag(
    "--json", tl_args.json,
    "One JSON object per line: publisher, topic, sequence, time (ns), "
    "fields (the default when stdout is not a terminal)");
  tail_cmd->add_flag("--no-json", tl_args.no_json,
                     "Human-readable lines even when stdout is not a "
                     "terminal")
    ->excludes(tail_json);
  tail_cmd->add_option("--color", tl_args.color,
                       "Colour alerts by severity (red critical, yellow "
                       "warning, green resolved): auto, always, never")
    ->capture_default_str()
    ->check(CLI::IsMember({"auto", "always", "never"}));
  tail_cmd->add_option("--count", tl_args.count,
                       "Exit (0) after printing this many messages");
  tail_cmd->add_option("--timeout", tl_args.timeout,
                       "Exit 1 when no message arrives for this many "
                       "seconds, filtered or not (default: wait forever)")
    ->check(CLI::PositiveNumber);
  tail_cmd->footer(
    "Examples:\n"
    "  parallax tail                                  everything but events\n"
    "  parallax tail --topic alert. --min-severity warning\n"
    "  parallax tail --vm web-01 --metric mem_used\n"
    "  parallax tail --topic event.os:auth            stored auth events\n"
    "  parallax tail --json | jq .fields.abs_diff\n"
    "Lines look like:\n"
    "  12:00:20 delta web-01 mem_used  hv 3.10 GiB  guest 2.71 GiB  "
    "\u0394 +0.39 GiB (+14.4 %)  explained 87 %\n"
    "Sequence gaps (messages the publisher dropped because a subscriber "
    "fell behind) are reported on stderr; the message format is in "
    "schemas/README.md, \"Published messages\". Runs until Ctrl-C.");

  search_args se_args;
  auto search_cmd = app.add_subcommand(
    "search", "Search the stored events (docs/search.md): directly in the "
              "data directory, read-only and beside a running server, or "
              "through a server's search endpoint");
  add_config_options(*search_cmd, se_args.cfg);
  search_cmd->add_option("query", se_args.query,
                         "The query: a search clause, then | commands "
                         "(quote it for the shell)");
  search_cmd->add_option("--earliest", se_args.earliest,
                         "Only events at or after this time: now, -15m, "
                         "-1d@d, epoch seconds or RFC 3339");
  search_cmd->add_option("--latest", se_args.latest,
                         "Only events before this time (same forms)");
  search_cmd->add_option("-f,--format", se_args.format,
                         "table (events one per line, statistics as aligned "
                         "columns), json (one object per line) or csv")
    ->capture_default_str()
    ->check(CLI::IsMember({"table", "json", "csv"}));
  search_cmd->add_option("-n,--limit", se_args.limit,
                         "Most rows (events: the newest); at most "
                         "parallax.search.max-results")
    ->check(CLI::PositiveNumber);
  search_cmd->add_option("--server", se_args.server,
                         "Ask the server at this search endpoint, e.g. "
                         "tcp://127.0.0.1:7402, instead of reading the data "
                         "directory");
  auto search_async = search_cmd->add_flag(
    "--async", se_args.async,
    "Start the query on the server as a job and print its id; fetch the "
    "results later with --job ID");
  auto search_job = search_cmd->add_option(
    "--job", se_args.job, "Print the results of a job started with --async "
                          "(waits while it runs)");
  search_cmd->add_option("--cancel", se_args.cancel,
                         "Cancel a job started with --async")
    ->excludes(search_async)
    ->excludes(search_job);
  search_job->excludes(search_async);
  search_cmd->add_flag("--stats", se_args.stats,
                       "Print to stderr how the query ran: buckets answered "
                       "from tuple counts, through the index or scanned, "
                       "events read");
  search_cmd->footer(
    "Examples:\n"
    "  parallax search 'sshd Failed'                   events with both "
    "terms, newest first\n"
    "  parallax search 'sourcetype=os:auth user=root' --earliest -1h\n"
    "  parallax search 'vm=web-01 | stats count by sourcetype'\n"
    "  parallax search 'sourcetype=hv:* | timechart span=5m avg(cpu_pct) by "
    "vm' --format csv\n"
    "  parallax search 'error | head 20' --format json | jq ._raw\n"
    "  parallax search '* | stats count' --server tcp://127.0.0.1:7402\n"
    "  id=$(parallax search 'sourcetype=os:* | stats count by host' "
    "--async); parallax search --job \"$id\"\n"
    "Without --server the data directory (--data, parallax.data-dir) is read "
    "directly, read-only; with --server, --async, --job or --cancel the "
    "server's search endpoint (default parallax.search.endpoint) answers. "
    "A query that does not parse is shown with a caret under the problem "
    "(exit 2).");

  vm_args vm_a;
  auto vm_cmd = app.add_subcommand(
    "vm", "One VM in the terminal: host, state, latest deltas, open alerts, "
          "memory and CPU charts (hypervisor against guest) and its "
          "processes, refreshed every 2 s (docs/web.md)");
  add_config_options(*vm_cmd, vm_a.cfg);
  vm_cmd->add_option("name", vm_a.name, "The VM (the field vm)")->required();
  vm_cmd->add_option("--earliest", vm_a.earliest,
                     "Start of the charts: -1h, -1d, epoch seconds or RFC "
                     "3339")
    ->capture_default_str();
  vm_cmd->add_flag("--once", vm_a.once,
                   "Print once and exit (no terminal codes)");
  vm_cmd->add_option("--server", vm_a.server,
                     "Ask a server's HTTP endpoint, e.g. "
                     "http://127.0.0.1:7480 (token: parallax.http.token), "
                     "instead of reading the data directory");
  vm_cmd->footer(
    "Examples:\n"
    "  parallax vm web-01                       live, until Ctrl-C\n"
    "  parallax vm db-02 --earliest -6h --once\n"
    "  parallax vm app-03 --server http://10.0.0.5:7480 --set "
    "parallax.http.token=...\n"
    "Reads the data directory read-only (beside a running server) unless "
    "--server is given. An unknown VM is an error (exit 1) that lists the "
    "known ones.");

  buckets_args bk_args;
  auto buckets = app.add_subcommand(
    "buckets", "List the store's time buckets with their ranges, counts and "
               "sizes (read-only; works while the server runs)");
  add_config_options(*buckets, bk_args.cfg);
  buckets->add_flag("--json", bk_args.json, "One JSON object per bucket");

  simulate_args sim_args;
  auto simulate_cmd = app.add_subcommand(
    "simulate", "Simulate a fleet of VMs seen from the hypervisor and from "
                "inside each guest, with injected scenarios, and write the "
                "ground truth (docs/simulator.md)");
  simulate_cmd->footer(
    "Examples:\n"
    "  parallax simulate --endpoint tcp://127.0.0.1:7400 --duration 1h "
    "--scenario etc/scenarios/demo.toml --truth truth.json\n"
    "  parallax simulate --vms 100 --duration 1h --out fleet.frames\n"
    "  parallax simulate --live --endpoint tcp://127.0.0.1:7400   "
    "(until Ctrl-C)\n"
    "VMs are named web-01, db-02, app-03, cache-04, web-05, ...; host i "
    "is kvm-0i (libvirt) when i is odd, esx-0i (vSphere) when even.");
  simulate_cmd->add_option("--seed", sim_args.seed,
                           "Seed: the same seed and options give the same "
                           "events, byte for byte")
    ->capture_default_str();
  simulate_cmd->add_option("--vms", sim_args.vms, "Number of VMs (clones "
                                                  "come on top)")
    ->capture_default_str();
  simulate_cmd->add_option("--hosts", sim_args.hosts,
                           "Number of hypervisor hosts, alternately libvirt "
                           "and vSphere")
    ->capture_default_str();
  simulate_cmd->add_option("--scenario", sim_args.scenario,
                           "TOML file of events to inject (default: a steady "
                           "fleet); see etc/scenarios/")
    ->check(CLI::ExistingFile);
  simulate_cmd->add_option("--duration", sim_args.duration,
                           "Simulated time span, e.g. 10m, 1h, 1d (default "
                           "1h; with --live or --events: no limit)");
  simulate_cmd->add_option("--events", sim_args.events,
                           "Stop after this many events");
  simulate_cmd->add_option("--rate", sim_args.rate,
                           "Events per second to send at, or max")
    ->capture_default_str();
  simulate_cmd->add_flag("--live", sim_args.live,
                         "Follow the wall clock: each sample is sent when "
                         "its time comes (starts now)");
  simulate_cmd->add_option("--speed", sim_args.speed,
                           "Replay this many times faster than real time, "
                           "each agent and poller sending every step on its "
                           "own phase as independent senders do (default: "
                           "as fast as --rate allows, sources merged)")
    ->check(CLI::Range(0.01, 1e6));
  simulate_cmd->add_option("--start", sim_args.start,
                           "Simulated start: seconds since the epoch or "
                           "now-DURATION (default: now minus the duration)");
  simulate_cmd->add_option("--endpoint", sim_args.endpoint,
                           "Send through this ingest endpoint, e.g. "
                           "tcp://127.0.0.1:7400");
  simulate_cmd->add_option("--out", sim_args.out,
                           "Write the batches to this file instead "
                           "(length-prefixed wire frames)");
  simulate_cmd->add_option("--truth", sim_args.truth,
                           "Write the ground truth (JSON) to this file");
  simulate_cmd->add_flag("--canonical-macs", sim_args.canonical_macs,
                         "Guests write normalised MACs instead of mixed "
                         "notations");
  simulate_cmd->add_option("--timeout", sim_args.timeout,
                           "Seconds to wait for the server's "
                           "acknowledgements")
    ->capture_default_str();

  config_args rebuild_args;
  auto rebuild = app.add_subcommand(
    "rebuild-summaries", "Recompute every bucket's summarization tables and "
                         "rollups from the stored events (server stopped)");
  add_config_options(*rebuild, rebuild_args);

  config_args compact_args;
  auto compact = app.add_subcommand(
    "compact", "Rewrite every bucket not yet compacted with its events "
               "grouped by sourcetype and VM (serve does this by itself for "
               "buckets quiet for parallax.storage.compact-after)");
  add_config_options(*compact, compact_args);

  auto bench = app.add_subcommand("bench", "Run a benchmark and print its "
                                           "figures");
  bench->require_subcommand(1);
  parallax::bench::codec_options codec_opts;
  auto codec = bench->add_subcommand(
    "codec", "Wire-format encode/decode rates on realistic mixed events, "
             "with peers");
  codec->add_option("--events", codec_opts.events, "Events per run")
    ->capture_default_str();
  codec->add_option("--batch", codec_opts.batch, "Events per frame")
    ->capture_default_str();
  codec->add_option("--runs", codec_opts.runs, "Runs; medians are reported")
    ->capture_default_str();
  codec->add_flag("--json", codec_opts.json, "One machine-readable JSON line");

  parallax::bench::ingest_options ingest_opts;
  auto ingest = bench->add_subcommand(
    "ingest", "End-to-end ingest through the real endpoint from a separate "
              "client process, every ack after a synced commit; SQLite FTS5 "
              "as the peer");
  ingest->add_option("--events", ingest_opts.events, "Events to send")
    ->capture_default_str();
  ingest->add_option("--batch", ingest_opts.batch,
                     "Events per frame (and per SQLite transaction)")
    ->capture_default_str();
  ingest->add_option("--window", ingest_opts.window,
                     "Frames the client keeps in flight")
    ->capture_default_str();
  ingest->add_option("--data", ingest_opts.data,
                     "Data directory to use (default: a fresh temporary one, "
                     "removed afterwards)");
  ingest->add_option("--block-events", ingest_opts.block_events,
                     "Events per stored block (parallax.storage.block-events)")
    ->capture_default_str()
    ->check(CLI::Range(1, 65536));
  ingest->add_flag("--no-peer", ingest_opts.skip_peer,
                   "Skip the SQLite FTS5 peer");
  ingest->add_flag("--json", ingest_opts.json, "One machine-readable JSON line");

  parallax::bench::agent_options agent_opts;
  auto agent_bench = bench->add_subcommand(
    "agent", "The agent's footprint: CPU per collection round (processes, "
             "system, identity; encoding and spooling included) with extra "
             "child processes running, as % of one core at a 10 s interval, "
             "and peak RSS");
  agent_bench->add_option("--processes", agent_opts.processes,
                          "Child processes to start (kept asleep)")
    ->capture_default_str();
  agent_bench->add_option("--rounds", agent_opts.rounds,
                          "Collection rounds measured")
    ->capture_default_str();
  agent_bench->add_option("--binary", agent_opts.binary,
                          "parallax-agent binary to measure as its own "
                          "process (default: next to this binary)");
  agent_bench->add_flag("--json", agent_opts.json,
                        "One machine-readable JSON line");

  parallax::bench::nab_options nab_opts;
  auto nab_bench = bench->add_subcommand(
    "nab", "Numenta Anomaly Benchmark (v1.1): the baseline detector over the "
           "corpus, scored as NAB does, next to the published detectors");
  nab_bench->add_option("--data", nab_opts.data,
                        "NAB directory with data/, labels/ and results/ "
                        "(default: $PARALLAX_NAB_DIR, else ../shared/data/nab)");
  nab_bench->add_flag("--json", nab_opts.json, "One machine-readable JSON line");

  parallax::bench::correlate_options corr_opts;
  auto corr_bench = bench->add_subcommand(
    "correlate", "Delta and alert latency from arrival to the PUB socket "
                 "while ingesting a simulated fleet, replayed faster than "
                 "real time, plus filler traffic");
  corr_bench->add_option("--vms", corr_opts.vms, "Simulated VMs")
    ->capture_default_str();
  corr_bench->add_option("--hosts", corr_opts.hosts, "Simulated hosts")
    ->capture_default_str();
  corr_bench->add_option("--minutes", corr_opts.minutes,
                         "Simulated minutes")
    ->capture_default_str();
  corr_bench->add_option("--speed", corr_opts.speed,
                         "Replay the fleet this many times faster than "
                         "real time, each agent and poller sending on its "
                         "own phase")
    ->capture_default_str()
    ->check(CLI::Range(0.01, 1e6));
  corr_bench->add_flag("--burst", corr_opts.burst,
                       "Send the fleet as fast as the server takes it "
                       "instead, every source's 20 simulated seconds at "
                       "once (a synchronised herd)");
  corr_bench->add_option("--batch", corr_opts.batch,
                         "With --burst: events per fleet batch, at most "
                         "(a source's steps merge up to this)")
    ->capture_default_str();
  corr_bench->add_option("--rate", corr_opts.rate,
                         "Events per second offered in all: a second "
                         "client's mixed events make up what the fleet does "
                         "not send (with --burst the fleet comes on top; 0: "
                         "the filler as fast as the server takes it)")
    ->capture_default_str()
    ->check(CLI::NonNegativeNumber);
  corr_bench->add_option("--correlator-nice", corr_opts.correlator_nice,
                         "The nice value of the correlator's thread and the "
                         "parser's, as parallax.correlator.nice (0: the same "
                         "priority as the rest of ingest)")
    ->capture_default_str()
    ->check(CLI::Range(-20, 19));
  corr_bench->add_option("--correlator-rt-priority",
                         corr_opts.correlator_rt_priority,
                         "The real-time priority of the correlator's thread "
                         "and the parser's, as "
                         "parallax.correlator.rt-priority (0: none, the "
                         "nice only)")
    ->capture_default_str()
    ->check(CLI::Range(0, 99));
  corr_bench->add_option("--drift-defer-ms", corr_opts.drift_defer_ms,
                         "While more batches wait, the correlator publishes "
                         "a batch's deltas and leaves their drift work "
                         "(baselines, drift alerts) behind the waiting "
                         "batches for up to this long (0: never)")
    ->capture_default_str()
    ->check(CLI::Range(0.0, 1000.0));
  corr_bench->add_option("--runs", corr_opts.runs,
                         "Run it this many times; a last line gives the "
                         "medians and how many runs met the targets")
    ->capture_default_str()
    ->check(CLI::Range(1, 100));
  corr_bench->add_flag("--json", corr_opts.json,
                       "One machine-readable JSON line");

  parallax::bench::search_options search_opts;
  auto search_bench = bench->add_subcommand(
    "search", "Search latency over generated events spanning 24 h (a rare "
              "term, a 3-term AND, stats count by sourcetype, host), every "
              "answer checked; SQLite FTS5 and ripgrep on the same data as "
              "peers");
  search_bench->add_option("--events", search_opts.events,
                           "Events to generate and load")
    ->capture_default_str();
  search_bench->add_option("--data", search_opts.data,
                           "Data directory to use, empty or absent (default: "
                           "a fresh temporary one, removed afterwards)");
  search_bench->add_option("--block-events", search_opts.block_events,
                           "Events per stored block "
                           "(parallax.storage.block-events)")
    ->capture_default_str()
    ->check(CLI::Range(1, 65536));
  search_bench->add_flag("--skip-peers", search_opts.skip_peers,
                         "Skip the SQLite FTS5 and ripgrep peers");
  search_bench->add_flag("--compact", search_opts.compact,
                         "Compact every bucket after loading, as serve does "
                         "with buckets that went quiet");
  search_bench->add_flag("--json", search_opts.json,
                         "One machine-readable JSON line");

  parallax::tools::paint_args paint_a;
  auto paint_bench = bench->add_subcommand(
    "paint", "First paint of the VM page (24 h of 20 s data, one VM) in "
             "headless Chromium: navigation to both charts drawn, cold and "
             "warm; needs node, web/node_modules and chromium "
             "(scripts/setup.sh)");
  paint_bench->add_option("--loads", paint_a.loads,
                          "Warm loads after the cold one; the median is "
                          "reported")
    ->capture_default_str()
    ->check(CLI::Range(1, 1000));
  paint_bench->add_option("--source", paint_a.source,
                          "The source tree holding bench/browser/, "
                          "test/browser/ and web/ (default: "
                          "$PARALLAX_SOURCE_DIR, else the tree this binary "
                          "was built from)");
  paint_bench->add_flag("--json", paint_a.json,
                        "One machine-readable JSON line");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    if (argc == 1) {
      std::fputs(app.help().c_str(), stderr);
      return 2;
    }
    std::fprintf(stderr, "parallax: %s\nRun `parallax --help` for usage.\n",
                 e.what());
    return 2;
  }
  if (*serve)
    return run_serve(serve_args);
  if (*tail_cmd)
    return run_tail(tl_args);
  if (*demo_cmd)
    return run_demo(demo_a);
  if (*decode)
    return run_decode(dec_args);
  if (*config)
    return run_config(cfg_args);
  if (*ingest_cmd)
    return run_ingest(in_args);
  if (*agent_cmd)
    return run_agent(ag_args);
  if (*search_cmd)
    return run_search(se_args);
  if (*vm_cmd)
    return run_vm(vm_a);
  if (*buckets)
    return run_buckets(bk_args);
  if (*rebuild)
    return run_rebuild_summaries(rebuild_args);
  if (*compact)
    return run_compact(compact_args);
  if (*simulate_cmd)
    return run_simulate(sim_args);
  if (*codec)
    return parallax::bench::run_codec(codec_opts);
  if (*corr_bench)
    return parallax::bench::run_correlate(corr_opts);
  if (*ingest)
    return parallax::bench::run_ingest(ingest_opts);
  if (*agent_bench)
    return parallax::bench::run_agent(agent_opts);
  if (*nab_bench)
    return parallax::bench::run_nab(nab_opts);
  if (*search_bench)
    return parallax::bench::run_search(search_opts);
  if (*paint_bench)
    return run_bench_paint(paint_a);
  return 2;
}
