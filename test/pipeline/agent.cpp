// The in-guest agent's pieces against fixture trees built here: procfs
// readers (procfs.hpp), log tailing with rotation and checkpoints
// (log_tail.hpp), the spool (spool.hpp), and the agent's restart behaviour
// (agent.hpp) against a real ZeroMQ ROUTER socket playing the server.

#include "parallax/pipeline/agent.hpp"
#include "parallax/pipeline/log_tail.hpp"
#include "parallax/pipeline/procfs.hpp"
#include "parallax/pipeline/spool.hpp"
#include "parallax/pipeline/zmq.hpp"
#include "parallax/schemas/reply.hpp"
#include "parallax/schemas/wire.hpp"

#include "field_of.hpp"
#include "temp_dir.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <zmq.h>

using namespace parallax;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

void write(const fs::path& p, std::string_view text) {
  fs::create_directories(p.parent_path());
  std::ofstream out{p, std::ios::binary | std::ios::trunc};
  out << text;
}

void append(const fs::path& p, std::string_view text) {
  std::ofstream out{p, std::ios::binary | std::ios::app};
  out << text;
}

std::string slurp(const fs::path& p) {
  std::ifstream in{p, std::ios::binary};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A /proc/PID/stat line: fields 3..24 with the ones the agent reads set.
std::string stat_line(int pid, std::string_view comm, char state, int ppid,
                      unsigned long utime, unsigned long stime, int threads,
                      unsigned long starttime, unsigned long vsize,
                      long rss_pages) {
  std::ostringstream s;
  s << pid << " (" << comm << ") " << state << ' ' << ppid
    << " 1 1 0 -1 4194304 100 0 0 0 " // pgrp session tty tpgid flags minflt cminflt majflt cmajflt
    << utime << ' ' << stime << " 0 0 20 0 " << threads << " 0 " << starttime
    << ' ' << vsize << ' ' << rss_pages
    << " 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n";
  return s.str();
}

void write_process(const fs::path& root, int pid, std::string_view comm,
                   unsigned long ticks_u, unsigned long ticks_s,
                   unsigned long starttime, std::uint32_t uid = 1000,
                   std::uint32_t gid = 1000,
                   std::string_view cmdline = std::string_view{"/usr/bin/app\0--flag\0x y\0", 24}) {
  auto dir = root / "proc" / std::to_string(pid);
  write(dir / "stat", stat_line(pid, comm, 'S', 1, ticks_u, ticks_s, 3,
                                starttime, 123'456'789, 250));
  write(dir / "status",
        "Name:\tapp\nState:\tS (sleeping)\nUid:\t" + std::to_string(uid)
          + "\t0\t0\t0\nGid:\t" + std::to_string(gid)
          + "\t0\t0\t0\nVmRSS:\t1000 kB\n");
  write(dir / "cmdline", cmdline);
}

// A small guest: boot time, meminfo, loadavg, uptime, users, NICs.
void write_system(const fs::path& root, unsigned long user = 1000,
                  unsigned long idle = 9000, unsigned long iowait = 0,
                  unsigned long steal = 0) {
  write(root / "proc/stat",
        "cpu  " + std::to_string(user) + " 0 0 " + std::to_string(idle) + " "
          + std::to_string(iowait) + " 0 0 " + std::to_string(steal)
          + " 0 0\ncpu0 1 0 0 1 0 0 0 0 0 0\ncpu1 1 0 0 1 0 0 0 0 0 0\n"
            "intr 0\nctxt 0\nbtime 1700000000\nprocesses 10\n");
  write(root / "proc/meminfo",
        "MemTotal:        4000000 kB\nMemFree:          500000 kB\n"
        "MemAvailable:    3000000 kB\nSwapTotal:       1000000 kB\n"
        "SwapFree:         900000 kB\n");
  write(root / "proc/loadavg", "0.50 0.25 0.10 1/100 1234\n");
  write(root / "proc/uptime", "12345.67 20000.00\n");
  write(root / "proc/sys/kernel/hostname", "guest-01\n");
  write(root / "etc/passwd", "root:x:0:0:root:/root:/bin/bash\n"
                             "# a comment\n"
                             "alice:x:1000:1000:Alice:/home/alice:/bin/sh\n");
  write(root / "etc/group", "root:x:0:\nstaff:x:1000:alice\n");
}

using test::get;

const event* by_pid(const std::vector<event>& evs, std::int64_t pid) {
  for (const auto& e : evs)
    if (auto v = e.find("pid"); v && std::get<std::int64_t>(*v) == pid)
      return &e;
  return nullptr;
}

constexpr procfs::host_constants fixture_host{100, 4096};

} // namespace

// -- procfs ------------------------------------------------------------------

