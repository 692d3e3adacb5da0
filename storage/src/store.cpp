#include "parallax/storage/store.hpp"

#include "parallax/schemas/hash.hpp"
#include "parallax/schemas/wire.hpp"
#include "parallax/storage/tokenizer.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <future>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <tuple>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>
#include <lmdb.h>
#include <zstd.h>

namespace parallax::storage {

namespace {

constexpr std::string_view next_id_key = "next-id";
constexpr std::string_view next_run_key = "next-run";
constexpr std::string_view span_key = "bucket-span";
// meta "compacted" [bucket] -> u64 events of the bucket at its last compaction
// Most bytes (about) of a block a compaction writes (see compact()).
constexpr std::size_t compacted_block_bytes = 16 * 1024;
constexpr std::string_view compacted_key = "compacted";
// Blocks are stored as wire batch frames with this source id; the sequence
// element carries the block's first event id.
constexpr std::string_view block_source = "block";

// A block value is one codec byte followed by the payload: the events as a
// wire batch frame, raw or zstd-compressed.
constexpr char codec_raw = 0;
constexpr char codec_zstd = 1;
// zstd level 1: ~5x smaller blocks on log and metric events at a few
// hundred MB/s, a small share of a core at the ingest target.
constexpr int zstd_level = 1;

// What a block packer keeps from block to block and write to write: its
// compression context and a buffer to compress into. The packers of a
// write run on a thread made for that write, so these must outlive it: a
// new context allocates its tables and faults them in on first use
// (page faults were a quarter of the packing threads' time), and
// compressing straight into each block's string zeroed the full bound.
struct packer {
  std::unique_ptr<ZSTD_CCtx, decltype(&ZSTD_freeCCtx)> cctx{ZSTD_createCCtx(),
                                                            &ZSTD_freeCCtx};
  std::string frame, scratch;
};

// Packers not in use, for the next write's packing threads.
class packer_pool {
public:
  std::unique_ptr<packer> take() {
    {
      std::lock_guard lock{mutex_};
      if (!idle_.empty()) {
        auto p = std::move(idle_.back());
        idle_.pop_back();
        return p;
      }
    }
    return std::make_unique<packer>();
  }
  void give_back(std::unique_ptr<packer> p) {
    std::lock_guard lock{mutex_};
    idle_.push_back(std::move(p));
  }

private:
  std::mutex mutex_;
  std::vector<std::unique_ptr<packer>> idle_;
};

packer_pool& packers() {
  static packer_pool pool;
  return pool;
}

// Sets `out` to the stored form of the packer's frame.
void pack_block(packer& pk, std::string& out) {
  const auto& frame = pk.frame;
  auto bound = ZSTD_compressBound(frame.size());
  if (pk.scratch.size() < bound)
    pk.scratch.resize(bound);
  auto n = pk.cctx ? ZSTD_compressCCtx(pk.cctx.get(), pk.scratch.data(), bound,
                                       frame.data(), frame.size(), zstd_level)
                   : 0;
  if (!pk.cctx || ZSTD_isError(n) || n >= frame.size()) {
    out.assign(1, codec_raw);
    out += frame;
    return;
  }
  out.reserve(1 + n);
  out.assign(1, codec_zstd);
  out.append(pk.scratch.data(), n);
}

// Returns the frame of a stored block, decompressing into `buf` if needed.
result<std::string_view> unpack_block(std::string_view stored,
                                      std::string& buf) {
  if (stored.empty())
    return error{ec::storage_error, "empty block"};
  auto payload = stored.substr(1);
  if (stored[0] == codec_raw)
    return payload;
  if (stored[0] != codec_zstd)
    return error{ec::storage_error,
                 fmt::format("unknown block codec {}",
                             static_cast<int>(stored[0]))};
  auto size = ZSTD_getFrameContentSize(payload.data(), payload.size());
  if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN
      || size > (std::uint64_t{1} << 34))
    return error{ec::storage_error, "damaged zstd block header"};
  buf.resize(size);
  // One context per thread: ZSTD_decompress would allocate one per block,
  // which shows when a search reads a few events from many blocks.
  thread_local std::unique_ptr<ZSTD_DCtx, decltype(&ZSTD_freeDCtx)> dctx{
    ZSTD_createDCtx(), &ZSTD_freeDCtx};
  auto n = dctx ? ZSTD_decompressDCtx(dctx.get(), buf.data(), buf.size(),
                                      payload.data(), payload.size())
                : ZSTD_decompress(buf.data(), buf.size(), payload.data(),
                                  payload.size());
  if (ZSTD_isError(n) || n != size)
    return error{ec::storage_error,
                 fmt::format("damaged zstd block: {}", ZSTD_getErrorName(n))};
  return std::string_view{buf};
}

// -- byte helpers -------------------------------------------------------------

void put_be64(std::string& out, std::uint64_t v) {
  // One append, not eight push_backs: keys and counts of every write.
  char b[8];
  for (int i = 0; i < 8; ++i)
    b[i] = static_cast<char>((v >> (8 * (7 - i))) & 0xff);
  out.append(b, 8);
}

std::uint64_t get_be64(const void* p) {
  auto b = static_cast<const unsigned char*>(p);
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i)
    v = (v << 8) | b[i];
  return v;
}

// Buckets can be negative (times before 1970): flip the sign bit so that the
// unsigned big-endian key sorts like the signed value.
std::string bucket_key(std::int64_t bucket) {
  std::string k;
  k.reserve(24);
  put_be64(k, static_cast<std::uint64_t>(bucket) ^ (std::uint64_t{1} << 63));
  return k;
}

std::int64_t bucket_from_key(const void* p) {
  return static_cast<std::int64_t>(get_be64(p) ^ (std::uint64_t{1} << 63));
}

