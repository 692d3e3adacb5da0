#include "parallax/pipeline/agent.hpp"

#include "parallax/pipeline/logging.hpp"
#include "parallax/schemas/wire.hpp"

#include <random>
#include <sstream>

#include <fmt/format.h>
#include <unistd.h>

namespace parallax {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view state_header = "parallax-agent-state 1";
// Keep frames well below the server's default frame limit (8 MiB).
constexpr std::size_t max_batch_events = 5'000;

std::int64_t mono_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
           std::chrono::steady_clock::now().time_since_epoch())
    .count();
}

std::string system_hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0)
    return "localhost";
  return buf;
}

// Host names may hold anything; the agent id must be a short, valid name.
std::string sanitize(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 64))
    out += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'
            || c == '.')
             ? c
             : '_';
  return out.empty() ? std::string{"guest"} : out;
}

struct saved_state {
  std::uint64_t next_seq = 1;
  std::string checkpoints;
};

saved_state parse_state(std::string_view text) {
  saved_state s;
  auto eol = text.find('\n');
  if (text.substr(0, eol) != state_header)
    return s;
  text.remove_prefix(eol == text.npos ? text.size() : eol + 1);
  eol = text.find('\n');
  auto line = std::string{text.substr(0, eol)};
  if (line.starts_with("next-sequence "))
    s.next_seq = std::stoull(line.substr(14));
  text.remove_prefix(eol == text.npos ? text.size() : eol + 1);
  s.checkpoints = std::string{text};
  return s;
}

} // namespace

result<std::unique_ptr<guest_agent>>
guest_agent::open(const agent_config& cfg, const fs::path& data_dir,
                  agent_options opts) {
  auto dir = cfg.state_dir.empty() ? data_dir / "agent" : cfg.state_dir;
  auto lock = storage::dir_lock::acquire(dir);
  if (!lock)
    return lock.error();
  auto sp = spool::open(dir / "spool", cfg.spool_max_bytes);
  if (!sp)
    return sp.error();
  std::unique_ptr<guest_agent> a{
    new guest_agent{cfg, opts, dir, std::move(*lock), std::move(*sp)}};
  for (const auto& in : cfg.inputs) {
    a->want_processes_ |= in == "processes";
    a->want_system_ |= in == "system";
    a->want_identity_ |= in == "identity";
    a->want_logs_ |= in == "logs";
  }
  std::random_device rd;
  // The agent id: made once, kept forever.
  std::string text;
  auto id_path = dir / "agent-id";
  if (procfs::read_file(id_path, text) == 0 && !text.empty()) {
    while (!text.empty() && (text.back() == '\n' || text.back() == ' '))
      text.pop_back();
    a->agent_id_ = text;
  } else {
    auto host = procfs::read_identity(cfg.root).hostname;
    if (host.empty())
      host = system_hostname();
    a->agent_id_ = fmt::format("{}-{:08x}{:08x}", sanitize(host), rd(), rd());
    if (auto err = write_file_durably(id_path, a->agent_id_ + "\n"))
      return err;
  }
  a->source_id_ = fmt::format("{}.{:08x}", a->agent_id_, rd());
  // The state file and the newest spooled batch: the newer one wins.
  saved_state st;
  if (procfs::read_file(dir / "state", text) == 0)
    st = parse_state(text);
  if (auto newest = a->spool_.newest(); newest && *newest >= st.next_seq) {
    st.next_seq = *newest + 1;
    if (auto e = a->spool_.read(*newest); e && !e->meta.empty())
      st.checkpoints = e->meta;
  }
  a->next_seq_ = st.next_seq;
  if (a->want_processes_)
    a->processes_ = std::make_unique<procfs::process_sampler>(cfg.root,
                                                              opts.host);
  if (a->want_system_) {
    a->system_ = std::make_unique<procfs::system_sampler>(cfg.root);
    // NIC counters (os:net) and block device counters (os:disk) belong to
    // the "system" input.
    a->net_ = std::make_unique<procfs::net_sampler>(cfg.root);
    a->disks_ = std::make_unique<procfs::disk_sampler>(cfg.root);
  }
  if (a->want_logs_) {
    std::vector<tail_input> inputs;
    for (const auto& g : cfg.auth_logs)
      inputs.push_back({g, "os:auth"});
    for (const auto& g : cfg.syslog_logs)
      inputs.push_back({g, "os:syslog"});
    for (const auto& g : cfg.cron_logs)
      inputs.push_back({g, "os:cron"});
    a->tailer_ = std::make_unique<log_tailer>(std::move(inputs));
    a->tailer_->restore(st.checkpoints);
  }
  if (opts.connect) {
    a->zctx_ = std::make_unique<zmq::context>();
    ingest_client_options co;
    co.endpoint = cfg.server;
    co.window = opts.window;
    co.resend_after = opts.resend_after;
    // The agent never gives up on the server: batches wait in the spool.
    co.connect_timeout = std::chrono::hours{24 * 365};
    auto client = ingest_client::connect(*a->zctx_, co);
    if (!client)
      return client.error();
    a->client_ = std::move(*client);
    auto* self = a.get();
    a->client_->on_rejected = [self](const wire::reply& r) {
      ++self->stats_.batches_rejected;
      log::error("agent", "the server rejected batch {}: {}: {}",
                 r.sequence.value_or(0), to_string(r.code), r.message);
    };
    a->client_->on_done = [self](std::uint64_t seq) {
      ++self->stats_.batches_answered;
      self->in_flight_.erase(seq);
      self->spool_.remove(seq);
    };
  }
  if (a->spool_.size() > 0)
    log::info("agent", "{} unacknowledged batches in the spool ({} bytes) "
                       "will be resent first",
              a->spool_.size(), a->spool_.bytes());
  return a;
}

