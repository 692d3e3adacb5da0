#include "parallax/schemas/identity.hpp"

#include <doctest/doctest.h>

using namespace parallax;

TEST_CASE("identity: every common MAC notation normalises to one") {
  for (auto text : {"00:50:56:AB:CD:EF", "00-50-56-ab-cd-ef", "0050.56ab.cdef",
                    "005056abcdef", "00:50:56:ab:cd:ef"})
    CHECK(normalize_mac(text) == "00:50:56:ab:cd:ef");
}

TEST_CASE("identity: malformed MACs are refused") {
  for (auto text : {"", "00:50:56:ab:cd", "00:50-56:ab:cd:ef",
                    "00:50:56:ab:cd:eg", "0050.56ab-cdef", "005056abcdef0",
                    "00:00:00:00:00:00", "00:50:56:ab:cd:ef:"})
    CHECK_MESSAGE(!normalize_mac(text), text);
}

TEST_CASE("identity: locally administered MACs are recognised") {
  CHECK(is_locally_administered("02:42:ac:11:00:02")); // docker
  CHECK(is_locally_administered("fe:54:00:a1:00:01")); // libvirt vnet (host side)
  // QEMU/KVM's 52:54:00 prefix is locally administered too, so the bit
  // alone cannot tell a guest's real NIC from a virtual one.
  CHECK(is_locally_administered("52:54:00:a1:00:01"));
  CHECK_FALSE(is_locally_administered("00:0c:29:ab:cd:ef"));
  CHECK_FALSE(is_locally_administered("00:50:56:ab:cd:ef"));
}

TEST_CASE("identity: UUIDs normalise and swap their first three groups") {
  CHECK(normalize_uuid("{421F245C-7FA8-60FA-1234-56789ABCDEF0}")
        == "421f245c-7fa8-60fa-1234-56789abcdef0");
  CHECK(normalize_uuid("421F245C7FA860FA123456789ABCDEF0")
        == "421f245c-7fa8-60fa-1234-56789abcdef0");
  CHECK_FALSE(normalize_uuid("421F245C-7FA8-60FA-1234"));
  CHECK_FALSE(normalize_uuid("421F245C-7FA8-60FA-1234-56789ABCDEFX"));
  // The example from ../shared/domain.md: guest 5C241F42-A87F-FA60-... is
  // vCenter 421F245C-7FA8-60FA-...
  auto vc = "421f245c-7fa8-60fa-1234-56789abcdef0";
  CHECK(swap_uuid_byte_order(vc) == "5c241f42-a87f-fa60-1234-56789abcdef0");
  CHECK(swap_uuid_byte_order(swap_uuid_byte_order(vc)) == vc);
}
