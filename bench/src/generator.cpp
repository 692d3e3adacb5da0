#include "parallax/bench/generator.hpp"

#include <array>
#include <random>
#include <string>

#include <fmt/format.h>

namespace parallax::bench {

namespace {

constexpr std::array<std::string_view, 8> users = {
  "root", "deploy", "postgres", "www-data", "alice", "bob", "nobody", "backup"};
constexpr std::array<std::string_view, 8> commands = {
  "nginx", "postgres", "java", "sshd", "cron", "python3", "node", "redis-server"};

std::string mac_of(std::size_t vm, std::size_t nic) {
  return fmt::format("52:54:00:{:02x}:{:02x}:{:02x}", (vm >> 8) & 0xff,
                     vm & 0xff, nic);
}

std::string uuid_of(std::size_t vm) {
  return fmt::format("4216{:04x}-7fa8-60fa-9d1c-0050560{:05x}", vm & 0xffff,
                     vm & 0xfffff);
}

} // namespace

struct mixed_generator::impl {
  generator_options opts;
  std::mt19937_64 rng;
  std::size_t i = 0;
};

mixed_generator::mixed_generator(const generator_options& opts)
  : impl_{new impl{opts, std::mt19937_64{opts.seed}}} {
}

mixed_generator::~mixed_generator() {
  delete impl_;
}

std::vector<event> make_mixed_events(std::size_t n,
                                     const generator_options& opts) {
  mixed_generator gen{opts};
  std::vector<event> out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i)
    out.push_back(gen.next());
  return out;
}

event mixed_generator::next() {
  auto& rng = impl_->rng;
  const auto& opts = impl_->opts;
  auto i = impl_->i++;
  auto pick = [&](std::size_t k) {
    return static_cast<std::size_t>(rng() % k);
  };
  {
    event e;
    e.time = opts.start + static_cast<time_ns>(i) * opts.step;
    auto vm = pick(opts.vms);
    auto vm_name = fmt::format("web-{:02}", vm);
    switch (i % 4) {
      case 0: { // hypervisor sample, libvirt-style
        e.index = "hv";
        e.host = fmt::format("hv-{:02}", vm % opts.hosts);
        e.source = "libvirt:qemu:///system";
        e.sourcetype = "hv:libvirt";
        e.fields = {
          {"vm_name", vm_name},
          {"vm_uuid", uuid_of(vm)},
          {"mac", mac_of(vm, 0)},
          {"cpu_pct", static_cast<double>(pick(40'000)) / 100.0},
          {"balloon_current_kib", static_cast<std::int64_t>(4'194'304)},
          {"balloon_rss_kib", static_cast<std::int64_t>(1'000'000 + pick(3'000'000))},
          {"net_rx_bytes", static_cast<std::int64_t>(pick(1u << 30))},
          {"net_tx_bytes", static_cast<std::int64_t>(pick(1u << 30))},
          {"vcpus", static_cast<std::int64_t>(1 + pick(8))},
          {"state", std::string{"running"}},
        };
        break;
      }
      case 1:
      case 2: { // guest process sample
        auto u = pick(users.size());
        auto c = pick(commands.size());
        e.index = "os";
        e.host = vm_name;
        e.source = "agent:/proc";
        e.sourcetype = "os:process";
        e.fields = {
          {"pid", static_cast<std::int64_t>(100 + pick(60'000))},
          {"ppid", static_cast<std::int64_t>(1 + pick(2'000))},
          {"state", std::string{"S"}},
          {"args", fmt::format("{} --config /etc/{}/{}.conf", commands[c],
                               commands[c], commands[c])},
          {"vsz_kb", static_cast<std::int64_t>(pick(8'000'000))},
          {"user", std::string{users[u]}},
          {"command", std::string{commands[c]}},
          {"pct_cpu", static_cast<double>(pick(10'000)) / 100.0},
          {"rss_kb", static_cast<std::int64_t>(pick(2'000'000))},
          {"threads", static_cast<std::int64_t>(1 + pick(64))},
        };
        break;
      }
      default: { // auth/syslog line
        e.index = "os";
        e.host = vm_name;
        e.source = "/var/log/auth.log";
        e.sourcetype = "os:auth";
        auto u = users[pick(users.size())];
        e.raw = fmt::format(
          "Nov 25 20:18:{:02} {} sshd[{}]: Accepted publickey for {} from "
          "10.0.{}.{} port {} ssh2",
          i % 60, vm_name, 1000 + pick(30'000), u, pick(256), pick(256),
          1024 + pick(60'000));
        e.fields = {{"user", std::string{u}},
                    {"action", std::string{"accepted"}},
                    {"process", std::string{"sshd"}},
                    {"auth_method", std::string{"publickey"}}};
        break;
      }
    }
    return e;
  }
}

} // namespace parallax::bench
