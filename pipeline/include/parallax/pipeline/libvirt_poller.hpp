#pragma once

// Polls one libvirt connection (read-only) and turns what it reports into
// hypervisor events: `hv:libvirt:vm` per domain, `hv:libvirt:nic` per NIC,
// `hv:libvirt:disk` per disk (schemas/sourcetypes.md). Rates (CPU %, bytes
// per second) come from the previous poll of the same poller.
//
// Works with every driver libvirt has; statistics a driver does not offer
// (balloon, interface or block stats of the test driver for a stopped
// domain, ...) are left out of the event, not sent as zero.

#include "parallax/pipeline/rates.hpp"
#include "parallax/schemas/error.hpp"
#include "parallax/schemas/event.hpp"

#include <memory>
#include <string>
#include <vector>

namespace parallax {

class libvirt_poller {
public:
  /// Opens `uri` read-only (qemu:///system, test:///default,
  /// test:///ABSOLUTE/PATH/node.xml, qemu+ssh://...).
  static result<std::unique_ptr<libvirt_poller>> open(std::string uri);

  ~libvirt_poller();
  libvirt_poller(const libvirt_poller&) = delete;
  libvirt_poller& operator=(const libvirt_poller&) = delete;

  /// One poll at `now`. Reconnects first when the connection was lost.
  result<std::vector<event>> poll(time_ns now);

  const std::string& uri() const noexcept {
    return uri_;
  }

  /// The physical host's name as libvirt reports it.
  const std::string& hostname() const noexcept {
    return hostname_;
  }

private:
  struct impl;
  explicit libvirt_poller(std::string uri);
  error connect();

  std::string uri_;
  std::string hostname_;
  std::unique_ptr<impl> impl_;
  rate_tracker rates_;
};

/// The NICs (MAC and host-side device) and disk targets in a domain's XML.
/// Exposed for tests; a deliberately small reader of libvirt's own output.
struct domain_devices {
  struct nic {
    std::string mac; ///< normalised
    std::string dev; ///< host-side device (vnet0), empty when not running
  };
  std::vector<nic> nics;
  std::vector<std::string> disks; ///< target devs of device='disk' disks
};
domain_devices parse_domain_xml(std::string_view xml);

} // namespace parallax
