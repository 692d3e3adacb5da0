#pragma once

// The keys that tie an event to a VM, in one canonical spelling each, so
// that the hypervisor's and the guest's notations compare equal
// (schemas/sourcetypes.md; the notations are listed in ../shared/domain.md).

#include <optional>
#include <string>
#include <string_view>

namespace parallax {

/// A MAC address as `aa:bb:cc:dd:ee:ff`, from `AA:BB:CC:DD:EE:FF`,
/// `aa-bb-cc-dd-ee-ff`, `aabb.ccdd.eeff` or `aabbccddeeff`; nullopt for
/// anything else (also for the all-zero address).
std::optional<std::string> normalize_mac(std::string_view text);

/// True for a locally administered MAC (bit 0x02 of the first octet).
/// Docker and veth interfaces have it, but so does QEMU's 52:54:00 prefix:
/// a hint, not a filter. Expects a normalised MAC.
bool is_locally_administered(std::string_view mac) noexcept;

/// A UUID as 36 lower-case characters with dashes, from upper or lower
/// case, with or without dashes or braces; nullopt for anything else.
std::optional<std::string> normalize_uuid(std::string_view text);

/// The same UUID with its first three groups byte-swapped (the mixed-endian
/// form SMBIOS ≥ 2.6 guests show for a vCenter `config.uuid`). Expects a
/// normalised UUID; applying it twice gives the input back.
std::string swap_uuid_byte_order(std::string_view uuid);

} // namespace parallax