TEST_CASE("procfs: a process with a weird command name is read exactly") {
  test::temp_dir root;
  write_system(root.path);
  // starttime 12345 ticks = 123.45 s after boot.
  write_process(root.path, 4242, "my (weird) cmd", 100, 50, 12345);
  procfs::process_sampler s{root.path, fixture_host};
  std::vector<event> out;
  s.sample(1'800'000'000'000'000'000, 0, out);
  REQUIRE(out.size() == 1);
  const auto& e = out[0];
  CHECK(e.sourcetype == "os:process");
  CHECK(get<std::int64_t>(e, "pid") == 4242);
  CHECK(get<std::int64_t>(e, "ppid") == 1);
  CHECK(get<std::string>(e, "command") == "my (weird) cmd");
  CHECK(get<std::string>(e, "args") == "/usr/bin/app --flag x y");
  CHECK(get<std::string>(e, "user") == "alice"); // from <root>/etc/passwd
  CHECK(get<std::int64_t>(e, "uid") == 1000);
  CHECK(get<std::string>(e, "group") == "staff");
  CHECK(get<std::int64_t>(e, "gid") == 1000);
  CHECK(get<std::string>(e, "state") == "S");
  // btime 1700000000 s + 12345 ticks / 100 Hz = 1700000123.45 s.
  CHECK(get<std::int64_t>(e, "start_time") == 1'700'000'123'450'000'000);
  CHECK(get<std::int64_t>(e, "rss_bytes") == 250 * 4096);
  CHECK(get<std::int64_t>(e, "vsz_bytes") == 123'456'789);
  CHECK(get<std::int64_t>(e, "threads") == 3);
  CHECK(e.find("cpu_pct") == nullptr); // first sample: no rate
}

TEST_CASE("procfs: parse_stat takes the command up to the last parenthesis") {
  auto s = procfs::parse_stat(stat_line(7, ") ) (x", 'R', 2, 1, 2, 4, 9, 10, 11));
  REQUIRE(s);
  CHECK(s->command == ") ) (x");
  CHECK(s->state == 'R');
  CHECK(s->ppid == 2);
  CHECK(s->starttime == 9);
  CHECK(!procfs::parse_stat("12 (truncated"));
  CHECK(!procfs::parse_stat("12 (x) S 1 2"));
}