guest_agent::guest_agent(agent_config cfg, agent_options opts, fs::path dir,
                         storage::dir_lock lock, spool sp)
  : cfg_{std::move(cfg)},
    opts_{opts},
    dir_{std::move(dir)},
    lock_{std::move(lock)},
    spool_{std::move(sp)} {
}

guest_agent::~guest_agent() = default;

void guest_agent::stamp(event& e) const {
  e.index = cfg_.index;
  e.host = hostname_;
  e.fields.push_back({"agent_id", agent_id_});
}

error guest_agent::save_state() {
  std::string text{state_header};
  text += fmt::format("\nnext-sequence {}\n", next_seq_);
  if (tailer_)
    text += tailer_->checkpoints();
  return write_file_durably(dir_ / "state", text);
}

error guest_agent::spool_batch(std::vector<event>& events) {
  if (events.empty())
    return {};
  wire::batch b;
  b.source_id = source_id_;
  b.sequence = next_seq_;
  b.events = std::move(events);
  events.clear();
  frame_.clear();
  wire::encode(b, frame_);
  auto meta = tailer_ ? tailer_->checkpoints() : std::string{};
  if (auto err = spool_.put(b.sequence, meta, frame_))
    return err;
  ++next_seq_;
  ++stats_.batches_spooled;
  stats_.bytes_spooled += frame_.size();
  return save_state();
}

