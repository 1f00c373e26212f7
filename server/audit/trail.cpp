#include "server/audit/trail.hpp"

#include <fcntl.h>
#include <linux/falloc.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "resources/json.hpp"
#include "server/audit/record.hpp"
#include "server/log.hpp"

namespace kasama::audit {

namespace {

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

constexpr std::size_t kSealBatch = 2000;

using resources::printable_ascii;

// Events in id order, fetched in batches.
class EventCursor {
 public:
  EventCursor(storage::Connection& c, storage::AuditStore& store, std::uint64_t after)
      : c_(c), store_(store), after_(after) {}
  const storage::AuditRow* peek() {
    if (pos_ == rows_.size()) {
      if (done_) return nullptr;
      rows_ = store_.range(c_, after_, UINT64_MAX >> 1, 5000);
      pos_ = 0;
      if (rows_.size() < 5000) done_ = true;
      if (rows_.empty()) return nullptr;
      after_ = rows_.back().id;
    }
    return &rows_[pos_];
  }
  void next() { ++pos_; }

 private:
  storage::Connection& c_;
  storage::AuditStore& store_;
  std::uint64_t after_;
  std::vector<storage::AuditRow> rows_;
  std::size_t pos_ = 0;
  bool done_ = false;
};

}  // namespace

VerifyResult verify_chain(storage::Connection& c, unsigned tenant) {
  // One consistent snapshot of events and seals: seals added while the walk runs would list
  // events its earlier pages did not see.
  c.execute_text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ");
  c.execute_text("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY");
  struct End {
    storage::Connection& c;
    ~End() {
      try {
        c.execute_text("COMMIT");
      } catch (...) {
      }
    }
  } end{c};
  storage::AuditStore store(tenant);
  VerifyResult v;
  std::uint64_t prev_last = 0;
  std::string prev_hash = kGenesis;
  bool first = true;
  EventCursor events(c, store, 0);
  const auto broken = [&](std::uint64_t id, std::string why) {
    v.ok = false;
    v.first_broken = id;
    v.problem = std::move(why);
    return v;
  };
  std::uint64_t after = 0;
  for (;;) {
    auto seals = store.seals(c, after, 200);
    if (seals.empty()) break;
    after = seals.back().last_id;
    for (const auto& s : seals) {
      if (first) {
        first = false;
        // Events up to a purge are gone but for the last purged block's seal, which
        // anchors the chain that follows; without a purge the first block's events are there.
        const storage::AuditRow* e = events.peek();
        if (!e || e->id > s.last_id) {
          v.anchor_id = s.last_id;
          prev_last = s.last_id;
          prev_hash = s.hash;
          continue;
        }
      }
      if (s.prev_id != prev_last) {
        const storage::AuditRow* e = events.peek();
        const std::uint64_t at = e && e->id < s.first_id ? e->id : s.first_id;
        return broken(at, "the seal before event " + std::to_string(at) + " is missing or was changed (the block of " +
                              std::to_string(s.first_id) + "…" + std::to_string(s.last_id) + " names " +
                              std::to_string(s.prev_id) + " as its predecessor, not " + std::to_string(prev_last) +
                              ")");
      }
      const auto changed_seal = [&] {
        return broken(s.first_id, "the seal of events " + std::to_string(s.first_id) + "…" + std::to_string(s.last_id) +
                                      " was changed (its hash or its list of events does not hold)");
      };
      if (block_hash(prev_hash, s) != s.hash || s.digests.size() != s.events * kDigestEntry || s.events == 0) {
        return changed_seal();
      }
      const std::uint64_t block_prev = prev_last;
      for (std::size_t k = 0; k < s.events; ++k) {
        const std::string_view entry = std::string_view(s.digests).substr(k * kDigestEntry, kDigestEntry);
        std::uint64_t id = 0;
        for (char ch : entry.substr(0, 16)) {
          const int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
          if (d < 0) return changed_seal();
          id = id * 16 + static_cast<std::uint64_t>(d);
        }
        // Listed ids rise strictly from the previous block's last, from first_id to last_id.
        if (id <= prev_last || (k == 0 && id != s.first_id) || (k + 1 == s.events && id != s.last_id) ||
            id <= block_prev) {
          return changed_seal();
        }
        // Events between the previous one sealed and this one are outside the chain.
        while (const storage::AuditRow* e = events.peek()) {
          if (e->id >= id) break;
          if (e->id > prev_last) {
            return broken(e->id, "event " + std::to_string(e->id) +
                                     " is not in the chain (inserted outside the server, or its seal was removed)");
          }
          events.next();
        }
        const storage::AuditRow* e = events.peek();
        if (!e || e->id != id) return broken(id, "event " + std::to_string(id) + " was deleted");
        if (digest_entry(*e) != entry) {
          return broken(id, "event " + std::to_string(id) + " was altered (its digest does not match its seal)");
        }
        events.next();
        ++v.checked;
        prev_last = id;
      }
      prev_last = s.last_id;
      prev_hash = s.hash;
    }
  }
  v.head_id = prev_last;
  v.head_hash = prev_hash;
  while (const storage::AuditRow* e = events.peek()) {
    if (e->id > prev_last) ++v.unsealed;
    events.next();
  }
  return v;
}

AuditTrail::Slot& AuditTrail::Slot::operator=(Slot&& o) noexcept {
  if (this != &o) {
    release();
    trail_ = o.trail_;
    token_ = o.token_;
    o.trail_ = nullptr;
  }
  return *this;
}

void AuditTrail::Slot::release() {
  if (!trail_) return;
  {
    std::lock_guard lock(trail_->seal_mu_);
    trail_->slots_.erase(token_);
  }
  trail_ = nullptr;
}

AuditTrail::AuditTrail(storage::DbTarget target, unsigned tenant, bool enabled, std::string journal_dir, bool sync)
    : target_(std::move(target)), store_(tenant), enabled_(enabled), dir_(std::move(journal_dir)), sync_(sync) {}

AuditTrail::~AuditTrail() {
  try {
    stop();
  } catch (...) {
  }
}

namespace {

std::string journal_path(const std::string& dir, std::uint64_t file_no) {
  char name[40];
  std::snprintf(name, sizeof name, "/journal-%012llu.log", static_cast<unsigned long long>(file_no));
  return dir + name;
}

// The journal files in dir, by number.
std::vector<std::uint64_t> journal_files(const std::string& dir) {
  std::vector<std::uint64_t> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n.size() == 24 && n.rfind("journal-", 0) == 0 && n.substr(20) == ".log") {
      out.push_back(std::stoull(n.substr(8, 12)));
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::uint64_t file_size(const std::string& path) {
  std::error_code ec;
  const auto n = std::filesystem::file_size(path, ec);
  return ec ? 0 : static_cast<std::uint64_t>(n);
}

}  // namespace

void AuditTrail::open_journal(storage::Connection& c) {
  std::filesystem::create_directories(dir_);
  // Every run writes a file of its own, numbered past every file on disk and every file a
  // load ever reached (a cleanly stopped run removes its file, and the number must not come
  // back: the loaded positions of the old file would apply to the new one).
  const auto files = journal_files(dir_);
  const std::uint64_t on_disk = files.empty() ? 0 : files.back();
  file_no_ = std::max(on_disk, store_.loaded_position(c).first) + 1;
  fd_ = ::open(journal_path(dir_, file_no_).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd_ < 0) throw std::runtime_error("cannot create the audit journal in " + dir_ + ": " + std::strerror(errno));
  // The new file's name must survive a power loss too.
  const int d = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d >= 0) {
    ::fsync(d);
    ::close(d);
  }
  written_ = 0;
  reserved_ = 0;
  synced_ = 0;
  loaded_ = 0;
  failed_ = false;
}

void AuditTrail::start() {
  if (!enabled_ || started_) return;
  {
    storage::Connection c(target_);
    // The loader's digests may stand for ids only when a multi-row INSERT gets consecutive ids.
    const auto mode = c.execute_text("SELECT @@innodb_autoinc_lock_mode, @@auto_increment_increment");
    consecutive_ids_ = !mode.empty() && mode.integer(0, 0) <= 1 && mode.integer(0, 1) == 1;
    open_journal(c);
  }
  // What an earlier run appended but did not load (a crash) goes in before anything new.
  load_everything_before(file_no_);
  stopping_ = false;
  started_ = true;
  if (sync_) syncer_ = std::thread([this] { sync_loop(); });
  loader_ = std::thread([this] { load_loop(); });
  sealer_ = std::thread([this] { seal_loop(); });
}

void AuditTrail::stop() {
  if (!started_) return;
  {
    std::lock_guard lock(write_mu_);  // no new append; the HTTP server has drained its requests
    stopping_ = true;
  }
  {
    std::lock_guard lock(sync_mu_);
    sync_cv_.notify_all();
  }
  if (syncer_.joinable()) syncer_.join();
  if (fd_ >= 0 && ::fdatasync(fd_) != 0) fail(std::string("fdatasync at stop: ") + std::strerror(errno));
  if (!failed_) {
    synced_.store(written_.load());
    synced_.notify_all();
  }
  {
    std::lock_guard lock(load_mu_);
    load_cv_.notify_all();
  }
  if (loader_.joinable()) loader_.join();  // loads everything appended before it returns
  {
    std::lock_guard lock(seal_wait_mu_);
    seal_last_ = true;
  }
  seal_cv_.notify_all();
  if (sealer_.joinable()) sealer_.join();
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  // Fully loaded: the file is no longer needed (its number stays taken in audit_loaded).
  std::lock_guard lock(load_mu_);
  if (loaded_ == written_.load() && written_.load() == reserved_) std::filesystem::remove(journal_path(dir_, file_no_));
  started_ = false;
}

AuditTrail::Slot AuditTrail::reserve() {
  std::lock_guard lock(seal_mu_);
  const std::uint64_t token = next_token_++;
  slots_[token] = observed_max_;
  return Slot(this, token);
}

std::uint64_t AuditTrail::insert(Slot& slot, storage::Connection& c, const storage::AuditRow& row) {
  storage::AuditRow r = row;
  r.tenant = store_.tenant();
  const std::uint64_t id = store_.insert(c, r);
  if (slot && id > 0) {
    std::lock_guard lock(seal_mu_);
    auto it = slots_.find(slot.token_);
    if (it != slots_.end()) it->second = id - 1;
  }
  return id;
}

void AuditTrail::fail(const std::string& why) {
  if (!failed_.exchange(true))
    server::log_error("audit: the journal failed, requests are refused until a restart: " + why);
  synced_.notify_all();
}

void AuditTrail::append(const storage::AuditRow& row) {
  if (!enabled_) return;
  if (failed_) throw std::runtime_error("the audit journal failed earlier (see the server log)");
  storage::AuditRow r = row;
  r.id = 0;
  r.tenant = store_.tenant();
  if (!r.recorded) r.recorded = now_ms();
  const std::string payload = canonical(r);
  if (payload.size() > kMaxEntry) throw std::runtime_error("audit record too large");
  char head[10];
  std::snprintf(head, sizeof head, "%08zx ", payload.size());
  std::string entry;
  entry.reserve(payload.size() + 10);
  entry.append(head, 9).append(payload).push_back('\n');
  // The offset is reserved under the lock, the pwrite runs outside it (many at once); the
  // loader may read up to written_, the end of what is written without a gap.
  std::uint64_t at = 0;
  {
    std::lock_guard lock(write_mu_);
    if (!started_ || stopping_ || fd_ < 0) throw std::runtime_error("the audit trail is not running");
    at = reserved_;
    reserved_ += entry.size();
    in_flight_.push_back(at);
  }
  std::size_t done = 0;
  int failure = 0;
  while (done < entry.size()) {
    const ssize_t n = ::pwrite(fd_, entry.data() + done, entry.size() - done, static_cast<off_t>(at + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      failure = n < 0 ? errno : EIO;
      break;
    }
    done += static_cast<std::size_t>(n);
  }
  {
    std::lock_guard lock(write_mu_);
    in_flight_.erase(std::find(in_flight_.begin(), in_flight_.end(), at));
    written_.store(in_flight_.empty() ? reserved_ : *std::min_element(in_flight_.begin(), in_flight_.end()),
                   std::memory_order_release);
  }
  if (failure) {
    // Half an entry may be on disk: nothing after it is trusted to be whole (the loader
    // resynchronizes at the next valid entry after a restart).
    fail(std::string("write: ") + std::strerror(failure));
    throw std::runtime_error(std::string("audit journal write failed: ") + std::strerror(failure));
  }
  const std::uint64_t end = at + entry.size();
  if (!sync_) return;
  // Group commit: one fdatasync covers every entry written before it started.
  std::uint64_t seen = synced_.load(std::memory_order_acquire);
  if (seen >= end) return;
  if (!sync_wanted_.exchange(true)) {
    std::lock_guard lock(sync_mu_);
    sync_cv_.notify_one();
  }
  while ((seen = synced_.load(std::memory_order_acquire)) < end) synced_.wait(seen, std::memory_order_acquire);
  if (failed_) throw std::runtime_error("the audit journal could not be synced (see the server log)");
}

void AuditTrail::sync_loop() {
  for (;;) {
    {
      std::unique_lock lock(sync_mu_);
      sync_cv_.wait(lock, [&] { return sync_wanted_.load() || stopping_.load(); });
    }
    sync_wanted_ = false;
    const std::uint64_t target = written_.load(std::memory_order_acquire);
    if (target > synced_.load()) {
      if (::fdatasync(fd_) != 0) {
        // Not durable: nobody waiting may be answered (and a later fdatasync cannot be trusted
        // to have written what this one failed to).
        fail(std::string("fdatasync: ") + std::strerror(errno));
        return;
      }
      synced_.store(target, std::memory_order_release);
      synced_.notify_all();
    }
    if (stopping_ && !sync_wanted_ && synced_.load() >= written_.load()) return;
  }
}

void AuditTrail::flush() {
  if (!enabled_ || !started_) return;
  const std::uint64_t target = written_.load(std::memory_order_acquire);
  std::unique_lock lock(load_mu_);
  load_cv_.notify_all();  // wake the loader now rather than at its next tick
  if (!loaded_cv_.wait_for(lock, std::chrono::seconds(30), [&] { return loaded_ >= target || !load_error_.empty(); }) ||
      loaded_ < target) {
    throw std::runtime_error("the audit journal is not being loaded: " +
                             (load_error_.empty() ? std::string("30 s passed") : load_error_));
  }
}

void AuditTrail::load_rows(storage::Connection& c, std::vector<storage::AuditRow>& rows, std::uint64_t file_no,
                           std::uint64_t end_offset) {
  Slot slot = reserve();
  std::vector<const storage::AuditRow*> ptrs;
  ptrs.reserve(rows.size());
  for (const auto& r : rows) ptrs.push_back(&r);
  std::uint64_t first = 0;
  bool one_by_one = false;
  c.begin();
  try {
    first = store_.insert_batch(c, ptrs);
  } catch (const storage::DbError& e) {
    c.rollback();
    if (e.connection_lost()) throw;
    one_by_one = true;
  }
  if (one_by_one) {
    // A record MariaDB refuses must not hold up the others: each alone, and one it still
    // refuses is kept as a placeholder naming the request and the reason.
    c.begin();
    for (auto& r : rows) {
      try {
        c.execute_text("SAVEPOINT one");
        store_.insert_batch(c, {&r});
      } catch (const storage::DbError& e) {
        // Only data errors make a placeholder (too long, bad value, out of range, NULL):
        // anything else (a lock wait, a lost connection) retries the whole batch.
        const unsigned code = e.code();
        if (code != 1406 && code != 1366 && code != 1264 && code != 1292 && code != 1048 && code != 1265) throw;
        c.execute_text("ROLLBACK TO SAVEPOINT one");
        storage::AuditRow placeholder;
        placeholder.tenant = store_.tenant();
        placeholder.recorded = r.recorded;
        placeholder.request_id = printable_ascii(r.request_id, 64);
        placeholder.interaction = "unknown";
        placeholder.action = "E";
        placeholder.method = "?";
        placeholder.path = "?";
        placeholder.status = r.status >= 100 && r.status <= 999 ? r.status : 0;
        placeholder.outcome = r.outcome == 0 || r.outcome == 4 || r.outcome == 8 ? r.outcome : 8;
        placeholder.detail =
            printable_ascii(std::string("the record could not be stored as written: ") + e.what(), 900);
        r = placeholder;
        try {
          store_.insert_batch(c, {&r});
        } catch (const storage::DbError& again) {
          if (again.connection_lost()) throw;
          c.execute_text("ROLLBACK TO SAVEPOINT one");
          server::log_error(std::string("audit: a journal entry could not be stored even as a placeholder: ") +
                            again.what());
          continue;
        }
        server::log_error("audit: " + placeholder.detail);
      }
    }
  }
  try {
    store_.insert_loaded_position(c, file_no, end_offset, now_ms());
    c.commit();
  } catch (...) {
    c.rollback();
    throw;
  }
  if (one_by_one || !consecutive_ids_ || first == 0) return;
  std::lock_guard lock(handed_mu_);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    rows[i].id = first + i;
    handed_.emplace(rows[i].id, digest_entry(rows[i]));
  }
}

std::uint64_t AuditTrail::load_some(storage::Connection& c, std::uint64_t file_no, std::uint64_t offset,
                                    std::uint64_t limit, bool finished) {
  const std::string path = journal_path(dir_, file_no);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return finished ? limit : offset;
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  std::string buf;
  constexpr std::uint64_t kChunk = 4 << 20;
  std::uint64_t pos = offset;
  std::uint64_t skipped = 0;
  while (pos < limit) {
    buf.resize(static_cast<std::size_t>(std::min(kChunk, limit - pos)));
    const ssize_t n = ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(pos));
    if (n <= 0) break;
    buf.resize(static_cast<std::size_t>(n));
    std::vector<storage::AuditRow> rows;
    std::size_t at = 0;
    bool need_more = false;
    while (at < buf.size()) {
      if (buf[at] == '\0') {
        // A hole: an append cut off by a crash after taking its place.
        ++at;
        ++skipped;
        continue;
      }
      if (at + 9 > buf.size()) {
        need_more = true;
        break;
      }
      std::size_t len = 0;
      bool ok = buf[at + 8] == ' ';
      for (std::size_t i = 0; ok && i < 8; ++i) {
        const char ch = buf[at + i];
        const int v = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
        ok = v >= 0;
        len = len * 16 + static_cast<std::size_t>(v < 0 ? 0 : v);
      }
      ok = ok && len <= kMaxEntry;
      if (ok && at + 9 + len + 1 > buf.size()) {
        const bool at_end = pos + buf.size() >= limit;
        if (!(finished && at_end)) {
          need_more = true;  // the rest is in the next chunk (or not written yet)
          break;
        }
        ok = false;  // the file ends inside it: no entry; look for the next one
      }
      std::optional<storage::AuditRow> row;
      if (ok && buf[at + 9 + len] == '\n') row = decode_canonical(std::string_view(buf).substr(at + 9, len));
      if (!row) {
        // Not an entry (torn by a crash, or changed): resynchronize at the next one.
        ++at;
        ++skipped;
        continue;
      }
      rows.push_back(std::move(*row));
      at += 9 + len + 1;
      if (rows.size() == 1000) {
        // Transactions of at most 1000 events, each with the position it reaches.
        load_rows(c, rows, file_no, pos + at);
        rows.clear();
        if (!finished) note_loaded(pos + at);
      }
    }
    if (!rows.empty()) load_rows(c, rows, file_no, pos + at);
    pos += at;
    if (!finished) note_loaded(pos);
    if (need_more && at == 0) break;  // one incomplete entry: wait for the rest
    if (need_more && buf.size() < kChunk) break;
  }
  if (finished && pos < limit) {
    skipped += limit - pos;  // an incomplete entry at the very end
    pos = limit;
  }
  if (skipped) {
    server::log_error("audit: " + path + ": " + std::to_string(skipped) +
                      " bytes were no complete entry (a crash, or a change) and were skipped");
  }
  return pos;
}