void put_be32(std::string& out, std::uint32_t v) {
  for (int i = 3; i >= 0; --i)
    out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// Postings are partitioned into segments of 2^18 event ids within a bucket:
// a write group only touches the B-tree pages of the newest segment, so the
// cost of a commit (LMDB copies every page it changes) stays bounded as a
// bucket grows; a term lookup seeks once per segment.
constexpr int segment_bits = 18;

std::uint32_t segment_of(std::uint64_t id) {
  return static_cast<std::uint32_t>(id >> segment_bits);
}

// Writes `v` as a varint at `p` (at most 10 bytes); returns the end.
char* put_varint(char* p, std::uint64_t v) {
  while (v >= 0x80) {
    *p++ = static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<char>(v);
  return p;
}

bool get_varint(const unsigned char*& p, const unsigned char* end,
                std::uint64_t& v) {
  v = 0;
  for (int shift = 0; p < end && shift < 64; shift += 7) {
    auto b = *p++;
    v |= std::uint64_t{b & 0x7fu} << shift;
    if (!(b & 0x80))
      return true;
  }
  return false;
}

void put_double(std::string& out, double d) {
  std::uint64_t bits;
  std::memcpy(&bits, &d, sizeof bits);
  put_be64(out, bits);
}

double get_double(const void* p) {
  auto bits = get_be64(p);
  double d;
  std::memcpy(&d, &bits, sizeof d);
  return d;
}

std::string encode_cell(const rollup_cell& c) {
  std::string out;
  out.reserve(40);
  put_be64(out, c.count);
  put_double(out, c.sum);
  put_double(out, c.min);
  put_double(out, c.max);
  put_double(out, c.sum_sq);
  return out;
}

rollup_cell decode_cell(const MDB_val& v) {
  rollup_cell c;
  if (v.mv_size != 40)
    return c;
  auto p = static_cast<const char*>(v.mv_data);
  c.count = get_be64(p);
  c.sum = get_double(p + 8);
  c.min = get_double(p + 16);
  c.max = get_double(p + 24);
  c.sum_sq = get_double(p + 32);
  return c;
}

MDB_val as_val(std::string_view s) {
  return MDB_val{s.size(), const_cast<char*>(s.data())};
}

std::string_view as_view(const MDB_val& v) {
  return {static_cast<const char*>(v.mv_data), v.mv_size};
}

error mdb_error(std::string_view what, int rc) {
  if (rc == MDB_MAP_FULL)
    return error{ec::storage_full,
                 fmt::format("{}: the store is full ({}); raise "
                             "parallax.storage.map-size or drop old buckets",
                             what, describe_mdb(rc))};
  if (rc == ENOSPC)
    return error{ec::storage_full,
                 fmt::format("{}: the disk is full", what)};
  return error{ec::storage_error, fmt::format("{}: {}", what, describe_mdb(rc))};
}

// A transaction that aborts unless committed.
class txn {
public:
  txn(MDB_env* env, bool write) {
    rc_ = mdb_txn_begin(env, nullptr, write ? 0 : MDB_RDONLY, &t_);
    if (rc_ != 0)
      t_ = nullptr;
  }
  ~txn() {
    if (t_)
      mdb_txn_abort(t_);
  }
  txn(const txn&) = delete;
  txn& operator=(const txn&) = delete;
  int status() const {
    return rc_;
  }
  MDB_txn* get() const {
    return t_;
  }
  int commit() {
    auto rc = mdb_txn_commit(t_);
    t_ = nullptr; // freed by commit, also on failure
    return rc;
  }

private:
  MDB_txn* t_ = nullptr;
  int rc_ = 0;
};

// Calls f(key, value) for each entry of `dbi` whose key starts with
// `prefix`, in key order, until f returns false. Returns 0 or LMDB's error.
template <class F>
int for_each_prefixed(MDB_txn* t, unsigned dbi, std::string_view prefix,
                      F&& f) {
  MDB_cursor* cur = nullptr;
  if (auto rc = mdb_cursor_open(t, dbi, &cur); rc != 0)
    return rc;
  auto key = as_val(prefix);
  MDB_val val;
  auto rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
  for (; rc == 0 && as_view(key).starts_with(prefix);
       rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT))
    if (!f(key, val))
      break;
  mdb_cursor_close(cur);
  return rc == MDB_NOTFOUND ? 0 : rc;
}

// Deletes every key of `dbi` that starts with `prefix`.
int delete_prefix(MDB_txn* t, unsigned dbi, std::string_view prefix) {
  MDB_cursor* cur = nullptr;
  if (auto rc = mdb_cursor_open(t, dbi, &cur); rc != 0)
    return rc;
  auto key = as_val(prefix);
  MDB_val val;
  auto rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
  while (rc == 0 && as_view(key).starts_with(prefix)) {
    if (rc = mdb_cursor_del(cur, 0); rc != 0)
      break;
    rc = mdb_cursor_get(cur, &key, &val, MDB_GET_CURRENT);
    if (rc == MDB_NOTFOUND || rc == EINVAL)
      rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
  }
  mdb_cursor_close(cur);
  return rc == MDB_NOTFOUND ? 0 : rc;
}

// Writes to one table through one cursor. Given keys in ascending order,
// most puts land on the leaf page of the one before, and LMDB then finds
// the place without descending from the root as mdb_put does every time:
// the puts of a write's postings and summaries, in term order, were a
// sixth of its instructions.
class put_cursor {
public:
  put_cursor(MDB_txn* t, unsigned dbi) {
    rc_ = mdb_cursor_open(t, dbi, &cur_);
  }
  ~put_cursor() {
    if (cur_ != nullptr)
      mdb_cursor_close(cur_);
  }
  put_cursor(const put_cursor&) = delete;
  put_cursor& operator=(const put_cursor&) = delete;

  int put(std::string_view k, std::string_view v) {
    if (rc_ != 0)
      return rc_;
    auto key = as_val(k);
    auto val = as_val(v);
    return mdb_cursor_put(cur_, &key, &val, 0);
  }

  /// Adds `n` to the big-endian count stored under `k` (0 when absent).
  int add_count(std::string_view k, std::uint64_t n) {
    if (rc_ != 0)
      return rc_;
    auto key = as_val(k);
    MDB_val val;
    std::uint64_t count = 0;
    auto rc = mdb_cursor_get(cur_, &key, &val, MDB_SET_KEY);
    if (rc == 0 && val.mv_size == 8)
      count = get_be64(val.mv_data);
    else if (rc != 0 && rc != MDB_NOTFOUND)
      return rc;
    std::string v;
    put_be64(v, count + n);
    return put(k, v);
  }

private:
  MDB_cursor* cur_ = nullptr;
  int rc_ = 0;
};

// -- deduplication -------------------------------------------------------------

source_sequences decode_source_state(const MDB_val& v) {
  source_sequences s;
  auto p = static_cast<const char*>(v.mv_data);
  if (v.mv_size < 8 || v.mv_size % 8 != 0)
    return s;
  s.floor = get_be64(p);
  for (std::size_t off = 8; off < v.mv_size; off += 8)
    s.above.push_back(get_be64(p + off));
  return s;
}

// The committed sequences of `source_id` in `dbi` (the sources table);
// std::nullopt for a source never committed.
result<std::optional<source_sequences>>
read_source_state(MDB_txn* t, unsigned dbi, std::string_view source_id) {
  auto key = as_val(source_id);
  MDB_val val;
  auto rc = mdb_get(t, dbi, &key, &val);
  if (rc == MDB_NOTFOUND)
    return std::optional<source_sequences>{};
  if (rc != 0)
    return mdb_error("store: cannot read source state", rc);
  return std::optional<source_sequences>{decode_source_state(val)};
}

std::string encode_source_state(const source_sequences& s) {
  std::string out;
  out.reserve(8 * (1 + s.above.size()));
  put_be64(out, s.floor);
  for (auto x : s.above)
    put_be64(out, x);
  return out;
}

// -- summaries and rollups, shared by write and rebuild ----------------------

// Views into the events being written, which outlive the write; a rebuild
// keeps the strings it reads alive itself (see rebuild_summaries). `hash`
// is of the other three (see series_of): an event's metrics share a host,
// hashed once per event.
struct series_key {
  std::string_view host;
  std::string_view metric;
  time_ns interval;
  std::size_t hash = 0;
  auto operator<=>(const series_key&) const = default;
};

series_key series_of(std::string_view host, std::size_t host_hash,
                     std::string_view metric, time_ns interval) {
  auto h = hash_mix(host_hash ^ 0xd6e8feb86659fd93ULL,
                    hash_bytes(metric) ^ static_cast<std::uint64_t>(interval));
  return {host, metric, interval, h};
}

struct rollup_entry {
  rollup_cell cell;
  bool loaded = false; // merged with the stored cell already
};

struct series_hash { // not noexcept: see string_hash (schemas/hash.hpp)
  std::size_t operator()(const series_key& k) const {
    return k.hash;
  }
};

// A hash map: every numeric field of every event looks its series up (a
// tree's string compares were a sixth of the indexer's time); the series
// are sorted once when written.
using rollup_map = std::unordered_map<series_key, rollup_entry, series_hash>;

// LMDB keys are at most 511 bytes; the rollup key adds 8 + 2 + 8 bytes to
// the host and metric names, which are separated by NUL. In two steps:
// the host once per event, then each metric of a host that passed.
bool rollup_host_ok(std::string_view host) {
  return host.size() + 18 <= 511 && host.find('\0') == std::string_view::npos;
}
bool rollup_metric_ok(std::string_view host, std::string_view metric) {
  return host.size() + metric.size() + 18 <= 511
         && metric.find('\0') == std::string_view::npos;
}

std::string rollup_db_key(std::string_view bkey, const series_key& s) {
  std::string k{bkey};
  k.append(s.host);
  k.push_back('\0');
  k.append(s.metric);
  k.push_back('\0');
  put_be64(k, static_cast<std::uint64_t>(s.interval)
                ^ (std::uint64_t{1} << 63));
  return k;
}

time_ns floor_div(time_ns t, time_ns span) {
  auto q = t / span;
  if (t % span != 0 && t < 0)
    --q;
  return q;
}

// Every finite numeric field whose key LMDB takes feeds rollups.
template <class F>
void for_each_metric(const event_view& e, F&& f) {
  if (!rollup_host_ok(e.host))
    return;
  for (const auto& fld : e.fields) {
    double x;
    if (auto i = std::get_if<std::int64_t>(&fld.value))
      x = static_cast<double>(*i);
    else if (auto d = std::get_if<double>(&fld.value))
      x = *d;
    else
      continue;
    if (!std::isfinite(x) || !rollup_metric_ok(e.host, fld.name))
      continue;
    f(fld.name, x);
  }
}

// The ids of the events holding a term, ascending. Most terms of a large
// write are in one event only (the numbers, addresses and ports of log
// lines): the first id is held in place, and costs no allocation.
class id_list {
public:
  bool empty() const noexcept {
    return size_ == 0;
  }
  std::size_t size() const noexcept {
    return size_;
  }
  std::uint64_t operator[](std::size_t i) const noexcept {
    return i == 0 ? first_ : rest_[i - 1];
  }
  std::uint64_t back() const noexcept {
    return (*this)[size_ - 1];
  }
  /// The ids after the first: element k - 1 is (*this)[k].
  const std::vector<std::uint64_t>& rest() const noexcept {
    return rest_;
  }
  void push_back(std::uint64_t id) {
    if (size_++ == 0)
      first_ = id;
    else
      rest_.push_back(id);
  }

private:
  std::uint64_t first_ = 0;
  std::size_t size_ = 0;
  std::vector<std::uint64_t> rest_;
};

// Where the stretch of `ids` from `i` that lies in ids[i]'s segment ends.
std::size_t segment_end(const id_list& ids, std::size_t i) {
  auto seg = segment_of(ids[i]);
  const auto& rest = ids.rest(); // rest[k - 1] is ids[k]
  auto j = i + 1;
  while (j < ids.size() && segment_of(rest[j - 1]) == seg)
    ++j;
  return j;
}

// Writes ids (i, j) as varint deltas from the id before each, at `p`,
// into room made beforehand (at most 10 bytes each); returns the end.
// Pushing byte by byte was most of the cost of a write's largest part.
char* put_id_deltas(char* p, const id_list& ids, std::size_t i,
                    std::size_t j) {
  const auto& rest = ids.rest(); // rest[k - 1] is ids[k]
  auto prev = ids[i];
  for (auto k = i + 1; k < j; ++k) {
    p = put_varint(p, rest[k - 1] - prev);
    prev = rest[k - 1];
  }
  return p;
}

struct term_entry {
  id_list ids;
  std::uint64_t summary = 0; // events with this field term
  std::uint64_t last_summarized = ~std::uint64_t{0};
};

// The terms of one bucket in one write (or rebuild): a few hundred
// thousand with `parallax bench correlate`, most of them new. An
// open-addressing table of (hash tag, entry number) in front of entries
// made in chunks, whose keys are copied into large character chunks: a
// new term costs no allocation of its own, and a lookup touches the slot
// array and, on a tag match, one entry. Callers pass the term's hash
// (hash_bytes), which they have computed already. Entries never move.
class term_map {
public:
  struct value_type {
    std::string_view first; // the term, in this map's character chunks
    term_entry second;
    std::uint64_t hash = 0;
  };

  term_map() = default;
  term_map(const term_map&) = delete;
  term_map& operator=(const term_map&) = delete;

  // The entry of `term` (whose hash_bytes is `hash`), made if new.
  value_type& get(std::string_view term, std::uint64_t hash) {
    if ((size_ + 1) * 2 > slots_.size())
      grow();
    auto mask = slots_.size() - 1;
    auto tag = static_cast<std::uint32_t>(hash >> 32);
    for (auto i = hash & mask;; i = (i + 1) & mask) {
      auto& sl = slots_[i];
      if (sl.number == 0) {
        sl = {tag, static_cast<std::uint32_t>(size_ + 1)};
        return add(term, hash);
      }
      if (sl.tag == tag)
        if (auto& e = at(sl.number - 1); same_text(e.first, term))
          return e;
    }
  }

  std::size_t size() const noexcept {
    return size_;
  }

  template <class F>
  void for_each(F&& f) const {
    for (std::size_t i = 0; i < size_; ++i)
      f(at(i));
  }

private:
  struct slot {
    std::uint32_t tag = 0;    // the hash's upper half
    std::uint32_t number = 0; // entry number + 1; 0: free
  };
  static constexpr std::size_t chunk_entries = 1024;
  static constexpr std::size_t chunk_chars = 64 * 1024;

  value_type& at(std::size_t i) const noexcept {
    return chunks_[i / chunk_entries][i % chunk_entries];
  }

  value_type& add(std::string_view term, std::uint64_t hash) {
    if (size_ % chunk_entries == 0)
      chunks_.push_back(std::make_unique<value_type[]>(chunk_entries));
    auto& e = at(size_++);
    e.first = keep(term);
    e.hash = hash;
    return e;
  }

  std::string_view keep(std::string_view term) {
    if (term.empty())
      return {};
    if (term.size() > chars_left_) {
      auto n = std::max(chunk_chars, term.size());
      chars_.push_back(std::make_unique<char[]>(n));
      chars_next_ = chars_.back().get();
      chars_left_ = n;
    }
    std::memcpy(chars_next_, term.data(), term.size());
    std::string_view kept{chars_next_, term.size()};
    chars_next_ += term.size();
    chars_left_ -= term.size();
    return kept;
  }

  void grow() {
    std::vector<slot> bigger(std::max<std::size_t>(4096, slots_.size() * 2));
    auto mask = bigger.size() - 1;
    for (std::size_t n = 0; n < size_; ++n) {
      auto h = at(n).hash;
      auto i = h & mask;
      while (bigger[i].number != 0)
        i = (i + 1) & mask;
      bigger[i] = {static_cast<std::uint32_t>(h >> 32),
                   static_cast<std::uint32_t>(n + 1)};
    }
    slots_ = std::move(bigger);
  }

  std::vector<slot> slots_;
  std::vector<std::unique_ptr<value_type[]>> chunks_;
  std::size_t size_ = 0;
  std::vector<std::unique_ptr<char[]>> chars_;
  char* chars_next_ = nullptr;
  std::size_t chars_left_ = 0;
};

// The node of `term` (the term and its entry), made if new.
term_map::value_type& entry_for(term_map& m, std::string_view term) {
  return m.get(term, hash_bytes(term));
}

// Builds the term map of one bucket. Events of a batch mostly share their
// default fields, so the entry of the last value of each is cached (entries
// of a term_map never move).
using tuple_map = std::unordered_map<std::string, std::uint64_t, string_hash,
                                     std::equal_to<>>;

class indexer_pass {
public:
  indexer_pass(term_map& terms, tuple_map& tuples)
    : terms_{terms}, tuples_{tuples} {
  }

  void add(std::uint64_t id, const event_view& e, bool postings) {
    count_tuple(e);
    default_field(0, "index", e.index, id, postings);
    default_field(1, "host", e.host, id, postings);
    default_field(2, "source", e.source, id, postings);
    default_field(3, "sourcetype", e.sourcetype, id, postings);
    for (const auto& fld : e.fields) {
      if (fld.name == "index" || fld.name == "host" || fld.name == "source"
          || fld.name == "sourcetype")
        continue; // the default field wins; the event's own copy is stored
      std::string_view value;
      if (auto s = std::get_if<std::string_view>(&fld.value))
        value = *s;
      else if (auto b = std::get_if<bool>(&fld.value))
        value = *b ? "true" : "false";
      else
        continue;
      if (value.empty() || !field_term_into(buf_, fld.name, value))
        continue;
      touch(recent(buf_), id, postings, true);
    }
    if (postings && e.raw)
      tokenize(*e.raw, [&](std::string_view t) {
        touch(recent(t), id, true, false);
      });
  }

private:
  static void touch(term_entry& en, std::uint64_t id, bool postings,
                    bool summarize) {
    if (postings && (en.ids.empty() || en.ids.back() != id))
      en.ids.push_back(id);
    if (summarize && en.last_summarized != id) {
      en.last_summarized = id;
      ++en.summary;
    }
  }

  void default_field(int slot, std::string_view name, std::string_view value,
                     std::uint64_t id, bool postings) {
    if (value.empty())
      return;
    auto& c = cache_[slot];
    if (!c.entry || !same_text(c.value, value)) {
      if (!field_term_into(buf_, name, value))
        return;
      c.value = value;
      c.entry = &entry_for(terms_, buf_).second;
    }
    touch(*c.entry, id, postings, true);
  }

  // Events of a batch mostly share all four default fields: the count of
  // the last tuple is cached.
  void count_tuple(const event_view& e) {
    if (last_tuple_ && same_text(e.index, last_[0])
        && same_text(e.host, last_[1]) && same_text(e.source, last_[2])
        && same_text(e.sourcetype, last_[3])) {
      ++*last_tuple_;
      return;
    }
    tbuf_.clear();
    for (auto part : {e.index, e.host, e.source, e.sourcetype}) {
      tbuf_.append(part);
      tbuf_.push_back('\0');
    }
    tbuf_.pop_back();
    if (tbuf_.size() + 8 > 511) { // LMDB's key limit: not counted
      last_tuple_ = nullptr;
      return;
    }
    auto i = tuples_.find(std::string_view{tbuf_});
    if (i == tuples_.end())
      i = tuples_.emplace(tbuf_, 0).first;
    last_tuple_ = &i->second;
    last_[0] = e.index;
    last_[1] = e.host;
    last_[2] = e.source;
    last_[3] = e.sourcetype;
    ++*last_tuple_;
  }

  // The entry of `term`, from a direct-mapped cache of the terms seen last
  // in front of the map. Most terms repeat (the field values of a few VMs,
  // users and commands; the words of log lines) and the map of a large
  // write outgrows the CPU's caches: a lookup there costs a cache miss or
  // two (slot, entry and key), a hit here about one. The hash computed
  // here is the map's.
  term_entry& recent(std::string_view term) {
    if (recent_.empty()) // a pass per block when summaries are rebuilt
      recent_.resize(recent_size);
    auto h = hash_bytes(term);
    auto& slot = recent_[h % recent_size];
    if (slot.entry && slot.hash == h && same_text(slot.key, term))
      return *slot.entry;
    auto& node = terms_.get(term, h);
    slot = {h, node.first, &node.second}; // entries of a term_map stay put
    return node.second;
  }

  struct cached {
    std::string_view value; // valid while the batch being indexed lives
    term_entry* entry = nullptr;
  };
  struct recent_term {
    std::size_t hash = 0;
    std::string_view key; // in the term map
    term_entry* entry = nullptr;
  };
  static constexpr std::size_t recent_size = 2048;
  std::vector<recent_term> recent_; // allocated on first use
  term_map& terms_;
  tuple_map& tuples_;
  std::string buf_, tbuf_;
  cached cache_[4];
  std::uint64_t* last_tuple_ = nullptr; // entries of an unordered_map stay put
  std::string_view last_[4];
};

// Folds the metrics of `e` into `rollups`, event by event: each series
// starts from its stored cell (read once), so folding in id order gives the
// same bits whether the events come in one group, several, or a rebuild.
// `intern` makes the key's names outlive `e` where its buffer does not.
template <class Intern>
void fold_metrics(MDB_txn* w, unsigned dbi, std::string_view bkey,
                  rollup_map& rollups, const event_view& e, time_ns interval, Intern&& intern) {
  std::optional<std::size_t> host_hash;
  for_each_metric(e, [&](std::string_view name, double x) {
    if (!host_hash)
      host_hash = hash_bytes(e.host);
    auto k = series_of(intern(e.host), *host_hash, intern(name),
                       floor_div(e.time, interval) * interval);
    auto& en = rollups[k];
    if (!en.loaded) {
      en.loaded = true;
      auto dk = rollup_db_key(bkey, k);
      auto key = as_val(dk);
      MDB_val val;
      if (mdb_get(w, dbi, &key, &val) == 0)
        en.cell = decode_cell(val);
    }
    en.cell.add(x);
  });
}

// In key order, for LMDB's locality: the series order is the rollup
// key's byte order (names hold no NUL, the interval is stored biased).
int put_rollups(MDB_txn* w, unsigned dbi, std::string_view bkey,
                const rollup_map& rollups) {
  std::vector<const rollup_map::value_type*> sorted;
  sorted.reserve(rollups.size());
  for (const auto& kv : rollups)
    sorted.push_back(&kv);
  std::sort(sorted.begin(), sorted.end(),
            [](auto* x, auto* y) { return x->first < y->first; });
  put_cursor out{w, dbi};
  for (const auto* kv : sorted)
    if (auto rc = out.put(rollup_db_key(bkey, kv->first),
                          encode_cell(kv->second.cell));
        rc != 0)
      return rc;
  return 0;
}

// Adds `n` to the summary count of `term` in the bucket `bkey`, through
// `out` (a cursor on the summaries or the tuples table).
int add_summary(put_cursor& out, std::string_view bkey, std::string_view term,
                std::uint64_t n) {
  std::string k{bkey};
  k.append(term);
  return out.add_count(k, n);
}


// The u64 stored under `key` in the meta table: 0 when absent.
int get_meta_u64(MDB_txn* t, unsigned dbi, std::string_view key,
                 std::uint64_t& v) {
  auto k = as_val(key);
  MDB_val val;
  auto rc = mdb_get(t, dbi, &k, &val);
  v = rc == 0 && val.mv_size == 8 ? get_be64(val.mv_data) : 0;
  return rc == MDB_NOTFOUND ? 0 : rc;
}

int put_meta_u64(MDB_txn* t, unsigned dbi, std::string_view key,
                 std::uint64_t v) {
  std::string bytes;
  put_be64(bytes, v);
  auto k = as_val(key);
  auto val = as_val(bytes);
  return mdb_put(t, dbi, &k, &val, 0);
}

// About the bytes an event takes in a block frame (names, texts, 9 per
// number, a little per field and event): enough to cut blocks by size.
std::size_t approx_bytes(const event_view& e) {
  std::size_t n = 24 + e.index.size() + e.host.size() + e.source.size()
                  + e.sourcetype.size() + (e.raw ? e.raw->size() : 0);
  for (const auto& f : e.fields) {
    n += 2 + f.name.size();
    if (auto s = std::get_if<std::string_view>(&f.value))
      n += 2 + s->size();
    else
      n += 9;
  }
  return n;
}

// A block cut from a bucket's events: its first id, its events, and its
// key and stored value (once packed).
struct cut_block {
  std::uint64_t first = 0;
  std::span<const event_view* const> events;
  std::string key, value;
};

// Cuts `evs` into blocks of at most `per_block` events -- and, with
// `max_bytes`, of about that many bytes at most (never less than one
// event) -- numbered on from `next_id`. The blocks view `evs`.
std::vector<cut_block> cut_blocks(std::string_view bkey,
                                  std::span<const event_view* const> evs,
                                  std::size_t per_block, std::size_t max_bytes,
                                  std::uint64_t& next_id) {
  std::vector<cut_block> blocks;
  for (std::size_t j = 0; j < evs.size();) {
    auto stop = std::min(evs.size(), j + per_block);
    if (max_bytes > 0) {
      std::size_t bytes = approx_bytes(*evs[j]);
      auto k = j + 1;
      for (; k < stop && bytes + approx_bytes(*evs[k]) <= max_bytes; ++k)
        bytes += approx_bytes(*evs[k]);
      stop = k;
    }
    auto& b = blocks.emplace_back();
    b.first = next_id;
    b.events = evs.subspan(j, stop - j);
    b.key = bkey;
    put_be64(b.key, b.first);
    next_id += stop - j;
    j = stop;
  }
  return blocks;
}

// Encodes and compresses every block (its value). Writes of several blocks
// do it on a helper thread while `meanwhile` (the term index, the rollups)
// runs on this one: compression is a fifth of a write, and the writer is
// the ingest path's one serial stage.
template <class F>
void pack_blocks(std::vector<cut_block>& blocks, F&& meanwhile) {
  auto pack_all = [&blocks] {
    auto pk = packers().take();
    for (auto& b : blocks) {
      pk->frame.clear();
      wire::encode(block_source, b.first, b.events, pk->frame);
      pack_block(*pk, b.value);
    }
    packers().give_back(std::move(pk));
  };
  constexpr std::size_t parallel_from = 4; // blocks
  if (blocks.size() < parallel_from) {
    pack_all();
    meanwhile();
    return;
  }
  auto helper = std::async(std::launch::async, pack_all);
  meanwhile();
  helper.get();
}

// The first 8 bytes of `s` as a big-endian number, zero-padded: numbers
// compare as the strings' bytes do, up to a tie.
std::uint64_t prefix_of(std::string_view s) {
  unsigned char b[8] = {};
  std::memcpy(b, s.data(), std::min<std::size_t>(8, s.size()));
  return get_be64(b);
}

// The terms of a bucket's term map in key order (for write locality).
// Sorted by their first 8 bytes, held beside the pointer, and by the whole
// term only on a tie: comparing pointed-to strings made the sort a tenth of
// a write's instructions, most of it in cache misses and memcmp calls.
std::vector<const term_map::value_type*> sorted_terms(const term_map& terms) {
  struct keyed {
    std::uint64_t prefix;
    const term_map::value_type* kv;
  };
  std::vector<keyed> keys;
  keys.reserve(terms.size());
  terms.for_each([&](const term_map::value_type& kv) {
    keys.push_back({prefix_of(kv.first), &kv});
  });
  std::sort(keys.begin(), keys.end(), [](const keyed& a, const keyed& b) {
    if (a.prefix != b.prefix)
      return a.prefix < b.prefix;
    return a.kv->first < b.kv->first;
  });
  std::vector<const term_map::value_type*> sorted;
  sorted.reserve(keys.size());
  for (const auto& k : keys)
    sorted.push_back(k.kv);
  return sorted;
}

// The tables add_counts writes to.
struct count_tables {
  unsigned summaries, rollups, tuples;
};

// Adds a bucket's counts to what the tables hold: the summary count of
// each term (`sorted`, in key order), the rollups and the tuple counts.
error add_counts(MDB_txn* w, count_tables t, std::string_view bkey,
                 const std::vector<const term_map::value_type*>& sorted,
                 const rollup_map& rollups, const tuple_map& tuples) {
  {
    put_cursor out{w, t.summaries};
    for (const auto* kv : sorted)
      if (kv->second.summary > 0)
        if (auto rc = add_summary(out, bkey, kv->first, kv->second.summary);
            rc != 0)
          return mdb_error("store: cannot write a summary", rc);
  }
  if (auto rc = put_rollups(w, t.rollups, bkey, rollups); rc != 0)
    return mdb_error("store: cannot write a rollup", rc);
  put_cursor out{w, t.tuples};
  for (const auto& [tuple, n] : tuples)
    if (auto rc = add_summary(out, bkey, tuple, n); rc != 0)
      return mdb_error("store: cannot write a tuple count", rc);
  return {};
}

// Calls sink(key, value) for the postings of each term: one key per term
// and segment, [bucket][segment][term] 00 [first id] -> varint deltas.
template <class Sink>
int cut_postings(std::string_view bkey,
                 const std::vector<const term_map::value_type*>& sorted,
                 Sink&& sink) {
  std::string kbuf;
  // Only grows: no zeroing per key; never empty, so a term with one id
  // gives LMDB an empty value that still points somewhere.
  std::vector<char> vbuf(64);
  for (const auto* kv : sorted) {
    const auto& term = kv->first;
    const auto& en = kv->second;
    for (std::size_t i = 0; i < en.ids.size();) {
      auto seg = segment_of(en.ids[i]);
      kbuf = bkey;
      put_be32(kbuf, seg);
      kbuf.append(term);
      kbuf.push_back('\0');
      put_be64(kbuf, en.ids[i]);
      // The segment's other ids as deltas (the buffer only grows).
      auto j = segment_end(en.ids, i);
      if (vbuf.size() < (j - i - 1) * 10)
        vbuf.resize((j - i - 1) * 10);
      auto* p = put_id_deltas(vbuf.data(), en.ids, i, j);
      std::string_view value{vbuf.data(),
                             static_cast<std::size_t>(p - vbuf.data())};
      if (auto rc = sink(std::string_view{kbuf}, value); rc != 0)
        return rc;
      i = j;
    }
  }
  return 0;
}

// -- Runs ----------------------------------------------------------------------
//
// A write that brings a bucket thousands of new terms (a busy fleet's
// commit: ~75,000 terms per 150,000 events, most seen once) made one
// LMDB put per term and segment, each into a random leaf page among the
// bucket's earlier terms: half of a write's instructions and most of its
// dirty pages. Such a write now stores its postings as a run: the terms in
// order, packed into values of about `run_chunk_bytes`, keyed by the last
// term each holds, in the `runs` table:
//
//   [bucket][segment be32][run be32][last term] -> entries
//   entry = varint term length, term, varint n, then n bytes of ids:
//           varint (first id - segment base), varint deltas
//
// A run's keys follow one another, so its puts append. A lookup seeks once
// per run of a segment to the chunk whose last term is not below the term
// and scans that chunk. Small writes keep one key per term (above): a
// bucket fed slowly would otherwise gather a run per commit. Runs are
// numbered store-wide (meta `next-run`); compaction rewrites a bucket's
// postings as per-term keys and drops its runs.
constexpr std::size_t run_chunk_bytes = 4000;

std::uint64_t segment_base(std::uint32_t seg) {
  return std::uint64_t{seg} << segment_bits;
}

// Calls sink(key, value) for each chunk of the run `run` made of `sorted`'s
// postings, whose ids lie in segments [first_seg, last_seg].
template <class Sink>
int cut_run(std::string_view bkey, std::uint32_t run,
            const std::vector<const term_map::value_type*>& sorted,
            std::uint32_t first_seg, std::uint32_t last_seg, Sink&& sink) {
  std::vector<std::size_t> next(sorted.size(), 0); // per term: first id left
  std::string chunk, key;
  std::vector<char> ids(64); // only grows
  chunk.reserve(run_chunk_bytes + 512);
  char len[10];
  for (auto seg = first_seg; seg <= last_seg; ++seg) {
    auto base = segment_base(seg);
    std::string_view last;
    auto flush = [&]() -> int {
      if (chunk.empty())
        return 0;
      key = bkey;
      put_be32(key, seg);
      put_be32(key, run);
      key.append(last);
      auto rc = sink(std::string_view{key}, std::string_view{chunk});
      chunk.clear();
      return rc;
    };
    for (std::size_t t = 0; t < sorted.size(); ++t) {
      const auto& list = sorted[t]->second.ids;
      auto i = next[t];
      if (i >= list.size() || segment_of(list[i]) != seg)
        continue;
      auto j = segment_end(list, i);
      next[t] = j;
      if (ids.size() < (j - i) * 10)
        ids.resize((j - i) * 10);
      auto* p = put_id_deltas(put_varint(ids.data(), list[i] - base), list,
                              i, j);
      const auto& term = sorted[t]->first;
      // A run is found by its chunks' last terms: the terms must come in
      // LMDB's key order (memcmp, shorter first), as sorted_terms makes it.
      if (!last.empty() && !(last < term))
        return EINVAL;
      chunk.append(len, put_varint(len, term.size()));
      chunk.append(term);
      auto n = static_cast<std::size_t>(p - ids.data());
      chunk.append(len, put_varint(len, n));
      chunk.append(ids.data(), n);
      last = term;
      if (chunk.size() >= run_chunk_bytes)
        if (auto rc = flush(); rc != 0)
          return rc;
    }
    if (auto rc = flush(); rc != 0)
      return rc;
  }
  return 0;
}

// Calls f(term, ids) for each entry of a run's chunk, in order, until f
// returns false; `base` is the chunk's segment base. False: the chunk is
// damaged.
template <class F>
bool for_each_run_entry(std::string_view chunk, std::uint64_t base, F&& f) {
  auto p = reinterpret_cast<const unsigned char*>(chunk.data());
  auto e = p + chunk.size();
  while (p < e) {
    std::uint64_t tlen = 0, n = 0;
    if (!get_varint(p, e, tlen) || tlen > static_cast<std::uint64_t>(e - p))
      return false;
    std::string_view term{reinterpret_cast<const char*>(p), tlen};
    p += tlen;
    if (!get_varint(p, e, n) || n == 0 || n > static_cast<std::uint64_t>(e - p))
      return false;
    auto ids = p;
    p += n;
    if (!f(term, ids, p, base))
      break;
  }
  return true;
}

// Appends the ids an entry holds (the bytes [ids, end)).
bool decode_run_ids(const unsigned char* ids, const unsigned char* end,
                    std::uint64_t base, std::vector<std::uint64_t>& out) {
  std::uint64_t d = 0;
  if (!get_varint(ids, end, d))
    return false;
  auto id = base + d;
  out.push_back(id);
  while (ids < end) {
    if (!get_varint(ids, end, d))
      return false;
    id += d;
    out.push_back(id);
  }
  return true;
}

} // namespace