TEST_CASE("procfs: cpu_pct comes from tick deltas over the interval") {
  test::temp_dir root;
  write_system(root.path);
  write_process(root.path, 10, "busy", 100, 50, 500);
  write_process(root.path, 11, "idle", 7, 3, 600);
  procfs::process_sampler s{root.path, fixture_host};
  std::vector<event> first, second;
  s.sample(1, 0, first);
  // 2 s later: pid 10 used 150 + 50 = 200 more ticks = 2 s of CPU at
  // 100 Hz over 2 s = 100 % of one core; pid 11 used 10 ticks = 0.1 s = 5 %.
  write_process(root.path, 10, "busy", 250, 100, 500);
  write_process(root.path, 11, "idle", 15, 5, 600);
  s.sample(2, 2'000'000'000, second);
  REQUIRE(second.size() == 2);
  CHECK(get<double>(*by_pid(second, 10), "cpu_pct") == doctest::Approx(100.0));
  CHECK(get<double>(*by_pid(second, 11), "cpu_pct") == doctest::Approx(5.0));
}

TEST_CASE("procfs: a reused pid does not inherit the old process's ticks") {
  test::temp_dir root;
  write_system(root.path);
  write_process(root.path, 10, "old", 1000, 1000, 500);
  procfs::process_sampler s{root.path, fixture_host};
  std::vector<event> out;
  s.sample(1, 0, out);
  // Same pid, another start time: a new process, whose first sample has no
  // rate (its 10 ticks are less than the old 2000: a naive delta by pid
  // would even go negative).
  write_process(root.path, 10, "new", 5, 5, 9000);
  out.clear();
  s.sample(2, 1'000'000'000, out);
  REQUIRE(out.size() == 1);
  CHECK(get<std::string>(out[0], "command") == "new");
  CHECK(out[0].find("cpu_pct") == nullptr);
  // Its second sample has one: 10 more ticks in 1 s = 10 %.
  write_process(root.path, 10, "new", 10, 10, 9000);
  out.clear();
  s.sample(3, 2'000'000'000, out);
  CHECK(get<double>(out[0], "cpu_pct") == doctest::Approx(10.0));
}

TEST_CASE("procfs: a process that vanishes mid-read is skipped silently") {
  test::temp_dir root;
  write_system(root.path);
  write_process(root.path, 10, "stays", 1, 1, 5);
  // pid 11 is listed but its files are gone (exited between readdir and
  // open); pid 12 lost its status file after its stat was read.
  fs::create_directories(root.path / "proc/11");
  write(root.path / "proc/12/stat", stat_line(12, "dying", 'Z', 1, 1, 1, 1, 7, 0, 0));
  procfs::process_sampler s{root.path, fixture_host};
  std::vector<event> out;
  s.sample(1, 0, out);
  REQUIRE(out.size() == 1);
  CHECK(get<std::int64_t>(out[0], "pid") == 10);
  CHECK(s.vanished() == 2);
}

TEST_CASE("procfs: unknown uids are named by number, kernel threads have no args") {
  test::temp_dir root;
  write_system(root.path);
  write_process(root.path, 2, "kthreadd", 0, 0, 1, 4321, 8765, "");
  procfs::process_sampler s{root.path, fixture_host};
  std::vector<event> out;
  s.sample(1, 0, out);
  REQUIRE(out.size() == 1);
  CHECK(get<std::string>(out[0], "user") == "4321");
  CHECK(get<std::string>(out[0], "group") == "8765");
  CHECK(get<std::string>(out[0], "args") == "");
}

TEST_CASE("procfs: real passwd and group files parse") {
  // Real files from CentOS 7.7 and Ubuntu 18.04 VMs (kellyjonbrazil/jc
  // tests/fixtures, MIT; see ../shared/data/README.md).
  auto dir = fs::path{PARALLAX_SHARED_DATA} / "procfs-samples";
  auto centos = procfs::parse_id_file(slurp(dir / "centos-7.7_passwd.out"));
  REQUIRE(!centos.empty());
  CHECK(centos.at(0) == "root");
  CHECK(centos.at(1) == "bin");
  CHECK(centos.at(4) == "lp");
  auto ubuntu_groups = procfs::parse_id_file(slurp(dir / "ubuntu-18.04_group.out"));
  CHECK(ubuntu_groups.at(0) == "root");
  CHECK(ubuntu_groups.at(4) == "adm");
  auto centos_groups = procfs::parse_id_file(slurp(dir / "centos-7.7_group.out"));
  CHECK(centos_groups.at(0) == "root");
  auto ubuntu = procfs::parse_id_file(slurp(dir / "ubuntu-18.04_passwd.out"));
  CHECK(ubuntu.at(0) == "root");
  CHECK(ubuntu.size() > 10);
}

TEST_CASE("procfs: system figures and CPU shares from two /proc/stat samples") {
  test::temp_dir root;
  write_system(root.path, 1000, 9000, 0, 0);
  procfs::system_sampler s{root.path};
  auto first = s.sample(1);
  REQUIRE(first);
  CHECK(first->sourcetype == "os:system");
  CHECK(get<std::int64_t>(*first, "mem_total_bytes") == 4'000'000LL * 1024);
  CHECK(get<std::int64_t>(*first, "mem_available_bytes") == 3'000'000LL * 1024);
  CHECK(get<std::int64_t>(*first, "mem_used_bytes") == 1'000'000LL * 1024);
  CHECK(get<double>(*first, "mem_used_pct") == doctest::Approx(25.0));
  CHECK(get<std::int64_t>(*first, "swap_total_bytes") == 1'000'000LL * 1024);
  CHECK(get<std::int64_t>(*first, "swap_free_bytes") == 900'000LL * 1024);
  CHECK(get<std::int64_t>(*first, "cpus") == 2);
  CHECK(get<double>(*first, "load1") == doctest::Approx(0.5));
  CHECK(get<double>(*first, "load15") == doctest::Approx(0.1));
  CHECK(get<double>(*first, "uptime_s") == doctest::Approx(12345.67));
  CHECK(first->find("cpu_busy_pct") == nullptr);
  // +300 user, +500 idle, +100 iowait, +100 steal = 1000 ticks in all:
  // busy 30 %, iowait 10 %, steal 10 %.
  write_system(root.path, 1300, 9500, 100, 100);
  auto second = s.sample(2);
  REQUIRE(second);
  CHECK(get<double>(*second, "cpu_busy_pct") == doctest::Approx(30.0));
  CHECK(get<double>(*second, "cpu_iowait_pct") == doctest::Approx(10.0));
  CHECK(get<double>(*second, "cpu_steal_pct") == doctest::Approx(10.0));
  // Counters going backwards (a reset): no rates.
  write_system(root.path, 10, 10, 0, 0);
  auto third = s.sample(3);
  REQUIRE(third);
  CHECK(third->find("cpu_busy_pct") == nullptr);
}

TEST_CASE("procfs: identity: hostname, NIC kinds, MACs, BIOS") {
  test::temp_dir root;
  write_system(root.path);
  auto net = root.path / "sys/class/net";
  write(net / "eth0/address", "52:54:00:A1:00:01\n");
  write(net / "eth0/operstate", "up\n");
  fs::create_directories(net / "eth0/device");
  write(net / "lo/address", "00:00:00:00:00:00\n");
  write(net / "lo/operstate", "unknown\n");
  write(net / "lo/type", "772\n");
  write(net / "docker0/address", "02:42:ac:11:00:01\n");
  write(net / "docker0/operstate", "down\n");
  fs::create_directories(net / "docker0/bridge");
  write(net / "veth1/address", "6a:1b:2c:3d:4e:5f\n");
  write(net / "veth1/operstate", "up\n");
  auto id = procfs::read_identity(root.path);
  CHECK(id.hostname == "guest-01");
  REQUIRE(id.nics.size() == 4);
  std::map<std::string, std::string> kinds;
  for (const auto& n : id.nics)
    kinds[n.name] = n.kind;
  CHECK(kinds["eth0"] == "physical");
  CHECK(kinds["lo"] == "loopback");
  CHECK(kinds["docker0"] == "bridge");
  CHECK(kinds["veth1"] == "virtual");
  CHECK(!id.bios_readable);
  auto evs = id.to_events(5);
  REQUIRE(evs.size() == 5);
  CHECK(evs[0].sourcetype == "os:identity");
  CHECK(get<std::string>(evs[0], "macs") == "52:54:00:a1:00:01"); // normalised
  CHECK(get<std::string>(evs[0], "ips") == ""); // fixture roots have no IPs
  CHECK(get<bool>(evs[0], "bios_readable") == false);
  CHECK(evs[0].find("bios_uuid") == nullptr);
  CHECK(evs[1].sourcetype == "os:nic");

  write(root.path / "sys/class/dmi/id/product_uuid",
        "5C241F42-A87F-FA60-1234-56789ABCDEF0\n");
  write(root.path / "sys/class/dmi/id/product_serial", "VMware-42 1f 24 5c\n");
  auto id2 = procfs::read_identity(root.path);
  CHECK(id2.bios_readable);
  CHECK(id2.bios_uuid == "5c241f42-a87f-fa60-1234-56789abcdef0");
  CHECK(id2.bios_serial == "VMware-42 1f 24 5c");
  CHECK(!(id == id2));
}

namespace {

// An interface under <root>/sys/class/net with its traffic counters.
void write_nic(const fs::path& root, std::string_view name,
               std::string_view mac, int ifindex, std::uint64_t rx_bytes,
               std::uint64_t tx_bytes, std::uint64_t rx_packets,
               std::uint64_t tx_packets) {
  auto dir = root / "sys/class/net" / name;
  write(dir / "address", std::string{mac} + "\n");
  write(dir / "ifindex", std::to_string(ifindex) + "\n");
  write(dir / "statistics/rx_bytes", std::to_string(rx_bytes) + "\n");
  write(dir / "statistics/tx_bytes", std::to_string(tx_bytes) + "\n");
  write(dir / "statistics/rx_packets", std::to_string(rx_packets) + "\n");
  write(dir / "statistics/tx_packets", std::to_string(tx_packets) + "\n");
}

const event* by_nic(const std::vector<event>& evs, std::string_view nic) {
  for (const auto& e : evs)
    if (auto v = e.find("nic"); v && std::get<std::string>(*v) == nic)
      return &e;
  return nullptr;
}

} // namespace

TEST_CASE("procfs: os:net counters and exact rates from two samples") {
  test::temp_dir root;
  write_system(root.path);
  write_nic(root.path, "lo", "00:00:00:00:00:00", 1, 5000, 5000, 50, 50);
  write(root.path / "sys/class/net/lo/type", "772\n");
  write_nic(root.path, "eth0", "52-54-00-A1-00-01", 2, 1'000'000, 200'000,
            1000, 400);
  fs::create_directories(root.path / "sys/class/net/eth0/device");
  write_nic(root.path, "docker0", "02:42:ac:11:00:01", 3, 10, 20, 1, 2);
  fs::create_directories(root.path / "sys/class/net/docker0/bridge");
  procfs::net_sampler s{root.path};
  std::vector<event> first;
  s.sample(100, 5'000'000'000, first);
  REQUIRE(first.size() == 2); // not loopback
  CHECK(first[0].sourcetype == "os:net");
  CHECK(get<std::string>(first[0], "nic") == "docker0"); // sorted by name
  CHECK(get<std::string>(first[0], "kind") == "bridge");
  const auto* e0 = by_nic(first, "eth0");
  REQUIRE(e0);
  CHECK(e0->time == 100);
  CHECK(get<std::string>(*e0, "mac") == "52:54:00:a1:00:01"); // normalised
  CHECK(get<std::string>(*e0, "kind") == "physical");
  CHECK(get<std::int64_t>(*e0, "rx_bytes") == 1'000'000);
  CHECK(get<std::int64_t>(*e0, "tx_bytes") == 200'000);
  CHECK(get<std::int64_t>(*e0, "rx_packets") == 1000);
  CHECK(get<std::int64_t>(*e0, "tx_packets") == 400);
  for (auto f : {"rx_bytes_per_s", "tx_bytes_per_s", "rx_packets_per_s",
                 "tx_packets_per_s"})
    CHECK_MESSAGE(e0->find(f) == nullptr, f); // first sample: no rates

  // 4 s later: +2 000 000 / +400 000 bytes, +2000 / +800 packets on eth0.
  write_nic(root.path, "eth0", "52-54-00-A1-00-01", 2, 3'000'000, 600'000,
            3000, 1200);
  write_nic(root.path, "docker0", "02:42:ac:11:00:01", 3, 10, 20, 1, 2);
  std::vector<event> second;
  s.sample(200, 9'000'000'000, second);
  REQUIRE(second.size() == 2);
  const auto* e1 = by_nic(second, "eth0");
  REQUIRE(e1);
  CHECK(get<double>(*e1, "rx_bytes_per_s") == 500'000.0);
  CHECK(get<double>(*e1, "tx_bytes_per_s") == 100'000.0);
  CHECK(get<double>(*e1, "rx_packets_per_s") == 500.0);
  CHECK(get<double>(*e1, "tx_packets_per_s") == 200.0);
  const auto* d1 = by_nic(second, "docker0");
  REQUIRE(d1);
  CHECK(get<double>(*d1, "rx_bytes_per_s") == 0.0); // idle: 0, not absent

  // A counter reset (driver reload): rx_bytes went back, so no rx rate;
  // the counters that moved forward keep theirs. The next sample has all.
  write_nic(root.path, "eth0", "52-54-00-A1-00-01", 2, 1000, 800'000, 3100,
            1300);
  std::vector<event> third;
  s.sample(300, 11'000'000'000, third);
  const auto* e2 = by_nic(third, "eth0");
  REQUIRE(e2);
  CHECK(get<std::int64_t>(*e2, "rx_bytes") == 1000);
  CHECK(e2->find("rx_bytes_per_s") == nullptr);
  CHECK(get<double>(*e2, "tx_bytes_per_s") == 100'000.0);
  write_nic(root.path, "eth0", "52-54-00-A1-00-01", 2, 21'000, 800'000, 3200,
            1300);
  std::vector<event> fourth;
  s.sample(400, 13'000'000'000, fourth);
  const auto* e3 = by_nic(fourth, "eth0");
  REQUIRE(e3);
  CHECK(get<double>(*e3, "rx_bytes_per_s") == 10'000.0);
  CHECK(get<double>(*e3, "tx_bytes_per_s") == 0.0);
}

TEST_CASE("procfs: os:net: a recreated interface starts afresh, one without "
          "statistics is skipped") {
  test::temp_dir root;
  write_system(root.path);
  write_nic(root.path, "eth1", "52:54:00:a1:00:02", 4, 1000, 1000, 10, 10);
  procfs::net_sampler s{root.path};
  std::vector<event> out;
  s.sample(1, 1'000'000'000, out);
  // Unplugged and plugged again: a new ifindex, counters above the old ones
  // by chance. Its first sample has no rates, even so.
  write_nic(root.path, "eth1", "52:54:00:a1:00:02", 7, 5000, 5000, 50, 50);
  // An interface whose statistics directory is missing.
  write(root.path / "sys/class/net/tun0/address", "\n");
  out.clear();
  s.sample(2, 2'000'000'000, out);
  REQUIRE(out.size() == 1);
  CHECK(get<std::string>(out[0], "nic") == "eth1");
  CHECK(out[0].find("rx_bytes_per_s") == nullptr);
  write_nic(root.path, "eth1", "52:54:00:a1:00:02", 7, 6000, 5000, 60, 50);
  out.clear();
  s.sample(3, 3'000'000'000, out);
  CHECK(get<double>(out[0], "rx_bytes_per_s") == 1000.0);
  CHECK(get<double>(out[0], "rx_packets_per_s") == 10.0);
}

// -- log tailing -------------------------------------------------------------

namespace {

struct collected {
  std::vector<std::string> lines;
  log_tailer::emit_fn fn() {
    return [this](const std::string&, const std::string& st,
                  std::string_view line) {
      lines.push_back(st + " " + std::string{line});
    };
  }
};

} // namespace

TEST_CASE("log tail: complete lines only, rename-and-create rotation") {
  test::temp_dir dir;
  auto log = dir.path / "auth.log";
  write(log, "one\ntwo\nthr");
  log_tailer t{{{(dir.path / "auth.log").string(), "os:auth"}}};
  collected c;
  t.poll(c.fn());
  CHECK(c.lines == std::vector<std::string>{"os:auth one", "os:auth two"});
  append(log, "ee\nfour\n");
  // logrotate: rename, then the writer (still holding the old file) adds a
  // line, then a new file appears with its own lines.
  fs::rename(log, dir.path / "auth.log.1");
  append(dir.path / "auth.log.1", "five\n");
  write(log, "six\n");
  t.poll(c.fn());
  CHECK(c.lines == std::vector<std::string>{"os:auth one", "os:auth two",
                                            "os:auth three", "os:auth four",
                                            "os:auth five", "os:auth six"});
  CHECK(t.renames() == 1);
}

TEST_CASE("log tail: copytruncate restarts at 0") {
  test::temp_dir dir;
  auto log = dir.path / "syslog";
  write(log, "aaaa\nbbbb\n");
  log_tailer t{{{log.string(), "os:syslog"}}};
  collected c;
  t.poll(c.fn());
  write(log, "cc\n"); // truncated (shorter than the offset), then written
  t.poll(c.fn());
  CHECK(c.lines == std::vector<std::string>{"os:syslog aaaa", "os:syslog bbbb",
                                            "os:syslog cc"});
  CHECK(t.truncations() == 1);
}

TEST_CASE("log tail: a checkpoint restart neither loses nor repeats a line, "
          "also across a rotation while stopped") {
  test::temp_dir dir;
  auto log = dir.path / "cron.log";
  write(log, "l1\nl2\n");
  std::string ckpt;
  collected c;
  {
    log_tailer t{{{(dir.path / "cron*.log").string(), "os:cron"}}};
    t.poll(c.fn());
    ckpt = t.checkpoints();
  }
  append(log, "l3\n");
  {
    log_tailer t{{{(dir.path / "cron*.log").string(), "os:cron"}}};
    t.restore(ckpt);
    t.poll(c.fn());
    ckpt = t.checkpoints();
  }
  // Stopped; meanwhile a line is added, the file rotated away (to a name
  // the glob does not match) and a new one started.
  append(log, "l4\n");
  fs::rename(log, dir.path / "cron.log.1");
  write(log, "l5\n");
  {
    log_tailer t{{{(dir.path / "cron*.log").string(), "os:cron"}}};
    t.restore(ckpt);
    t.poll(c.fn());
    CHECK(t.renames() == 1);
  }
  CHECK(c.lines == std::vector<std::string>{"os:cron l1", "os:cron l2",
                                            "os:cron l3", "os:cron l4",
                                            "os:cron l5"});
}

TEST_CASE("log tail: the byte budget stops mid-file and resumes exactly") {
  test::temp_dir dir;
  auto log = dir.path / "big.log";
  std::string text;
  for (int i = 0; i < 1000; ++i)
    text += "line " + std::to_string(i) + "\n";
  write(log, text);
  log_tailer t{{{log.string(), "os:syslog"}}};
  collected c;
  int polls = 0;
  while (t.poll(c.fn(), 1000))
    ++polls;
  CHECK(polls > 5);
  REQUIRE(c.lines.size() == 1000);
  CHECK(c.lines.front() == "os:syslog line 0");
  CHECK(c.lines.back() == "os:syslog line 999");
}

// -- spool -------------------------------------------------------------------

TEST_CASE("spool: full spool drops the oldest batches and counts them") {
  test::temp_dir dir;
  auto sp = spool::open(dir.path / "spool", 1000);
  REQUIRE(sp);
  std::string frame(300, 'x'); // each file: 300 + 24 header bytes
  for (std::uint64_t seq = 1; seq <= 5; ++seq)
    REQUIRE(!sp->put(seq, "", frame));
  // 3 files = 972 bytes fit in 1000; 4 do not: 1 and 2 went.
  CHECK(sp->sequences() == std::vector<std::uint64_t>{3, 4, 5});
  CHECK(sp->dropped_batches() == 2);
  CHECK(sp->dropped_bytes() == 2 * 324);
  CHECK(sp->bytes() <= 1000);
  CHECK(!fs::exists(dir.path / "spool" / "00000000000000000001.batch"));
}

TEST_CASE("spool: survives reopening with frames and meta intact") {
  test::temp_dir dir;
  {
    auto sp = spool::open(dir.path, 1u << 20);
    REQUIRE(sp);
    REQUIRE(!sp->put(7, "meta-7", "frame seven"));
    REQUIRE(!sp->put(8, "", std::string("bin\0ary", 7)));
    sp->remove(7);
    REQUIRE(!sp->put(9, "m9", "nine"));
  }
  write(dir.path / "00000000000000000010.batch.tmp", "half written");
  auto sp = spool::open(dir.path, 1u << 20);
  REQUIRE(sp);
  CHECK(sp->sequences() == std::vector<std::uint64_t>{8, 9});
  CHECK(!fs::exists(dir.path / "00000000000000000010.batch.tmp"));
  auto e = sp->read(8);
  REQUIRE(e);
  CHECK(e->frame == std::string("bin\0ary", 7));
  auto e9 = sp->read(9);
  REQUIRE(e9);
  CHECK(e9->meta == "m9");
  CHECK(e9->frame == "nine");
  CHECK(*sp->newest() == 9);
}

// -- the agent ---------------------------------------------------------------

namespace {

// A fixture guest with two processes and an auth log.
agent_config fixture_agent(const fs::path& base) {
  auto cfg = config::defaults().agent;
  cfg.root = base / "root";
  cfg.state_dir = base / "state";
  cfg.auth_logs = {(base / "auth.log").string()};
  cfg.syslog_logs = {};
  cfg.cron_logs = {};
  cfg.server = "tcp://127.0.0.1:1"; // nobody listens: the server is down
  write_system(cfg.root);
  write_process(cfg.root, 10, "sshd", 1, 1, 5);
  write_process(cfg.root, 11, "cron", 1, 1, 6);
  return cfg;
}

// The server's side of the wire: a ROUTER that acks every batch and keeps
// (source id, sequence, frame) in arrival order.
struct fake_server {
  zmq::context ctx;
  zmq::socket sock{ctx, ZMQ_ROUTER};
  std::string endpoint;
  struct got {
    std::string source;
    std::uint64_t seq;
    std::string frame;
  };
  std::vector<got> received;

  fake_server() {
    REQUIRE(!sock.bind("tcp://127.0.0.1:0"));
    endpoint = sock.last_endpoint();
  }

  void serve_once(std::chrono::milliseconds wait) {
    zmq::socket* socks[] = {&sock};
    bool want[] = {true};
    auto ready = zmq::poll_in(socks, want, wait);
    REQUIRE(ready);
    while ((*ready)[0]) {
      auto parts = sock.recv(true);
      if (!parts)
        break;
      REQUIRE(parts->size() == 2);
      std::string frame{(*parts)[1].view()};
      auto b = wire::decode(frame);
      REQUIRE(b);
      received.push_back({std::string{b->source_id()}, b->sequence(), frame});
      wire::reply r;
      r.source_id = b->source_id();
      r.sequence = b->sequence();
      std::string out;
      wire::encode_reply(r, out);
      std::string_view reply[] = {(*parts)[0].view(), out};
      REQUIRE(!sock.send(reply));
    }
  }
};

std::vector<std::string> auth_lines_in(const std::string& frame) {
  std::vector<std::string> out;
  auto b = wire::decode(frame);
  REQUIRE(b);
  for (const auto& e : b->events())
    if (e.sourcetype == "os:auth")
      out.emplace_back(*e.raw);
  return out;
}

} // namespace

TEST_CASE("agent: the spool survives a restart and is resent in order, "
          "byte-identical") {
  test::temp_dir base;
  auto cfg = fixture_agent(base.path);
  write(base.path / "auth.log", "Accepted publickey for alice\n");
  std::map<std::uint64_t, std::string> spooled;
  std::string first_source, agent_id;
  {
    auto a = guest_agent::open(cfg, base.path);
    REQUIRE(a);
    agent_id = (*a)->agent_id();
    first_source = (*a)->source_id();
    REQUIRE(!(*a)->collect());
    append(base.path / "auth.log", "Failed password for bob\n");
    REQUIRE(!(*a)->collect());
    (*a)->pump(10ms); // the server is down: nothing is acknowledged
    for (auto seq : (*a)->spooled().sequences())
      spooled[seq] = (*a)->spooled().read(seq)->frame;
  }
  // Round 1: metrics + one log batch; round 2: metrics + one log batch.
  REQUIRE(spooled.size() == 4);
  CHECK(spooled.begin()->first == 1);
  fake_server server;
  cfg.server = server.endpoint;
  auto a = guest_agent::open(cfg, base.path);
  REQUIRE(a);
  CHECK((*a)->agent_id() == agent_id);          // kept on disk
  CHECK((*a)->source_id() != first_source);     // a new incarnation
  CHECK((*a)->next_sequence() == 5);            // never reused
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while ((*a)->spooled().size() > 0
         && std::chrono::steady_clock::now() < deadline) {
    (*a)->pump(5ms);
    server.serve_once(5ms);
  }
  (*a)->pump(20ms); // take the last acks
  CHECK((*a)->spooled().size() == 0);
  REQUIRE(server.received.size() >= 4);
  std::vector<std::uint64_t> order;
  for (const auto& g : server.received) {
    order.push_back(g.seq);
    CHECK(g.source == first_source);
    CHECK(g.frame == spooled.at(g.seq));
  }
  CHECK(order == std::vector<std::uint64_t>{1, 2, 3, 4});
  // Every event carries agent_id.
  auto b = wire::decode(server.received[0].frame);
  REQUIRE(b);
  for (const auto& e : b->events()) {
    auto v = e.find("agent_id");
    REQUIRE(v);
    CHECK(std::get<std::string_view>(*v) == agent_id);
    CHECK(e.host == "guest-01");
  }
}

TEST_CASE("agent: log lines across restarts are spooled exactly once") {
  test::temp_dir base;
  auto cfg = fixture_agent(base.path);
  cfg.inputs = {"logs"};
  auto log = base.path / "auth.log";
  write(log, "a1\na2\npartial");
  {
    auto a = guest_agent::open(cfg, base.path);
    REQUIRE(a);
    REQUIRE(!(*a)->collect());
  }
  append(log, " line\na3\n");
  {
    auto a = guest_agent::open(cfg, base.path);
    REQUIRE(a);
    REQUIRE(!(*a)->collect());
    REQUIRE(!(*a)->collect()); // nothing new: no batch
  }
  // A crash after the spool write and before the state file: the state
  // file is older than the newest spooled batch, whose checkpoints win.
  auto state = slurp(base.path / "state/state");
  append(log, "a4\n");
  {
    auto a = guest_agent::open(cfg, base.path);
    REQUIRE(a);
    REQUIRE(!(*a)->collect());
  }
  write(base.path / "state/state", state);
  {
    auto a = guest_agent::open(cfg, base.path);
    REQUIRE(a);
    CHECK((*a)->next_sequence() == 4);
    REQUIRE(!(*a)->collect());
  }
  auto sp = spool::open(base.path / "state/spool", 1u << 30);
  REQUIRE(sp);
  std::vector<std::string> lines;
  for (auto seq : sp->sequences()) {
    auto e = sp->read(seq);
    REQUIRE(e);
    for (auto& l : auth_lines_in(e->frame))
      lines.push_back(l);
  }
  CHECK(lines == std::vector<std::string>{"a1", "a2", "partial line", "a3",
                                          "a4"});
}

TEST_CASE("agent: collection goes on while the server is down, and the spool "
          "bound drops the oldest") {
  test::temp_dir base;
  auto cfg = fixture_agent(base.path);
  cfg.spool_max_bytes = 4096;
  cfg.inputs = {"processes", "system"};
  auto a = guest_agent::open(cfg, base.path);
  REQUIRE(a);
  for (int i = 0; i < 20; ++i) {
    REQUIRE(!(*a)->collect());
    (*a)->pump(0ms);
  }
  CHECK((*a)->stats().batches_spooled == 20);
  CHECK((*a)->spooled().bytes() <= 4096);
  CHECK((*a)->spooled().dropped_batches() == 20 - (*a)->spooled().size());
  CHECK((*a)->spooled().dropped_batches() > 0);
  CHECK(*(*a)->spooled().newest() == 20);
}

TEST_CASE("agent: the system input sends os:net every round, identity stays "
          "rare") {
  test::temp_dir base;
  auto cfg = fixture_agent(base.path);
  cfg.inputs = {"system", "identity"};
  write_nic(cfg.root, "eth0", "52:54:00:a1:00:01", 2, 100, 100, 1, 1);
  fs::create_directories(cfg.root / "sys/class/net/eth0/device");
  auto a = guest_agent::open(cfg, base.path);
  REQUIRE(a);
  REQUIRE(!(*a)->collect());
  write_nic(cfg.root, "eth0", "52:54:00:a1:00:01", 2, 200, 300, 2, 3);
  REQUIRE(!(*a)->collect());
  CHECK((*a)->stats().net_events == 2);
  CHECK((*a)->stats().identity_events == 2); // os:identity + one os:nic, once
  auto frame = (*a)->spooled().read(*(*a)->spooled().newest());
  REQUIRE(frame);
  auto b = wire::decode(frame->frame);
  REQUIRE(b);
  std::size_t nets = 0;
  for (const auto& e : b->events())
    if (e.sourcetype == "os:net") {
      ++nets;
      CHECK(std::get<std::string_view>(*e.find("nic")) == "eth0");
      CHECK(std::get<std::int64_t>(*e.find("rx_bytes")) == 200);
      CHECK(std::get<double>(*e.find("rx_bytes_per_s")) > 0);
      CHECK(std::get<std::string_view>(*e.find("agent_id"))
            == (*a)->agent_id());
      CHECK(e.host == "guest-01");
    }
  CHECK(nets == 1);
}
