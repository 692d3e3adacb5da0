// The hypervisor inputs against real peers: `parallax serve` polling
// libvirt's test driver (no daemon; real API, domains and MACs), and the
// real collectd from Debian -- its virt plugin reading the same test node,
// its write_http plugin POSTing JSON to the server's HTTP endpoint. The
// samples are then read back from the store.

#include "parallax/storage/environment.hpp"
#include "parallax/storage/store.hpp"

#include "integration/server_process.hpp"
#include "temp_dir.hpp"

#include <doctest/doctest.h>

#include <functional>

#include <httplib.h>
#include <set>

using namespace parallax;
using namespace parallax::test;

namespace {

std::string test_node_uri() {
  auto xml = std::filesystem::canonical(
    std::filesystem::path{PARALLAX_SHARED_DATA}
    / "libvirt/test-node.xml");
  return "test://" + xml.string();
}

// Every stored event (the store opened read-only while the server writes).
std::vector<event> stored_events(const std::filesystem::path& data) {
  std::vector<event> out;
  storage::environment_options opts;
  opts.read_only = true;
  auto env = storage::environment::open(data / "store", opts);
  if (!env)
    return out;
  auto st = storage::store::open(*env);
  REQUIRE_MESSAGE(st, (st ? "" : st.error().message));
  auto buckets = st->buckets();
  REQUIRE(buckets);
  for (const auto& b : *buckets) {
    auto err = st->scan(b.id, [&](std::uint64_t, const event_view& e) {
      out.push_back(e.materialize());
    });
    REQUIRE_MESSAGE(!err, err.message);
  }
  return out;
}

// Polls the store until `done(events)` holds, or fails after `limit`.
std::vector<event>
wait_for_events(const std::filesystem::path& data,
                const std::function<bool(const std::vector<event>&)>& done,
                std::chrono::seconds limit, const std::string& what) {
  auto deadline = clock_type::now() + limit;
  std::vector<event> events;
  while (clock_type::now() < deadline) {
    events = stored_events(data);
    if (done(events))
      return events;
    std::this_thread::sleep_for(200ms);
  }
  FAIL("timed out waiting for ", what, " (", events.size(),
       " events stored)");
  return events;
}

std::string str_field(const event& e, std::string_view name) {
  auto v = e.find(name);
  if (!v || !std::holds_alternative<std::string>(*v))
    return {};
  return std::get<std::string>(*v);
}

const std::set<std::string> node_macs = {
  "52:54:00:a1:00:01", "52:54:00:a1:00:02", "52:54:00:b2:00:02",
  "52:54:00:a1:00:03", "52:54:00:a1:00:04", "52:54:00:a1:00:05"};

} // namespace

