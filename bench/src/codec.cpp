#include "parallax/bench/codec.hpp"

#include "parallax/bench/generator.hpp"
#include "parallax/bench/stats.hpp"
#include "parallax/schemas/wire.hpp"

#include <chrono>
#include <cstdio>

#include <fmt/format.h>
#include <msgpack.hpp>

namespace parallax::bench {

namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

// The msgpack-cxx peer: unpack into its object tree, then touch every field
// the way a consumer would (sum the sizes so the work is not optimised away).
std::size_t walk_msgpack_object(const std::string& frame) {
  auto handle = msgpack::unpack(frame.data(), frame.size());
  const auto& root = handle.get();
  std::size_t acc = 0;
  const auto& events = root.via.array.ptr[4].via.array;
  for (std::uint32_t i = 0; i < events.size; ++i) {
    const auto& ev = events.ptr[i].via.array;
    acc += static_cast<std::size_t>(ev.ptr[0].via.i64);
    for (std::uint32_t k = 1; k < 6; ++k)
      if (ev.ptr[k].type == msgpack::type::STR)
        acc += ev.ptr[k].via.str.size;
    const auto& fields = ev.ptr[6].via.map;
    for (std::uint32_t f = 0; f < fields.size; ++f)
      acc += fields.ptr[f].key.via.str.size + fields.ptr[f].val.type;
  }
  return acc;
}

} // namespace

int run_codec(const codec_options& opts) {
  if (opts.events == 0 || opts.batch == 0 || opts.runs == 0) {
    std::fprintf(stderr, "parallax bench codec: --events, --batch and --runs "
                         "must be positive\n");
    return 2;
  }
  auto events = make_mixed_events(opts.events);
  // Pre-split into batches so the timed loops measure only the codec.
  std::vector<wire::batch> batches;
  for (std::size_t i = 0; i < events.size(); i += opts.batch) {
    wire::batch b;
    b.source_id = "bench";
    b.sequence = batches.size();
    auto end = std::min(events.size(), i + opts.batch);
    b.events.assign(std::make_move_iterator(events.begin() + i),
                    std::make_move_iterator(events.begin() + end));
    batches.push_back(std::move(b));
  }
  std::vector<std::string> frames(batches.size());
  std::vector<double> enc, dec, own, obj;
  std::size_t bytes = 0;
  std::size_t sink = 0;
  wire::limits lim;
  for (std::size_t run = 0; run < opts.runs; ++run) {
    auto t0 = clock_type::now();
    bytes = 0;
    for (std::size_t i = 0; i < batches.size(); ++i) {
      frames[i].clear();
      wire::encode(batches[i], frames[i]);
      bytes += frames[i].size();
    }
    enc.push_back(static_cast<double>(opts.events) / seconds_since(t0));
    t0 = clock_type::now();
    for (const auto& f : frames) {
      auto b = wire::decode(std::as_bytes(std::span{f.data(), f.size()}),
                            nullptr, lim);
      if (!b) {
        std::fprintf(stderr, "decode failed: %s\n", b.error().render().c_str());
        return 1;
      }
      sink += b->field_count();
    }
    dec.push_back(static_cast<double>(opts.events) / seconds_since(t0));
    t0 = clock_type::now();
    for (const auto& f : frames) {
      auto b = wire::decode(std::as_bytes(std::span{f.data(), f.size()}),
                            nullptr, lim);
      auto owned = b->materialize();
      sink += owned.events.size();
    }
    own.push_back(static_cast<double>(opts.events) / seconds_since(t0));
    t0 = clock_type::now();
    for (const auto& f : frames)
      sink += walk_msgpack_object(f);
    obj.push_back(static_cast<double>(opts.events) / seconds_since(t0));
  }
  auto bytes_per_event = static_cast<double>(bytes)
                         / static_cast<double>(opts.events);
  auto m_enc = median(enc), m_dec = median(dec), m_own = median(own),
       m_obj = median(obj);
  if (opts.json) {
    fmt::print("{{\"bench\":\"codec\",\"events\":{},\"batch\":{},\"runs\":{},"
               "\"bytes_per_event\":{:.1f},\"encode_events_per_s\":{:.0f},"
               "\"decode_view_events_per_s\":{:.0f},"
               "\"decode_owning_events_per_s\":{:.0f},"
               "\"msgpack_object_walk_events_per_s\":{:.0f},"
               "\"decode_vs_msgpack_object\":{:.2f},\"peak_rss_bytes\":{},"
               "\"checksum\":{}}}\n",
               opts.events, opts.batch, opts.runs, bytes_per_event, m_enc,
               m_dec, m_own, m_obj, m_dec / m_obj, peak_rss_bytes(), sink % 1000);
    return 0;
  }
  fmt::print("parallax bench codec: {} events/run in batches of {}, {} runs, "
             "medians\n",
             opts.events, opts.batch, opts.runs);
  fmt::print("  encoded size                     {:>10.1f} bytes/event\n",
             bytes_per_event);
  fmt::print("  encode (msgpack-cxx packer)      {:>10.2f} M events/s  {:>7.1f} MB/s\n",
             m_enc / 1e6, m_enc * bytes_per_event / 1e6);
  fmt::print("  decode to views (parallax)       {:>10.2f} M events/s  {:>7.1f} MB/s\n",
             m_dec / 1e6, m_dec * bytes_per_event / 1e6);
  fmt::print("  decode + owning copy (peer)      {:>10.2f} M events/s  "
             "(parallax decode / peer = {:.2f})\n",
             m_own / 1e6, m_dec / m_own);
  fmt::print("  msgpack-cxx unpack + walk (peer) {:>10.2f} M events/s  "
             "(parallax decode / peer = {:.2f}; the peer checks no types, "
             "UTF-8 or limits)\n",
             m_obj / 1e6, m_dec / m_obj);
  fmt::print("  peak RSS                         {:>10.1f} MB\n",
             static_cast<double>(peak_rss_bytes()) / 1e6);
  return 0;
}

} // namespace parallax::bench
