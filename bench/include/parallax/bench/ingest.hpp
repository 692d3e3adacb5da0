#pragma once

#include <cstddef>
#include <string>

namespace parallax::bench {

struct ingest_options {
  std::size_t events = 500'000; ///< events the client sends
  std::size_t batch = 1'000;    ///< events per frame (and per SQLite txn)
  std::size_t window = 64;      ///< frames the client keeps in flight
  std::string data;             ///< data directory; empty: a fresh temp dir
  std::size_t block_events = 128; ///< events per stored block
  bool skip_peer = false;       ///< do not run the SQLite FTS5 peer
  bool json = false;            ///< one machine-readable line
};

/// `parallax bench ingest`: a separate client process (forked before any
/// thread starts) pushes realistic mixed events through the real ingest
/// endpoint over TCP loopback; the server acks each batch after a synced
/// LMDB commit. Prints events/s, ack latency p50/p99, bytes on disk per
/// event (all indexes included) and the server's peak RSS; then the same
/// events into SQLite FTS5 (one synced transaction per batch), and the ratio.
int run_ingest(const ingest_options& opts);

} // namespace parallax::bench
