#include "server/audit/trail.hpp"

#include <chrono>

#include "server/audit/record.hpp"
#include "server/log.hpp"

namespace kasama::audit {

namespace {

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

constexpr std::size_t kSealBatch = 2000;
constexpr std::size_t kAppendBatch = 2000;

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
  storage::AuditStore store(tenant);
  VerifyResult v;
  std::uint64_t prev_id = 0;
  std::string prev_hash = kGenesis;
  bool first = true;
  EventCursor events(c, store, 0);
  const auto broken = [&](std::uint64_t id, std::string why) {
    v.ok = false;
    v.first_broken = id;
    v.problem = std::move(why);
  };
  std::uint64_t after = 0;
  for (;;) {
    auto seals = store.seals(c, after, 5000);
    if (seals.empty()) break;
    after = seals.back().event_id;
    for (const auto& s : seals) {
      if (first) {
        first = false;
        // Events up to a purge are gone but for the last one's seal, which anchors
        // the chain that follows; without a purge the first seal's event is there.
        const storage::AuditRow* e = events.peek();
        if (!e || e->id > s.event_id) {
          v.anchor_id = s.event_id;
          prev_id = s.event_id;
          prev_hash = s.hash;
          continue;
        }
      }
      // Events between the previous seal and this one are outside the chain.
      while (const storage::AuditRow* e = events.peek()) {
        if (e->id >= s.event_id) break;
        if (e->id > prev_id) {
          broken(e->id, "event " + std::to_string(e->id) +
                            " is not in the chain (inserted outside the server, or its seal was removed)");
          return v;
        }
        events.next();
      }
      if (s.prev_id != prev_id) {
        broken(s.event_id, "the chain link before event " + std::to_string(s.event_id) + " names event " +
                               std::to_string(s.prev_id) + ", not " + std::to_string(prev_id) +
                               " (a seal was removed or changed)");
        return v;
      }
      const storage::AuditRow* e = events.peek();
      if (!e || e->id != s.event_id) {
        broken(s.event_id, "event " + std::to_string(s.event_id) + " was deleted");
        return v;
      }
      const std::string h = chain_hash(prev_hash, *e);
      if (h != s.hash) {
        broken(s.event_id, "event " + std::to_string(s.event_id) + " was altered (its hash does not match its seal)");
        return v;
      }
      events.next();
      ++v.checked;
      prev_id = s.event_id;
      prev_hash = h;
    }
  }
  v.head_id = prev_id;
  v.head_hash = prev_hash;
  while (const storage::AuditRow* e = events.peek()) {
    if (e->id > prev_id) ++v.unsealed;
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

AuditTrail::AuditTrail(storage::DbTarget target, unsigned tenant, bool enabled)
    : target_(std::move(target)), store_(tenant), enabled_(enabled) {}

AuditTrail::~AuditTrail() {
  stop();
}

void AuditTrail::start() {
  if (!enabled_ || started_) return;
  started_ = true;
  stopping_ = false;
  appender_ = std::thread([this] { append_loop(); });
  sealer_ = std::thread([this] { seal_loop(); });
}

void AuditTrail::stop() {
  if (!started_) return;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  seal_cv_.notify_all();
  if (appender_.joinable()) appender_.join();
  if (sealer_.joinable()) sealer_.join();
  started_ = false;
}

AuditTrail::Slot AuditTrail::reserve() {
  std::lock_guard lock(seal_mu_);
  const std::uint64_t token = next_token_++;
  slots_[token] = observed_max_;
  return Slot(this, token);
}

std::uint64_t AuditTrail::insert(Slot& slot, storage::Connection& c, const storage::AuditRow& row) {
  const std::uint64_t id = store_.insert(c, row);
  if (slot && id > 0) {
    std::lock_guard lock(seal_mu_);
    auto it = slots_.find(slot.token_);
    if (it != slots_.end()) it->second = id - 1;
  }
  return id;
}

void AuditTrail::append(storage::AuditRow row) {
  if (!enabled_) return;
  row.recorded = row.recorded ? row.recorded : now_ms();
  Pending p{&row, false, {}};
  std::unique_lock lock(mu_);
  if (!started_ || stopping_) throw std::runtime_error("the audit trail is not running");
  queue_.push_back(&p);
  queue_cv_.notify_one();
  done_cv_.wait(lock, [&] { return p.done; });
  if (!p.error.empty()) throw std::runtime_error("audit record not written: " + p.error);
}

void AuditTrail::append_loop() {
  std::optional<storage::Connection> conn;
  std::vector<Pending*> batch;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      queue_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty() && stopping_) return;
      if (queue_.size() <= kAppendBatch) {
        batch.swap(queue_);
      } else {
        batch.assign(queue_.begin(), queue_.begin() + kAppendBatch);
        queue_.erase(queue_.begin(), queue_.begin() + kAppendBatch);
      }
    }
    std::string error;
    for (int attempt = 0; attempt < 2; ++attempt) {
      try {
        if (!conn || !conn->healthy()) {
          conn.reset();
          conn.emplace(target_);
        }
        std::vector<const storage::AuditRow*> rows;
        rows.reserve(batch.size());
        for (Pending* p : batch) rows.push_back(p->row);
        Slot slot = reserve();
        try {
          store_.insert_batch(*conn, rows);  // autocommit: one commit for the batch
        } catch (const storage::DbError& e) {
          if (e.connection_lost() || batch.size() == 1) throw;
          // One record MariaDB refuses must not fail the others: each on its own.
          slot.release();
          for (Pending* p : batch) {
            Slot one = reserve();
            try {
              store_.insert_batch(*conn, {p->row});
            } catch (const storage::DbError& single) {
              if (single.connection_lost()) throw;
              p->error = single.what();
            }
          }
        }
        slot.release();
        error.clear();
        break;
      } catch (const std::exception& e) {
        error = e.what();
        conn.reset();
      }
    }
    if (!error.empty()) server::log_error("audit: a batch of " + std::to_string(batch.size()) + " records failed: " + error);
    {
      std::lock_guard lock(mu_);
      for (Pending* p : batch) {
        if (!error.empty()) p->error = error;
        p->done = true;
      }
    }
    done_cv_.notify_all();
    batch.clear();
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
  if (!head_loaded_) {
    auto last = store_.last_seal(c);
    head_id_ = last ? last->event_id : 0;
    head_hash_ = last ? last->hash : kGenesis;
    sealed_upto_ = head_id_;
    head_loaded_ = true;
  }
  const std::uint64_t floor = seal_floor();
  const std::uint64_t seen = store_.max_id(c);
  while (sealed_upto_ < floor) {
    auto rows = store_.range(c, sealed_upto_, floor, kSealBatch);
    if (rows.empty()) {
      sealed_upto_ = floor;  // the ids between were used by transactions that rolled back
      break;
    }
    std::vector<storage::SealRow> seals;
    seals.reserve(rows.size());
    std::uint64_t prev = head_id_;
    std::string hash = head_hash_;
    const std::int64_t at = now_ms();
    for (const auto& r : rows) {
      hash = chain_hash(hash, r);
      seals.push_back({r.id, prev, hash, at});
      prev = r.id;
    }
    store_.insert_seals(c, seals);  // autocommit
    head_id_ = prev;
    head_hash_ = hash;
    sealed_upto_ = rows.size() < kSealBatch ? floor : prev;
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
    {
      std::unique_lock lock(seal_wait_mu_);
      seal_cv_.wait_for(lock, std::chrono::milliseconds(250), [&] {
        std::lock_guard q(mu_);
        return stopping_;
      });
    }
    bool last = false;
    {
      std::lock_guard q(mu_);
      last = stopping_;
    }
    try {
      if (!conn || !conn->healthy()) {
        conn.reset();
        conn.emplace(target_);
      }
      seal_pass(*conn);
      if (last) seal_pass(*conn);
    } catch (const std::exception& e) {
      server::log_error(std::string("audit: sealing failed (retried): ") + e.what());
      conn.reset();
    }
    if (last) return;
  }
}

}  // namespace kasama::audit
