#include "parallax/pipeline/vsphere.hpp"

#include <doctest/doctest.h>

#include <map>

using namespace parallax;

namespace {

std::map<std::string, value_view> normalise(std::vector<field_view> in) {
  std::map<std::string, value_view> out;
  normalize_vsphere(in, [&](std::string_view k, value_view v) {
    CHECK_MESSAGE(out.find(std::string{k}) == out.end(), k);
    out[std::string{k}] = v;
  });
  return out;
}

} // namespace

TEST_CASE("vsphere: counters in vCenter units become normalised fields") {
  auto out = normalise({
    {"vcpus", std::int64_t{4}},
    {"interval_s", std::int64_t{20}},
    {"cpu.usage.average", std::int64_t{2067}},
    {"cpu.ready.summation", std::int64_t{1600}},
    {"mem.consumed.average", std::int64_t{4194304}},
    {"mem.active.average", std::int64_t{1048576}},
    {"mem.vmmemctl.average", std::int64_t{0}},
    {"mem_allocated_kb", std::int64_t{8388608}},
    {"net.received.average", 12.5},
  });
  CHECK(std::get<double>(out.at("cpu_pct")) == doctest::Approx(20.67));
  // 1600 ms over 20 s is 8 % for the VM, 2 % per vCPU.
  CHECK(std::get<double>(out.at("cpu_ready_pct")) == doctest::Approx(2.0));
  CHECK(std::get<std::int64_t>(out.at("mem_consumed_bytes"))
        == 4194304LL * 1024);
  CHECK(std::get<std::int64_t>(out.at("mem_active_bytes")) == 1048576LL * 1024);
  CHECK(std::get<std::int64_t>(out.at("mem_balloon_bytes")) == 0);
  CHECK(std::get<std::int64_t>(out.at("mem_allocated_bytes"))
        == 8388608LL * 1024);
  CHECK(std::get<double>(out.at("rx_bytes_per_s")) == doctest::Approx(12800));
  CHECK(out.count("tx_bytes_per_s") == 0);
}

TEST_CASE("vsphere: defaults, wrong types and fields the sender set") {
  auto out = normalise({
    {"cpu.ready.summation", 400.0}, // no interval_s, no vcpus: 20 s, 1 vCPU
    {"cpu.usage.average", std::string_view{"2067"}}, // wrong type: skipped
    {"mem.consumed.average", std::int64_t{1}},
    {"mem_consumed_bytes", std::int64_t{7}}, // the sender's value wins
  });
  CHECK(std::get<double>(out.at("cpu_ready_pct")) == doctest::Approx(2.0));
  CHECK(out.count("cpu_pct") == 0);
  CHECK(out.count("mem_consumed_bytes") == 0);
}
