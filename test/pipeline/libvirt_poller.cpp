// The libvirt poller against libvirt's real test driver (no daemon): its
// API, domain list, states and MACs are real, its counters fake
// (../shared/data/README.md).

#include "parallax/pipeline/libvirt_poller.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <map>

using namespace parallax;

namespace {

std::string node_uri() {
  auto xml = std::filesystem::canonical(std::filesystem::path{PARALLAX_SHARED_DATA}
                                        / "libvirt/test-node.xml");
  return "test://" + xml.string();
}

const value* get(const event& e, std::string_view name) {
  return e.find(name);
}

std::string str(const event& e, std::string_view name) {
  auto v = e.find(name);
  REQUIRE_MESSAGE(v, name);
  REQUIRE(std::holds_alternative<std::string>(*v));
  return std::get<std::string>(*v);
}

std::int64_t num(const event& e, std::string_view name) {
  auto v = e.find(name);
  REQUIRE_MESSAGE(v, name);
  REQUIRE(std::holds_alternative<std::int64_t>(*v));
  return std::get<std::int64_t>(*v);
}

} // namespace

TEST_CASE("libvirt: the test node's five domains, their state, memory and "
          "MACs") {
  auto p = libvirt_poller::open(node_uri());
  REQUIRE_MESSAGE(p, p.error().message);
  auto events = (*p)->poll(now_ns());
  REQUIRE_MESSAGE(events, events.error().message);
  std::map<std::string, event> vms;
  std::vector<event> nics;
  for (auto& e : *events) {
    CHECK(e.host == (*p)->hostname());
    CHECK_FALSE(e.host.empty());
    if (e.sourcetype == "hv:libvirt:vm")
      vms[str(e, "vm_name")] = e;
    else if (e.sourcetype == "hv:libvirt:nic")
      nics.push_back(e);
  }
  REQUIRE(vms.size() == 5);
  CHECK(str(vms["web01"], "vm_uuid") == "11111111-0000-4000-8000-000000000001");
  CHECK(str(vms["web01"], "state") == "running");
  CHECK(str(vms["batch01"], "state") == "paused");
  CHECK(str(vms["old01"], "state") == "shutoff");
  CHECK(num(vms["web01"], "vcpus") == 2);
  CHECK(num(vms["web01"], "mem_max_bytes") == 4194304LL * 1024);
  CHECK(num(vms["web01"], "mem_allocated_bytes") == 2097152LL * 1024);
  CHECK(str(vms["db01"], "macs") == "52:54:00:a1:00:02,52:54:00:b2:00:02");
  // A first poll has no previous CPU time: no rate rather than a made-up one.
  CHECK_FALSE(get(vms["web01"], "cpu_pct"));
  // One NIC event per interface; db01 has two.
  CHECK(nics.size() == 6);
  auto db01_nics = std::count_if(nics.begin(), nics.end(), [](const event& e) {
    return str(e, "vm_name") == "db01";
  });
  CHECK(db01_nics == 2);
}

TEST_CASE("libvirt: a second poll yields CPU % and NIC rates, never "
          "negative") {
  auto p = libvirt_poller::open(node_uri());
  REQUIRE(p);
  auto t0 = now_ns();
  REQUIRE((*p)->poll(t0));
  auto second = (*p)->poll(t0 + 2'000'000'000);
  REQUIRE(second);
  int with_cpu = 0;
  for (auto& e : *second) {
    if (e.sourcetype != "hv:libvirt:vm")
      continue;
    if (auto v = get(e, "cpu_pct")) {
      ++with_cpu;
      CHECK(std::get<double>(*v) >= 0.0);
    }
    // The test driver has no bulk vCPU statistics: no delay, so no ready
    // figure rather than a made-up zero.
    CHECK_FALSE(get(e, "cpu_ready_pct"));
    // Shut-off domains have no CPU rate.
    if (str(e, "state") == "shutoff")
      CHECK_FALSE(get(e, "cpu_pct"));
  }
  CHECK(with_cpu >= 3); // the three running domains (paused is active too)
}

TEST_CASE("libvirt: a URI that cannot be opened is an error naming it") {
  auto p = libvirt_poller::open("test:///nonexistent/node.xml");
  REQUIRE_FALSE(p);
  CHECK(p.error().message.find("test:///nonexistent/node.xml")
        != std::string::npos);
}

TEST_CASE("libvirt: domain XML devices") {
  auto d = parse_domain_xml(R"(<domain><devices>
    <disk type='file' device='cdrom'><target dev='hdc' bus='ide'/></disk>
    <disk type='file' device="disk"><target dev="vda" bus='virtio'/></disk>
    <interface type='bridge'><mac address='52:54:00:AA:BB:01'/>
      <target dev='vnet7'/></interface>
    <interface type='network'><mac address='bogus'/></interface>
    <interface type='network'><mac address='52-54-00-aa-bb-02'/></interface>
  </devices></domain>)");
  REQUIRE(d.nics.size() == 2);
  CHECK(d.nics[0].mac == "52:54:00:aa:bb:01");
  CHECK(d.nics[0].dev == "vnet7");
  CHECK(d.nics[1].mac == "52:54:00:aa:bb:02");
  CHECK(d.nics[1].dev.empty());
  CHECK(d.disks == std::vector<std::string>{"vda"});
}