void rollup_cell::add(double x) {
  if (count == 0) {
    min = max = x;
  } else {
    min = std::min(min, x);
    max = std::max(max, x);
  }
  ++count;
  sum += x;
  sum_sq += x * x;
}

void rollup_cell::merge(const rollup_cell& o) {
  if (o.count == 0)
    return;
  if (count == 0) {
    *this = o;
    return;
  }
  count += o.count;
  sum += o.sum;
  sum_sq += o.sum_sq;
  min = std::min(min, o.min);
  max = std::max(max, o.max);
}

std::int64_t store::bucket_of(time_ns t) const noexcept {
  return floor_div(t, opts_.bucket_span);
}

result<store> store::open(environment& env, const store_options& opts) {
  if (opts.bucket_span <= 0 || opts.rollup_interval <= 0
      || opts.block_events == 0)
    return error{ec::config_bad_value,
                 "store: bucket span, rollup interval and block size must "
                 "be positive"};
  store s{env, opts};
  bool read_only = false;
  {
    unsigned flags = 0;
    mdb_env_get_flags(env.handle(), &flags);
    read_only = flags & MDB_RDONLY;
  }
  txn t{env.handle(), !read_only};
  if (t.status() != 0)
    return mdb_error("store: cannot begin transaction", t.status());
  struct named {
    const char* name;
    unsigned* dbi;
  };
  named dbs[] = {{"blocks", &s.blocks_},       {"postings", &s.postings_},
                 {"summaries", &s.summaries_}, {"rollups", &s.rollups_},
                 {"catalog", &s.catalog_},     {"sources", &s.sources_},
                 {"meta", &s.meta_}};
  for (auto& d : dbs) {
    MDB_dbi dbi;
    auto rc = mdb_dbi_open(t.get(), d.name, read_only ? 0 : MDB_CREATE, &dbi);
    if (rc == MDB_NOTFOUND && read_only)
      return error{ec::storage_error,
                   fmt::format("store in {} has no {} table yet; start "
                               "`parallax serve` on it once",
                               env.path().string(), d.name)};
    if (rc != 0)
      return mdb_error(fmt::format("store: cannot open table {}", d.name), rc);
    *d.dbi = dbi;
  }
  // The tuples table came after format 1's first stores: an older store
  // gets it here, filled from its blocks below; read-only, search does
  // without it.
  bool fill_tuples = false;
  {
    MDB_dbi dbi;
    auto rc = mdb_dbi_open(t.get(), "tuples", 0, &dbi);
    if (rc == MDB_NOTFOUND && !read_only) {
      rc = mdb_dbi_open(t.get(), "tuples", MDB_CREATE, &dbi);
      MDB_stat st;
      fill_tuples = rc == 0 && mdb_stat(t.get(), s.catalog_, &st) == 0
                    && st.ms_entries > 0;
    }
    if (rc == 0)
      s.tuples_ = dbi;
    else if (rc != MDB_NOTFOUND)
      return mdb_error("store: cannot open table tuples", rc);
  }
  // So did the runs table (postings of large writes): an older store gets
  // it here, empty; read-only, there are no runs to read.
  {
    MDB_dbi dbi;
    auto rc = mdb_dbi_open(t.get(), "runs", read_only ? 0 : MDB_CREATE, &dbi);
    if (rc == 0) {
      s.runs_ = dbi;
      s.has_runs_ = true;
    } else if (rc != MDB_NOTFOUND) {
      return mdb_error("store: cannot open table runs", rc);
    }
  }
  // The bucket span is fixed at creation.
  auto key = as_val(span_key);
  MDB_val val;
  auto rc = mdb_get(t.get(), s.meta_, &key, &val);
  if (rc == 0 && val.mv_size == 8) {
    auto stored = static_cast<time_ns>(get_be64(val.mv_data));
    if (stored != opts.bucket_span)
      return error{ec::config_bad_value,
                   fmt::format("parallax.storage.bucket-span: the store in {} "
                               "was created with a span of {} s, the "
                               "configuration says {} s; a store's span "
                               "cannot change",
                               env.path().string(), stored / 1'000'000'000,
                               opts.bucket_span / 1'000'000'000)};
  } else if (rc == MDB_NOTFOUND && !read_only) {
    std::string v;
    put_be64(v, static_cast<std::uint64_t>(opts.bucket_span));
    auto vv = as_val(v);
    if (rc = mdb_put(t.get(), s.meta_, &key, &vv, 0); rc != 0)
      return mdb_error("store: cannot record the bucket span", rc);
  } else if (rc != 0 && rc != MDB_NOTFOUND) {
    return mdb_error("store: cannot read the bucket span", rc);
  }
  // An older format opened writable: the record says the latest in the
  // transaction that made what it adds (the runs table), so neither is on
  // disk without the other, and nothing changes when a check above fails.
  bool upgrade = !read_only && env.version() != format_version::latest;
  if (upgrade)
    if (rc = env.put_latest_format(t.get()); rc != 0)
      return mdb_error("store: cannot upgrade the format record", rc);
  // Handles opened in a transaction stay valid only if it commits (also a
  // read-only one); an aborted transaction closes them.
  if (rc = t.commit(); rc != 0)
    return mdb_error("store: cannot commit table creation", rc);
  if (upgrade)
    env.mark_upgraded();
  if (fill_tuples)
    if (auto err = s.rebuild_summaries())
      return err;
  return s;
}

namespace {

// Orders (bucket, event) pairs by bucket, keeping arrival order within a
// bucket. A write's events fall in a handful of buckets: counted and
// placed in one pass each, where a stable sort of a group's ~150,000
// events (mostly equal keys) was a tenth of a write's instructions. More
// than 64 buckets: the stable sort.
void group_by_bucket(
  std::vector<std::pair<std::int64_t, const event_view*>>& v) {
  auto by_bucket = [](const auto& a, const auto& b) {
    return a.first < b.first;
  };
  if (std::is_sorted(v.begin(), v.end(), by_bucket))
    return;
  std::vector<std::pair<std::int64_t, std::size_t>> counts; // bucket, n
  std::size_t last = 0;
  for (const auto& x : v) {
    auto bucket = x.first;
    if (last < counts.size() && counts[last].first == bucket) {
      ++counts[last].second;
      continue;
    }
    last = 0;
    while (last < counts.size() && counts[last].first != bucket)
      ++last;
    if (last == counts.size()) {
      if (counts.size() == 64) {
        std::stable_sort(v.begin(), v.end(), by_bucket);
        return;
      }
      counts.emplace_back(bucket, 0);
    }
    ++counts[last].second;
  }
  std::sort(counts.begin(), counts.end());
  // Each bucket's first place in the output.
  std::size_t at = 0;
  for (auto& [bucket, n] : counts)
    at += std::exchange(n, at);
  std::vector<std::pair<std::int64_t, const event_view*>> out(v.size());
  for (const auto& x : v) {
    auto it = std::lower_bound(
      counts.begin(), counts.end(), x.first,
      [](const auto& c, std::int64_t b) { return c.first < b; });
    out[it->second++] = x;
  }
  v.swap(out);
}

} // namespace

result<write_result> store::write(std::span<const incoming_batch> group) {
  txn t{env_->handle(), true};
  if (t.status() != 0)
    return mdb_error("store: cannot begin write transaction", t.status());
  auto w = t.get();
  write_result res;
  res.outcomes.reserve(group.size());
  // Deduplicate by (source id, sequence) against the store and the group.
  std::unordered_map<std::string_view, source_sequences> last;
  std::vector<std::pair<std::int64_t, const event_view*>> accepted;
  for (const auto& b : group) {
    auto i = last.find(b.source_id);
    if (i == last.end()) {
      auto known = read_source_state(w, sources_, b.source_id);
      if (!known)
        return known.error();
      i = last.emplace(b.source_id, known->value_or(source_sequences{}))
            .first;
    }
    if (!i->second.admit(b.sequence)) {
      res.outcomes.push_back(write_outcome::duplicate);
      continue;
    }
    res.outcomes.push_back(write_outcome::stored);
    for (const auto& e : b.events)
      accepted.emplace_back(bucket_of(e.time), &e);
  }
  // Group by bucket, keeping arrival order within a bucket.
  group_by_bucket(accepted);
  std::uint64_t next_id = 0;
  if (auto rc = get_meta_u64(w, meta_, next_id_key, next_id); rc != 0)
    return mdb_error("store: cannot read the next event id", rc);
  std::string vbuf;
  std::vector<const event_view*> evs;
  for (std::size_t i = 0; i < accepted.size();) {
    auto bucket = accepted[i].first;
    auto end = i;
    while (end < accepted.size() && accepted[end].first == bucket)
      ++end;
    auto bkey = bucket_key(bucket);
    term_map terms;
    tuple_map tuples;
    indexer_pass pass{terms, tuples};
    rollup_map rollups;
    time_ns min_t = accepted[i].second->time, max_t = min_t;
    evs.clear();
    for (auto k = i; k < end; ++k) {
      evs.push_back(accepted[k].second);
      min_t = std::min(min_t, accepted[k].second->time);
      max_t = std::max(max_t, accepted[k].second->time);
    }
    std::uint64_t bytes = 0;
    auto blocks = cut_blocks(bkey, evs, opts_.block_events, 0, next_id);
    pack_blocks(blocks, [&] {
      for (const auto& b : blocks)
        for (std::size_t j = 0; j < b.events.size(); ++j)
          pass.add(b.first + j, *b.events[j], true);
      for (auto j = i; j < end; ++j)
        fold_metrics(w, rollups_, bkey, rollups, *accepted[j].second,
                     opts_.rollup_interval,
                     [](std::string_view x) { return x; }); // frames outlive
    });
    int rc = 0;
    {
      put_cursor out{w, blocks_};
      for (const auto& b : blocks) {
        bytes += b.value.size();
        if ((rc = out.put(b.key, b.value)) != 0)
          return mdb_error("store: cannot write a block", rc);
      }
    }
    // Postings and summaries, in term order for locality: a run when the
    // write brings many terms (see "Runs"), else one key per term.
    auto sorted = sorted_terms(terms);
    if (has_runs_ && opts_.run_min_terms > 0
        && sorted.size() >= opts_.run_min_terms && !blocks.empty()) {
      std::uint64_t run = 0;
      if (rc = get_meta_u64(w, meta_, next_run_key, run); rc != 0)
        return mdb_error("store: cannot read the next run number", rc);
      const auto& tail = blocks.back();
      auto first_seg = segment_of(blocks.front().first);
      auto last_seg = segment_of(tail.first + tail.events.size() - 1);
      put_cursor out{w, runs_};
      rc = cut_run(bkey, static_cast<std::uint32_t>(run), sorted, first_seg,
                   last_seg, [&](std::string_view k, std::string_view v) {
                     return out.put(k, v);
                   });
      if (rc != 0)
        return mdb_error("store: cannot write postings", rc);
      if (rc = put_meta_u64(w, meta_, next_run_key,
                            (run + 1) & 0xffffffffu);
          rc != 0)
        return mdb_error("store: cannot record the next run number", rc);
    } else {
      put_cursor out{w, postings_};
      rc = cut_postings(bkey, sorted, [&](std::string_view k,
                                          std::string_view v) {
        return out.put(k, v);
      });
      if (rc != 0)
        return mdb_error("store: cannot write postings", rc);
    }
    if (auto err = add_counts(w, {summaries_, rollups_, tuples_}, bkey,
                              sorted, rollups, tuples))
      return err;
    // Catalog entry: min time, max time, events, bytes.
    {
      auto key = as_val(bkey);
      MDB_val val;
      std::uint64_t events = end - i, all_bytes = bytes;
      auto rc = mdb_get(w, catalog_, &key, &val);
      if (rc == 0 && val.mv_size == 32) {
        auto p = static_cast<const char*>(val.mv_data);
        min_t = std::min(min_t, static_cast<time_ns>(get_be64(p)));
        max_t = std::max(max_t, static_cast<time_ns>(get_be64(p + 8)));
        events += get_be64(p + 16);
        all_bytes += get_be64(p + 24);
      }
      vbuf.clear();
      put_be64(vbuf, static_cast<std::uint64_t>(min_t));
      put_be64(vbuf, static_cast<std::uint64_t>(max_t));
      put_be64(vbuf, events);
      put_be64(vbuf, all_bytes);
      auto nv = as_val(vbuf);
      if (rc = mdb_put(w, catalog_, &key, &nv, 0); rc != 0)
        return mdb_error("store: cannot update the catalog", rc);
    }
    res.events += end - i;
    res.bytes += bytes;
    i = end;
  }
  for (const auto& [source, state] : last) {
    auto key = as_val(source);
    auto v = encode_source_state(state);
    auto val = as_val(v);
    if (auto rc = mdb_put(w, sources_, &key, &val, 0); rc != 0)
      return mdb_error("store: cannot record source state", rc);
  }
  if (auto rc = put_meta_u64(w, meta_, next_id_key, next_id); rc != 0)
    return mdb_error("store: cannot record the next event id", rc);
  if (auto rc = t.commit(); rc != 0)
    return mdb_error("store: commit failed", rc);
  return res;
}

namespace {

// Blocks are our own frames: no receiver's limits apply to them.
wire::limits block_limits() {
  wire::limits lim;
  lim.max_frame_bytes = std::size_t{1} << 40;
  lim.max_events = std::size_t{1} << 32;
  lim.max_string_bytes = lim.max_frame_bytes;
  lim.max_fields = 1u << 16;
  lim.max_name_bytes = 1u << 16;
  return lim;
}

// The error for a stored block that cannot be read back.
error damaged_block(std::uint64_t first, std::string_view why) {
  return error{ec::storage_error,
               fmt::format("store: block {} is damaged: {}", first, why)};
}

// Decodes a block's frame (unpack_block's result), every event of it.
result<wire::batch_view> decode_block(std::string_view frame,
                                      std::uint64_t first) {
  auto b = wire::decode(std::as_bytes(std::span{frame.data(), frame.size()}),
                        nullptr, block_limits());
  if (!b)
    return damaged_block(first, b.error().render());
  return b;
}

// Calls f(first_id, batch_view) for each block of the bucket prefix.
template <class F>
error scan_blocks(MDB_txn* t, unsigned dbi, std::string_view prefix, F&& f) {
  std::string buf;
  error err;
  auto rc = for_each_prefixed(
    t, dbi, prefix, [&](const MDB_val& key, const MDB_val& val) {
      if (key.mv_size != 16)
        return true;
      auto first = get_be64(static_cast<const char*>(key.mv_data) + 8);
      auto frame = unpack_block(as_view(val), buf);
      if (!frame) {
        err = damaged_block(first, frame.error().message);
        return false;
      }
      auto b = decode_block(*frame, first);
      if (!b) {
        err = b.error();
        return false;
      }
      f(first, *b);
      return true;
    });
  if (err)
    return err;
  if (rc != 0)
    return mdb_error("store: cannot read blocks", rc);
  return {};
}

} // namespace

// -- reading -------------------------------------------------------------------

result<snapshot> store::read() const {
  MDB_txn* t = nullptr;
  if (auto rc = mdb_txn_begin(env_->handle(), nullptr, MDB_RDONLY, &t);
      rc != 0)
    return mdb_error("store: cannot begin read transaction", rc);
  return snapshot{*this, t};
}

snapshot::snapshot(snapshot&& other) noexcept
  : st_{other.st_}, t_{std::exchange(other.t_, nullptr)} {
}

snapshot& snapshot::operator=(snapshot&& other) noexcept {
  if (this != &other) {
    if (t_)
      mdb_txn_abort(t_);
    st_ = other.st_;
    t_ = std::exchange(other.t_, nullptr);
  }
  return *this;
}

snapshot::~snapshot() {
  if (t_)
    mdb_txn_abort(t_);
}

namespace {

// Each store read is a snapshot's, through a snapshot of its own.
template <class F>
auto through_snapshot(const store& st, F&& f)
  -> decltype(f(std::declval<const snapshot&>())) {
  auto s = st.read();
  if (!s)
    return s.error();
  return f(*s);
}

} // namespace

result<std::vector<bucket_info>> store::buckets() const {
  return through_snapshot(
    *this, [&](const snapshot& s) { return s.buckets(); });
}

result<std::vector<std::uint64_t>>
store::postings(std::int64_t bucket, std::string_view term) const {
  return through_snapshot(
    *this, [&](const snapshot& s) { return s.postings(bucket, term); });
}

result<std::uint64_t> store::count(std::int64_t bucket, std::string_view name,
                                   std::string_view value) const {
  return through_snapshot(
    *this, [&](const snapshot& s) { return s.count(bucket, name, value); });
}

result<std::vector<std::pair<std::string, std::uint64_t>>>
store::summaries(std::int64_t bucket) const {
  return through_snapshot(
    *this, [&](const snapshot& s) { return s.summaries(bucket, ""); });
}

result<std::vector<std::pair<std::string, std::uint64_t>>>
store::summaries(std::int64_t bucket, std::string_view prefix) const {
  return through_snapshot(
    *this, [&](const snapshot& s) { return s.summaries(bucket, prefix); });
}

result<std::vector<store::tuple_count>>
store::tuples(std::int64_t bucket) const {
  return through_snapshot(
    *this, [&](const snapshot& s) { return s.tuples(bucket); });
}

error store::events(
  std::int64_t bucket, std::span<const std::uint64_t> ids,
  const std::function<bool(std::uint64_t, const event_view&)>& f) const {
  return through_snapshot(
    *this, [&](const snapshot& s) { return s.events(bucket, ids, f); });
}

result<std::vector<rollup_row>> store::rollups(std::int64_t bucket) const {
  return through_snapshot(
    *this, [&](const snapshot& s) { return s.rollups(bucket); });
}

error store::scan(std::int64_t bucket,
                  const std::function<void(std::uint64_t, const event_view&)>& f)
  const {
  return through_snapshot(
    *this, [&](const snapshot& s) { return s.scan(bucket, f); });
}

result<std::optional<std::uint64_t>>
store::last_sequence(std::string_view source_id) const {
  return through_snapshot(
    *this, [&](const snapshot& s) { return s.last_sequence(source_id); });
}

result<source_sequences> store::committed(std::string_view source_id) const {
  return through_snapshot(
    *this, [&](const snapshot& s) { return s.committed(source_id); });
}

result<std::vector<bucket_info>> snapshot::buckets() const {
  MDB_cursor* cur = nullptr;
  if (auto rc = mdb_cursor_open(t_, st_->catalog_, &cur); rc != 0)
    return mdb_error("store: cannot read the catalog", rc);
  std::vector<bucket_info> out;
  MDB_val key, val;
  auto rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
  for (; rc == 0; rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
    if (key.mv_size != 8 || val.mv_size != 32)
      continue;
    bucket_info b;
    b.id = bucket_from_key(key.mv_data);
    b.start = b.id * st_->opts_.bucket_span;
    b.end = b.start + st_->opts_.bucket_span;
    auto p = static_cast<const char*>(val.mv_data);
    b.min_time = static_cast<time_ns>(get_be64(p));
    b.max_time = static_cast<time_ns>(get_be64(p + 8));
    b.events = get_be64(p + 16);
    b.block_bytes = get_be64(p + 24);
    std::string mk{compacted_key};
    mk.append(static_cast<const char*>(key.mv_data), 8);
    auto mkey = as_val(mk);
    MDB_val mval;
    if (mdb_get(t_, st_->meta_, &mkey, &mval) == 0 && mval.mv_size == 8)
      b.compacted_events = get_be64(mval.mv_data);
    out.push_back(b);
  }
  mdb_cursor_close(cur);
  if (rc != MDB_NOTFOUND)
    return mdb_error("store: cannot read the catalog", rc);
  return out;
}

result<std::vector<std::uint64_t>> snapshot::postings(std::int64_t bucket,
                                                   std::string_view term) const {
  auto bkey = bucket_key(bucket);
  MDB_cursor* cur = nullptr;
  if (auto rc = mdb_cursor_open(t_, st_->postings_, &cur); rc != 0)
    return mdb_error("store: cannot read postings", rc);
  std::vector<std::uint64_t> out;
  // One seek per segment of the bucket: to the term in it, then on to the
  // first key of the next segment, which names that segment's number.
  std::uint32_t seg = 0;
  std::string prefix;
  int rc = 0;
  for (;;) {
    prefix = bkey;
    put_be32(prefix, seg);
    prefix.append(term);
    prefix.push_back('\0');
    auto key = as_val(prefix);
    MDB_val val;
    rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
    if (rc != 0 || !as_view(key).starts_with(bkey) || key.mv_size < 16)
      break;
    // Bytes 8..11 of the key are the segment number.
    auto found = static_cast<std::uint32_t>(
      get_be64(static_cast<const char*>(key.mv_data) + 8) >> 32);
    if (found != seg) { // nothing at or after the term in `seg`
      seg = found;
      continue;
    }
    for (; rc == 0 && as_view(key).starts_with(prefix)
           && key.mv_size == prefix.size() + 8;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
      auto id = get_be64(static_cast<const char*>(key.mv_data) + prefix.size());
      out.push_back(id);
      auto p = static_cast<const unsigned char*>(val.mv_data);
      auto e = p + val.mv_size;
      std::uint64_t d;
      while (p < e && get_varint(p, e, d)) {
        id += d;
        out.push_back(id);
      }
    }
    if (rc != 0 && rc != MDB_NOTFOUND)
      break;
    if (seg == std::numeric_limits<std::uint32_t>::max())
      break;
    ++seg;
  }
  mdb_cursor_close(cur);
  if (rc != 0 && rc != MDB_NOTFOUND)
    return mdb_error("store: cannot read postings", rc);
  if (st_->has_runs_) {
    auto per_term = out.size();
    if (auto err = run_postings(bkey, term, out))
      return err;
    // Each part is in id order (runs are numbered in write order, so in id
    // order too, but for a wrap of the 32-bit run number): one merge.
    auto mid = out.begin() + static_cast<std::ptrdiff_t>(per_term);
    if (!std::is_sorted(mid, out.end()))
      std::sort(mid, out.end());
    std::inplace_merge(out.begin(), mid, out.end());
  }
  return out;
}

error snapshot::run_postings(std::string_view bkey, std::string_view term,
                             std::vector<std::uint64_t>& out) const {
  MDB_cursor* cur = nullptr;
  if (auto rc = mdb_cursor_open(t_, st_->runs_, &cur); rc != 0)
    return mdb_error("store: cannot read runs", rc);
  // Per segment, per run: a seek to the chunk whose last term is not below
  // `term` (landing on a later run or segment names where to go next).
  std::uint32_t seg = 0, run = 0;
  std::string k;
  bool damaged = false;
  int rc = 0;
  for (;;) {
    k = bkey;
    put_be32(k, seg);
    put_be32(k, run);
    k.append(term);
    auto key = as_val(k);
    MDB_val val;
    rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
    if (rc != 0 || key.mv_size < 16 || !as_view(key).starts_with(bkey))
      break;
    auto p = static_cast<const char*>(key.mv_data);
    auto found_seg = static_cast<std::uint32_t>(get_be64(p + 8) >> 32);
    auto found_run = static_cast<std::uint32_t>(get_be64(p + 8) & 0xffffffffu);
    if (found_seg != seg || found_run != run) { // nothing in (seg, run)
      seg = found_seg;
      run = found_run;
      continue;
    }
    auto ok = for_each_run_entry(
      as_view(val), segment_base(seg),
      [&](std::string_view t, const unsigned char* ids,
          const unsigned char* end, std::uint64_t base) {
        if (t < term)
          return true;
        if (t == term && !decode_run_ids(ids, end, base, out))
          damaged = true;
        return false; // sorted: found, or not in this run
      });
    if (!ok || damaged) {
      damaged = true;
      break;
    }
    if (run == std::numeric_limits<std::uint32_t>::max()) {
      if (seg == std::numeric_limits<std::uint32_t>::max())
        break;
      ++seg;
      run = 0;
    } else {
      ++run;
    }
  }
  mdb_cursor_close(cur);
  if (damaged)
    return error{ec::storage_error,
                 fmt::format("store: a run of bucket {} is damaged",
                             bucket_from_key(bkey.data()))};
  if (rc != 0 && rc != MDB_NOTFOUND)
    return mdb_error("store: cannot read runs", rc);
  return {};
}

result<std::uint64_t> snapshot::count(std::int64_t bucket, std::string_view name,
                                   std::string_view value) const {
  auto k = bucket_key(bucket) + field_term(name, value);
  auto key = as_val(k);
  MDB_val val;
  auto rc = mdb_get(t_, st_->summaries_, &key, &val);
  if (rc == MDB_NOTFOUND)
    return std::uint64_t{0};
  if (rc != 0 || val.mv_size != 8)
    return mdb_error("store: cannot read a summary", rc);
  return get_be64(val.mv_data);
}

result<std::vector<rollup_row>> snapshot::rollups(std::int64_t bucket) const {
  std::vector<rollup_row> out;
  auto rc = for_each_prefixed(
    t_, st_->rollups_, bucket_key(bucket),
    [&](const MDB_val& key, const MDB_val& val) {
      auto rest = as_view(key).substr(8);
      auto a = rest.find('\0');
      auto b = rest.find('\0', a + 1);
      if (a == std::string_view::npos || b == std::string_view::npos
          || rest.size() != b + 9)
        return true;
      rollup_row r;
      r.host = rest.substr(0, a);
      r.metric = rest.substr(a + 1, b - a - 1);
      r.interval_start = static_cast<time_ns>(get_be64(rest.data() + b + 1)
                                              ^ (std::uint64_t{1} << 63));
      r.cell = decode_cell(val);
      out.push_back(std::move(r));
      return true;
    });
  if (rc != 0)
    return mdb_error("store: cannot read rollups", rc);
  return out;
}


error snapshot::scan(std::int64_t bucket,
                  const std::function<void(std::uint64_t, const event_view&)>& f)
  const {
  return scan_blocks(t_, st_->blocks_, bucket_key(bucket),
                     [&](std::uint64_t first, const wire::batch_view& b) {
                       auto evs = b.events();
                       for (std::size_t i = 0; i < evs.size(); ++i)
                         f(first + i, evs[i]);
                     });
}

result<std::vector<std::pair<std::string, std::uint64_t>>>
snapshot::summaries(std::int64_t bucket, std::string_view prefix) const {
  std::vector<std::pair<std::string, std::uint64_t>> out;
  auto rc = for_each_prefixed(
    t_, st_->summaries_, bucket_key(bucket) + std::string{prefix},
    [&](const MDB_val& key, const MDB_val& val) {
      out.emplace_back(std::string{as_view(key).substr(8)},
                       val.mv_size == 8 ? get_be64(val.mv_data) : 0);
      return true;
    });
  if (rc != 0)
    return mdb_error("store: cannot read summaries", rc);
  return out;
}

result<std::vector<store::tuple_count>>
snapshot::tuples(std::int64_t bucket) const {
  std::vector<store::tuple_count> out;
  if (st_->tuples_ == 0)
    return out;
  auto rc = for_each_prefixed(
    t_, st_->tuples_, bucket_key(bucket),
    [&](const MDB_val& key, const MDB_val& val) {
      auto rest = as_view(key).substr(8);
      store::tuple_count tc;
      std::string* parts[] = {&tc.index, &tc.host, &tc.source,
                              &tc.sourcetype};
      std::size_t i = 0;
      for (auto* part : parts) {
        auto j = std::min(rest.find('\0', i), rest.size());
        part->assign(rest.substr(std::min(i, rest.size()), j - std::min(i, rest.size())));
        i = j + 1;
      }
      tc.count = val.mv_size == 8 ? get_be64(val.mv_data) : 0;
      out.push_back(std::move(tc));
      return true;
    });
  if (rc != 0)
    return mdb_error("store: cannot read tuple counts", rc);
  return out;
}

error snapshot::events(
  std::int64_t bucket, std::span<const std::uint64_t> ids,
  const std::function<bool(std::uint64_t, const event_view&)>& f) const {
  if (ids.empty())
    return {};
  MDB_cursor* cur = nullptr;
  if (auto rc = mdb_cursor_open(t_, st_->blocks_, &cur); rc != 0)
    return mdb_error("store: cannot read blocks", rc);
  auto bkey = bucket_key(bucket);
  auto lim = block_limits();
  std::string kbuf, buf;
  error err;
  std::size_t i = 0;
  while (i < ids.size()) {
    // The block holding ids[i] is the last one whose first id <= ids[i].
    kbuf = bkey;
    put_be64(kbuf, ids[i]);
    auto key = as_val(kbuf);
    MDB_val val;
    auto rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
    bool exact = rc == 0 && as_view(key) == kbuf;
    if (!exact) {
      rc = rc == MDB_NOTFOUND ? mdb_cursor_get(cur, &key, &val, MDB_LAST)
                              : mdb_cursor_get(cur, &key, &val, MDB_PREV);
      if (rc == 0 && as_view(key) > std::string_view{kbuf})
        rc = MDB_NOTFOUND; // only larger keys: no block holds the id
    }
    if (rc != 0 || key.mv_size != 16 || !as_view(key).starts_with(bkey)) {
      ++i; // not stored (ids from a stale index, or another bucket)
      if (rc != 0 && rc != MDB_NOTFOUND) {
        err = mdb_error("store: cannot read blocks", rc);
        break;
      }
      continue;
    }
    auto first = get_be64(static_cast<const char*>(key.mv_data) + 8);
    auto frame = unpack_block(as_view(val), buf);
    if (!frame) {
      err = damaged_block(first, frame.error().message);
      break;
    }
    // Only the wanted events are decoded; the others are stepped over.
    std::size_t k = i;
    std::function<bool(std::size_t)> keep = [&](std::size_t j) {
      while (k < ids.size() && ids[k] < first + j)
        ++k;
      return k < ids.size() && ids[k] == first + j;
    };
    auto b = wire::decode_some(
      std::as_bytes(std::span{frame->data(), frame->size()}), keep, lim);
    if (!b) {
      err = damaged_block(first, b.error().render());
      break;
    }
    auto evs = b->events();
    bool go_on = true;
    if (ids[i] >= first + evs.size())
      ++i; // in a gap between blocks: not stored
    for (; i < ids.size() && ids[i] < first + evs.size(); ++i)
      if (ids[i] >= first && !(go_on = f(ids[i], evs[ids[i] - first]))) {
        i = ids.size();
        break;
      }
    if (!go_on)
      break;
  }
  mdb_cursor_close(cur);
  return err;
}

result<std::optional<std::uint64_t>>
snapshot::last_sequence(std::string_view source_id) const {
  auto known = read_source_state(t_, st_->sources_, source_id);
  if (!known)
    return known.error();
  if (!*known)
    return std::optional<std::uint64_t>{};
  return std::optional<std::uint64_t>{(*known)->highest()};
}

result<source_sequences>
snapshot::committed(std::string_view source_id) const {
  auto known = read_source_state(t_, st_->sources_, source_id);
  if (!known)
    return known.error();
  return known->value_or(source_sequences{});
}

result<std::size_t> store::drop_before(time_ns cutoff) {
  auto all = buckets();
  if (!all)
    return all.error();
  txn t{env_->handle(), true};
  if (t.status() != 0)
    return mdb_error("store: cannot begin write transaction", t.status());
  std::size_t dropped = 0;
  for (const auto& b : *all) {
    if (b.end > cutoff)
      continue;
    auto prefix = bucket_key(b.id);
    for (auto dbi : {blocks_, postings_, summaries_, rollups_, tuples_,
                     catalog_})
      if (auto rc = delete_prefix(t.get(), dbi, prefix); rc != 0)
        return mdb_error("store: cannot drop a bucket", rc);
    if (has_runs_)
      if (auto rc = delete_prefix(t.get(), runs_, prefix); rc != 0)
        return mdb_error("store: cannot drop a bucket", rc);
    auto mk = std::string{compacted_key} + prefix;
    auto mkey = as_val(mk);
    if (auto rc = mdb_del(t.get(), meta_, &mkey, nullptr);
        rc != 0 && rc != MDB_NOTFOUND)
      return mdb_error("store: cannot drop a bucket", rc);
    ++dropped;
  }
  if (auto rc = t.commit(); rc != 0)
    return mdb_error("store: commit failed", rc);
  return dropped;
}

result<compact_result> store::compact(std::int64_t bucket) {
  compact_result res;
  auto bkey = bucket_key(bucket);
  // 1. The bucket as of one snapshot: its catalog entry and every event.
  std::uint64_t events = 0, bytes = 0;
  std::vector<wire::batch_view> batches;
  std::deque<std::string> frames; // stable: the batches view them
  {
    auto snap = read();
    if (!snap)
      return snap.error();
    auto key = as_val(bkey);
    MDB_val val;
    auto rc = mdb_get(snap->t_, catalog_, &key, &val);
    if (rc == MDB_NOTFOUND || (rc == 0 && val.mv_size != 32))
      return res; // gone (retention) or not a bucket
    if (rc != 0)
      return mdb_error("store: cannot read the catalog", rc);
    events = get_be64(static_cast<const char*>(val.mv_data) + 16);
    bytes = get_be64(static_cast<const char*>(val.mv_data) + 24);
    error err;
    rc = for_each_prefixed(
      snap->t_, blocks_, bkey, [&](const MDB_val& k, const MDB_val& v) {
        if (k.mv_size != 16)
          return true;
        ++res.blocks_before;
        res.bytes_before += v.mv_size;
        auto first = get_be64(static_cast<const char*>(k.mv_data) + 8);
        std::string buf;
        auto frame = unpack_block(as_view(v), buf);
        if (!frame) {
          err = damaged_block(first, frame.error().message);
          return false;
        }
        // The frame must outlive the batch: own a copy unless it was
        // decompressed into `buf` (which is then moved in).
        auto owned = frame->data() == buf.data() ? std::move(buf)
                                                 : std::string{*frame};
        frames.push_back(std::move(owned));
        auto b = decode_block(frames.back(), first);
        if (!b) {
          err = b.error();
          return false;
        }
        batches.push_back(std::move(*b));
        return true;
      });
    if (err)
      return err;
    if (rc != 0)
      return mdb_error("store: cannot read blocks", rc);
    rc = for_each_prefixed(snap->t_, postings_, bkey,
                           [&](const MDB_val&, const MDB_val&) {
                             ++res.postings_before;
                             return true;
                           });
    if (rc != 0)
      return mdb_error("store: cannot read postings", rc);
    // A run's entries count as the keys they stand for.
    bool damaged = false;
    if (has_runs_)
      rc = for_each_prefixed(
        snap->t_, runs_, bkey, [&](const MDB_val& key, const MDB_val& val) {
          if (key.mv_size < 16)
            return true;
          auto seg = static_cast<std::uint32_t>(
            get_be64(static_cast<const char*>(key.mv_data) + 8) >> 32);
          damaged = !for_each_run_entry(
            as_view(val), segment_base(seg),
            [&](std::string_view, const unsigned char*, const unsigned char*,
                std::uint64_t) {
              ++res.postings_before;
              return true;
            });
          return !damaged;
        });
    if (damaged)
      return error{ec::storage_error,
                   fmt::format("store: a run of bucket {} is damaged",
                               bucket)};
    if (rc != 0)
      return mdb_error("store: cannot read runs", rc);
  }
  // 2. The new order: events of one series side by side, in time order.
  // A process's samples (`pid`) form a series of their own within a VM's.
  struct entry {
    std::string_view vm;
    std::int64_t pid;
    const event_view* e;
  };
  std::vector<entry> order;
  order.reserve(events);
  for (const auto& b : batches)
    for (const auto& e : b.events()) {
      std::string_view vm = e.host;
      if (auto v = e.find("vm"))
        if (auto s = std::get_if<std::string_view>(v); s && !s->empty())
          vm = *s;
      std::int64_t pid = -1;
      if (auto v = e.find("pid"))
        if (auto n = std::get_if<std::int64_t>(v))
          pid = *n;
      order.push_back({vm, pid, &e});
    }
  if (order.size() != events)
    return error{ec::storage_error,
                 fmt::format("store: bucket {} holds {} events in its blocks "
                             "but {} in the catalog",
                             bucket, order.size(), events)};
  std::stable_sort(order.begin(), order.end(),
                   [](const entry& a, const entry& b) {
                     return std::tie(a.e->index, a.e->sourcetype, a.vm,
                                     a.e->host, a.e->source, a.pid, a.e->time)
                            < std::tie(b.e->index, b.e->sourcetype, b.vm,
                                       b.e->host, b.e->source, b.pid,
                                       b.e->time);
                   });
  std::vector<const event_view*> evs;
  evs.reserve(order.size());
  for (const auto& o : order)
    evs.push_back(o.e);
  // 3. Reserve the new ids: a short write transaction of its own.
  std::uint64_t next_id = 0;
  {
    txn t{env_->handle(), true};
    if (t.status() != 0)
      return mdb_error("store: cannot begin write transaction", t.status());
    auto rc = get_meta_u64(t.get(), meta_, next_id_key, next_id);
    if (rc != 0)
      return mdb_error("store: cannot read the next event id", rc);
    if (rc = put_meta_u64(t.get(), meta_, next_id_key, next_id + events);
        rc != 0)
      return mdb_error("store: cannot record the next event id", rc);
    if (rc = t.commit(); rc != 0)
      return mdb_error("store: commit failed", rc);
  }
  // 4. Blocks and postings of the new order, still outside the write lock.
  std::vector<std::pair<std::string, std::string>> blocks, postings;
  term_map terms;
  tuple_map tuples; // unchanged by a compaction: not written
  indexer_pass pass{terms, tuples};
  // Sorted, a block holds one series: log lines make far larger blocks than
  // metric samples, and a search that wants one line decodes its whole
  // block. Blocks of compacted buckets stop at about 16 KiB as well.
  auto cut = cut_blocks(bkey, evs, opts_.block_events, compacted_block_bytes,
                        next_id);
  pack_blocks(cut, [&] {
    for (const auto& b : cut)
      for (std::size_t j = 0; j < b.events.size(); ++j)
        pass.add(b.first + j, *b.events[j], true);
  });
  for (auto& b : cut) {
    res.bytes_after += b.value.size();
    blocks.emplace_back(std::move(b.key), std::move(b.value));
  }
  cut_postings(bkey, sorted_terms(terms),
               [&](std::string_view k, std::string_view v) {
                 postings.emplace_back(k, v);
                 return 0;
               });
  // 5. The swap, unless the bucket took events since step 1.
  txn t{env_->handle(), true};
  if (t.status() != 0)
    return mdb_error("store: cannot begin write transaction", t.status());
  auto w = t.get();
  {
    auto key = as_val(bkey);
    MDB_val val;
    auto rc = mdb_get(w, catalog_, &key, &val);
    if (rc == MDB_NOTFOUND
        || (rc == 0
            && (val.mv_size != 32
                || get_be64(static_cast<const char*>(val.mv_data) + 16)
                     != events)))
      return res; // changed meanwhile: try again later
    if (rc != 0)
      return mdb_error("store: cannot read the catalog", rc);
  }
  for (auto dbi : {blocks_, postings_})
    if (auto rc = delete_prefix(w, dbi, bkey); rc != 0)
      return mdb_error("store: cannot compact a bucket", rc);
  if (has_runs_)
    if (auto rc = delete_prefix(w, runs_, bkey); rc != 0)
      return mdb_error("store: cannot compact a bucket", rc);
  auto put_all = [&](unsigned dbi,
                     const std::vector<std::pair<std::string, std::string>>& kvs)
    -> int {
    for (const auto& [k, v] : kvs) {
      auto key = as_val(k);
      auto val = as_val(v);
      if (auto rc = mdb_put(w, dbi, &key, &val, 0); rc != 0)
        return rc;
    }
    return 0;
  };
  if (auto rc = put_all(blocks_, blocks); rc != 0)
    return mdb_error("store: cannot write a block", rc);
  if (auto rc = put_all(postings_, postings); rc != 0)
    return mdb_error("store: cannot write postings", rc);
  {
    // The catalog's byte count follows the new blocks.
    auto key = as_val(bkey);
    MDB_val val;
    if (auto rc = mdb_get(w, catalog_, &key, &val); rc != 0)
      return mdb_error("store: cannot read the catalog", rc);
    std::string v{static_cast<const char*>(val.mv_data), 24};
    put_be64(v, bytes - res.bytes_before + res.bytes_after);
    auto nv = as_val(v);
    if (auto rc = mdb_put(w, catalog_, &key, &nv, 0); rc != 0)
      return mdb_error("store: cannot update the catalog", rc);
    if (auto rc = put_meta_u64(w, meta_, std::string{compacted_key} + bkey,
                               events);
        rc != 0)
      return mdb_error("store: cannot record a compaction", rc);
  }
  if (auto rc = t.commit(); rc != 0)
    return mdb_error("store: commit failed", rc);
  res.done = true;
  res.events = events;
  res.blocks_after = blocks.size();
  res.postings_after = postings.size();
  return res;
}

error store::rebuild_summaries() {
  auto all = buckets();
  if (!all)
    return all.error();
  txn t{env_->handle(), true};
  if (t.status() != 0)
    return mdb_error("store: cannot begin write transaction", t.status());
  auto w = t.get();
  for (auto dbi : {summaries_, rollups_, tuples_})
    if (auto rc = mdb_drop(w, dbi, 0); rc != 0)
      return mdb_error("store: cannot empty the summaries", rc);
  for (const auto& b : *all) {
    auto bkey = bucket_key(b.id);
    term_map terms;
    tuple_map tuples;
    // The blocks' buffers change block by block: keys intern their names.
    std::set<std::string, std::less<>> pool;
    auto intern = [&](std::string_view x) -> std::string_view {
      return *pool.emplace(x).first;
    };
    rollup_map rollups;
    auto err = scan_blocks(w, blocks_, bkey,
                           [&](std::uint64_t first, const wire::batch_view& bv) {
                             // A pass per block: its cache views the block.
                             indexer_pass pass{terms, tuples};
                             auto evs = bv.events();
                             for (std::size_t i = 0; i < evs.size(); ++i) {
                               pass.add(first + i, evs[i], false);
                               fold_metrics(w, rollups_, bkey, rollups,
                                            evs[i], opts_.rollup_interval,
                                            intern);
                             }
                           });
    if (err)
      return err;
    // The tables were emptied above: adding to them writes the counts.
    if (auto err = add_counts(w, {summaries_, rollups_, tuples_}, bkey,
                              sorted_terms(terms), rollups, tuples))
      return err;
  }
  if (auto rc = t.commit(); rc != 0)
    return mdb_error("store: commit failed", rc);
  return {};
}

} // namespace parallax::storage