void AuditTrail::note_loaded(std::uint64_t offset) {
  {
    std::lock_guard lock(load_mu_);
    loaded_ = std::max(loaded_, offset);
    load_error_.clear();
  }
  loaded_cv_.notify_all();
}

void AuditTrail::load_everything_before(std::uint64_t file_no) {
  storage::Connection c(target_);
  auto [at_file, at_offset] = store_.loaded_position(c);
  for (std::uint64_t f : journal_files(dir_)) {
    if (f >= file_no) break;
    const std::string path = journal_path(dir_, f);
    if (f < at_file) {
      std::filesystem::remove(path);  // loaded before; the removal was cut short
      continue;
    }
    const std::uint64_t from = f == at_file ? at_offset : 0;
    const std::uint64_t end = load_some(c, f, from, file_size(path), true);
    server::log_info("audit: loaded journal " + path + " from offset " + std::to_string(from) +
                     " (left by an earlier run)");
    c.begin();
    store_.insert_loaded_position(c, f, end, now_ms());
    c.commit();
    std::filesystem::remove(path);
  }
}

void AuditTrail::load_loop() {
  std::optional<storage::Connection> conn;
  std::uint64_t punched = 0;
  bool punch = true;
  for (;;) {
    const bool last = stopping_.load();
    try {
      if (!conn || !conn->healthy()) {
        conn.reset();
        conn.emplace(target_);
        // A commit may have succeeded although its answer was lost: resume where the
        // database says.
        auto [f, offset] = store_.loaded_position(*conn);
        if (f == file_no_) note_loaded(offset);
      }
      std::uint64_t from;
      {
        std::lock_guard lock(load_mu_);
        from = loaded_;
      }
      const std::uint64_t upto = written_.load(std::memory_order_acquire);
      if (upto > from) load_some(*conn, file_no_, from, upto, false);
      loaded_cv_.notify_all();
      // What is loaded need not take disk space any more: punch it out (the file's offsets
      // stay as they are).
      std::uint64_t loaded;
      {
        std::lock_guard lock(load_mu_);
        loaded = loaded_;
      }
      const std::uint64_t edge = loaded & ~std::uint64_t{(1 << 20) - 1};
      if (edge > punched && fd_ >= 0 && punch) {
        if (::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(punched),
                        static_cast<off_t>(edge - punched)) == 0) {
          punched = edge;
        } else {
          punch = false;
          server::log_error(std::string("audit: the file system cannot free loaded journal space (") +
                            std::strerror(errno) + "); the journal grows until a clean stop");
        }
      }
    } catch (const std::exception& e) {
      server::log_error(std::string("audit: loading the journal failed (retried): ") + e.what());
      conn.reset();
      {
        std::lock_guard lock(load_mu_);
        load_error_ = e.what();
      }
      loaded_cv_.notify_all();
      if (last) return;
    }
    if (last) return;
    std::unique_lock lock(load_mu_);
    load_cv_.wait_for(lock, std::chrono::milliseconds(20));
  }
}