TEST_CASE("hypervisor: serve polls libvirt's test driver and stores every "
          "domain and NIC") {
  temp_dir tmp{"parallax-libvirt-"};
  server_process server{tmp.path, free_port(),
                        {"--set",
                         "parallax.libvirt.uris=[\"" + test_node_uri() + "\"]",
                         "--set", "parallax.libvirt.interval=300ms"}};
  server.start();
  auto events = wait_for_events(
    server.data_dir(),
    [](const std::vector<event>& evs) {
      std::set<std::string> macs;
      bool cpu_rate = false;
      for (const auto& e : evs) {
        if (e.sourcetype == "hv:libvirt:nic")
          macs.insert(str_field(e, "mac"));
        if (e.sourcetype == "hv:libvirt:vm" && e.find("cpu_pct"))
          cpu_rate = true;
      }
      return macs == node_macs && cpu_rate;
    },
    30s, "every NIC of the test node and a CPU rate");
  std::set<std::string> names;
  for (const auto& e : events) {
    if (e.sourcetype != "hv:libvirt:vm")
      continue;
    names.insert(str_field(e, "vm_name"));
    CHECK(str_field(e, "uri") == test_node_uri());
    CHECK_FALSE(e.host.empty());
  }
  CHECK(names
        == std::set<std::string>{"web01", "db01", "cache01", "batch01",
                                 "old01"});
  auto status = server.terminate();
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("hypervisor: the real collectd feeds serve over write_http JSON") {
  const std::filesystem::path collectd = "/usr/sbin/collectd";
  REQUIRE_MESSAGE(std::filesystem::exists(collectd),
                  "collectd is not installed: run scripts/setup.sh");
  temp_dir tmp{"parallax-collectd-"};
  server_process server{tmp.path, free_port()};
  server.start();
  auto port = server.http_port();
  REQUIRE(port > 0);
  auto conf = tmp.path / "collectd.conf";
  auto log = tmp.path / "collectd.log";
  {
    // The configuration of the capture in ../shared/data/collectd/, cut to
    // what this test needs.
    std::ofstream out{conf};
    out << "Hostname \"hv-test-01\"\nFQDNLookup false\n"
        << "BaseDir \"" << tmp.path.string() << "\"\n"
        << "PIDFile \"" << (tmp.path / "collectd.pid").string() << "\"\n"
        << "PluginDir \"/usr/lib/collectd\"\n"
        << "TypesDB \"/usr/share/collectd/types.db\"\nInterval 1\n"
        << "LoadPlugin logfile\n<Plugin logfile>\n  LogLevel info\n  File \""
        << log.string() << "\"\n</Plugin>\n"
        << "LoadPlugin virt\nLoadPlugin write_http\n"
        << "<Plugin virt>\n  Connection \"" << test_node_uri() << "\"\n"
        << "  RefreshInterval 60\n  HostnameFormat \"hostname\"\n"
        << "  PluginInstanceFormat \"name\"\n  InterfaceFormat \"address\"\n"
        << "</Plugin>\n"
        << "<Plugin write_http>\n  <Node \"parallax\">\n    URL "
        << "\"http://127.0.0.1:" << port << "/collectd\"\n"
        << "    Format \"JSON\"\n    StoreRates false\n"
        << "    BufferSize 16384\n  </Node>\n</Plugin>\n";
  }
  std::string bin = collectd.string(), f = "-f", c = "-C",
              conf_s = conf.string();
  char* argv[] = {bin.data(), f.data(), c.data(), conf_s.data(), nullptr};
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int null = ::open("/dev/null", O_RDWR);
    ::dup2(null, STDIN_FILENO);
    ::dup2(null, STDOUT_FILENO);
    ::dup2(null, STDERR_FILENO);
    ::execv(argv[0], argv);
    ::_exit(127);
  }
  struct reaper {
    pid_t pid;
    ~reaper() {
      ::kill(pid, SIGTERM);
      int st = 0;
      ::waitpid(pid, &st, 0);
    }
  } reap{pid};
  auto events = wait_for_events(
    server.data_dir(),
    [](const std::vector<event>& evs) {
      std::set<std::string> macs;
      bool rate = false;
      for (const auto& e : evs) {
        if (e.sourcetype != "hv:collectd"
            || str_field(e, "type") != "if_octets")
          continue;
        macs.insert(str_field(e, "mac"));
        rate = rate || e.find("rx_per_s") != nullptr;
      }
      // collectd's virt plugin reads interfaces of running domains only:
      // batch01 (a1:00:04) is paused, old01 (a1:00:05) shut off.
      auto want = node_macs;
      want.erase("52:54:00:a1:00:04");
      want.erase("52:54:00:a1:00:05");
      return std::includes(macs.begin(), macs.end(), want.begin(),
                           want.end())
             && rate;
    },
    30s, "collectd if_octets samples with the test node's MACs and rates");
  std::set<std::string> vms;
  for (const auto& e : events)
    if (e.sourcetype == "hv:collectd") {
      CHECK(e.host == "hv-test-01");
      CHECK(str_field(e, "plugin") == "virt");
      vms.insert(str_field(e, "vm_name"));
    }
  CHECK(vms.count("web01") == 1);
  CHECK(vms.count("db01") == 1);
  CHECK(read_file(server.log_path()).find("POST /collectd from")
        == std::string::npos); // no body was refused
}

TEST_CASE("hypervisor: the HTTP endpoint checks its token and refuses a bad "
          "body with the reason, without losing anyone else's data") {
  temp_dir tmp{"parallax-http-"};
  server_process server{tmp.path, free_port(),
                        {"--set", "parallax.http.token=s3cret"}};
  server.start();
  httplib::Client http{"127.0.0.1", server.http_port()};
  auto good = R"([{"values":[42],"dstypes":["gauge"],"dsnames":["value"],
    "time":1795635548.5,"interval":10,"host":"hv-9","plugin":"virt",
    "plugin_instance":"web01","type":"memory","type_instance":"total"}])";
  // No token, wrong token: 401, nothing stored.
  auto r = http.Post("/collectd", good, "application/json");
  REQUIRE(r);
  CHECK(r->status == 401);
  http.set_bearer_token_auth("wrong");
  r = http.Post("/collectd", good, "application/json");
  REQUIRE(r);
  CHECK(r->status == 401);
  http.set_bearer_token_auth("s3cret");
  CHECK(http.Get("/healthz")->status == 200);
  // A malformed body: 400 with the element and the reason.
  r = http.Post("/collectd",
                R"([{"values":[1,2],"dstypes":["gauge"],"dsnames":["a"]}])",
                "application/json");
  REQUIRE(r);
  CHECK(r->status == 400);
  CHECK(r->body.find("element 0") != std::string::npos);
  // The good body is stored, once, and answered only after the commit.
  r = http.Post("/collectd", good, "application/json");
  REQUIRE(r);
  CHECK(r->status == 200);
  auto events = stored_events(server.data_dir());
  REQUIRE(events.size() == 1);
  CHECK(events[0].host == "hv-9");
  CHECK(std::get<std::int64_t>(*events[0].find("value")) == 42);
  CHECK(events[0].time == 1795635548500000000);
}