error guest_agent::collect() {
  ++stats_.rounds;
  auto wall = now_ns();
  std::vector<event> events;
  procfs::identity id;
  if (want_identity_ || hostname_.empty()) {
    id = procfs::read_identity(cfg_.root);
    hostname_ = id.hostname.empty() && procfs::is_system_root(cfg_.root)
                  ? system_hostname()
                  : id.hostname;
  }
  if (want_identity_) {
    auto now = std::chrono::steady_clock::now();
    if (!last_identity_ || !(*last_identity_ == id)
        || now - identity_sent_ >= cfg_.identity_interval) {
      if (!id.bios_readable && !bios_hint_logged_) {
        auto path = cfg_.root / "sys/class/dmi/id/product_uuid";
        std::error_code ec;
        if (!std::filesystem::exists(path, ec))
          log::info("agent", "{} does not exist (no DMI tables here): the "
                             "BIOS UUID is not sent (bios_readable=false)",
                    path.string());
        else
          log::info("agent", "cannot read {}: run as root to read the BIOS "
                             "UUID (bios_readable=false)",
                    path.string());
        bios_hint_logged_ = true;
      }
      for (auto& e : id.to_events(wall)) {
        stamp(e);
        events.push_back(std::move(e));
        ++stats_.identity_events;
      }
      last_identity_ = std::move(id);
      identity_sent_ = now;
    }
  }
  if (system_)
    if (auto e = system_->sample(wall)) {
      stamp(*e);
      events.push_back(std::move(*e));
      ++stats_.system_events;
    }
  // The samplers that append events of their own: stamped and counted.
  auto take = [&](auto& sampler, std::uint64_t& count) {
    if (!sampler)
      return;
    auto first = events.size();
    sampler->sample(wall, mono_ns(), events);
    for (auto i = first; i < events.size(); ++i)
      stamp(events[i]);
    count += events.size() - first;
  };
  take(net_, stats_.net_events);
  take(disks_, stats_.disk_events);
  take(processes_, stats_.process_events);
  // Metrics go in batches of their own, before any log lines, so that each
  // log batch carries exactly the checkpoints of its last line.
  while (events.size() > max_batch_events) {
    std::vector<event> rest(std::make_move_iterator(events.begin()
                                                    + max_batch_events),
                            std::make_move_iterator(events.end()));
    events.resize(max_batch_events);
    if (auto err = spool_batch(events))
      return err;
    events = std::move(rest);
  }
  if (auto err = spool_batch(events))
    return err;
  if (tailer_) {
    std::size_t round = 0;
    bool more = true;
    while (more && round < opts_.log_round_bytes) {
      std::size_t bytes = 0;
      more = tailer_->poll(
        [&](const std::string& path, const std::string& st,
            std::string_view line) {
          event e;
          e.time = unknown_time; // the server's parser reads it from the line
          e.source = path;
          e.sourcetype = st;
          e.raw = std::string{line};
          stamp(e);
          bytes += line.size() + 1;
          events.push_back(std::move(e));
        },
        opts_.log_batch_bytes);
      stats_.log_events += events.size();
      round += bytes > 0 ? bytes : opts_.log_round_bytes;
      if (auto err = spool_batch(events))
        return err;
    }
  }
  log::debug("agent", "round {}: {} processes, {} system, {} net, {} disk, "
                      "{} identity, {} log lines so far; spool {} batches ({} "
                      "bytes), {} answered, {} dropped",
             stats_.rounds, stats_.process_events, stats_.system_events,
             stats_.net_events, stats_.disk_events, stats_.identity_events,
             stats_.log_events, spool_.size(),
             spool_.bytes(), stats_.batches_answered,
             spool_.dropped_batches());
  return {};
}

error guest_agent::pump(std::chrono::milliseconds wait) {
  if (!client_)
    return {};
  if (auto err = client_->poll(wait))
    log::warning("agent", "{}", err.message);
  if (client_->outstanding() >= opts_.window)
    return {};
  for (auto seq : spool_.sequences()) {
    if (client_->outstanding() >= opts_.window)
      break;
    if (in_flight_.count(seq))
      continue;
    auto e = spool_.read(seq);
    if (!e) {
      log::error("agent", "{}; dropping it", e.error().message);
      spool_.remove(seq);
      continue;
    }
    in_flight_.insert(seq);
    if (auto err = client_->send(seq, std::move(e->frame),
                                 std::chrono::milliseconds{0}))
      log::warning("agent", "sending batch {}: {}", seq, err.message);
  }
  return {};
}

error guest_agent::flush(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (spool_.size() > 0) {
    if (!client_)
      return error{ec::usage, "the agent is not connected"};
    if (std::chrono::steady_clock::now() >= deadline)
      return error{ec::system_error,
                   fmt::format("{} batches still unacknowledged after {} ms "
                               "(kept in {})",
                               spool_.size(), timeout.count(),
                               spool_.dir().string())};
    pump(std::chrono::milliseconds{50});
  }
  return {};
}

} // namespace parallax