std::uint64_t AuditTrail::seal_floor() {
  std::lock_guard lock(seal_mu_);
  std::uint64_t floor = observed_max_;
  for (const auto& [token, bound] : slots_) floor = std::min(floor, bound);
  return floor;
}

void AuditTrail::seal_pass(storage::Connection& c) {
  std::lock_guard pass(pass_mu_);
  try {
    seal_pass_locked(c);
  } catch (...) {
    // A seal may have committed although its answer was lost: read the head again first.
    head_loaded_ = false;
    throw;
  }
}

void AuditTrail::seal_pass_locked(storage::Connection& c) {
  if (!head_loaded_) {
    auto last = store_.last_seal(c);
    head_id_ = last ? last->last_id : 0;
    head_hash_ = last ? last->hash : kGenesis;
    sealed_upto_ = head_id_;
    head_loaded_ = true;
  }
  const std::uint64_t floor = seal_floor();
  const std::uint64_t seen = store_.max_id(c);
  while (sealed_upto_ < floor) {
    const auto ids = store_.ids(c, sealed_upto_, floor, kSealBatch);
    if (ids.empty()) {
      sealed_upto_ = floor;  // the ids between were used by transactions that rolled back
      break;
    }
    // One block: every event's id and digest, chained to the previous block. The loader's
    // events come digested; the others (writes' records) are read.
    std::vector<std::string> entries(ids.size());
    std::vector<std::uint64_t> missing;
    {
      std::lock_guard lock(handed_mu_);
      for (std::size_t i = 0; i < ids.size(); ++i) {
        auto it = handed_.find(ids[i]);
        if (it == handed_.end()) {
          missing.push_back(ids[i]);
        } else {
          entries[i] = std::move(it->second);
        }
      }
      handed_.erase(handed_.begin(), handed_.upper_bound(ids.back()));
    }
    if (!missing.empty()) {
      std::map<std::uint64_t, std::string> read;
      for (const auto& r : store_.by_ids(c, missing)) read.emplace(r.id, digest_entry(r));
      for (std::size_t i = 0; i < ids.size(); ++i) {
        if (!entries[i].empty()) continue;
        auto it = read.find(ids[i]);
        if (it == read.end())
          throw std::runtime_error("audit event " + std::to_string(ids[i]) + " vanished while sealing");
        entries[i] = std::move(it->second);
      }
    }
    storage::SealRow seal;
    seal.digests.reserve(ids.size() * kDigestEntry);
    for (const auto& e : entries) seal.digests += e;
    seal.first_id = ids.front();
    seal.last_id = ids.back();
    seal.prev_id = head_id_;
    seal.events = ids.size();
    seal.hash = block_hash(head_hash_, seal);
    seal.sealed_at = now_ms();
    store_.insert_seal(c, seal);  // autocommit
    head_id_ = seal.last_id;
    head_hash_ = seal.hash;
    sealed_upto_ = ids.size() < kSealBatch ? floor : seal.last_id;
  }
  std::lock_guard lock(seal_mu_);
  observed_max_ = std::max(observed_max_, seen);
}

void AuditTrail::seal_now() {
  storage::Connection c(target_);
  // Two passes: the first learns the highest committed id, the second seals up to it.
  seal_pass(c);
  seal_pass(c);
}

void AuditTrail::seal_loop() {
  std::optional<storage::Connection> conn;
  for (;;) {
    bool last = false;
    {
      std::unique_lock lock(seal_wait_mu_);
      seal_cv_.wait_for(lock, std::chrono::milliseconds(250), [&] { return seal_last_; });
      last = seal_last_;
    }
    try {
      if (!conn || !conn->healthy()) {
        conn.reset();
        conn.emplace(target_);
      }
      seal_pass(*conn);
      if (last) seal_pass(*conn);  // the first learns the highest committed id, the second seals to it
    } catch (const std::exception& e) {
      server::log_error(std::string("audit: sealing failed (retried): ") + e.what());
      conn.reset();
    }
    if (last) return;
  }
}

}  // namespace kasama::audit
