#pragma once
// The audit trail: every request's record is durable before its response is
// sent. A write's record goes into the write's own transaction; other records are appended
// by one thread in batches, so that many requests share one commit (group commit), each
// request waiting for its batch. A sealer thread then extends the SHA-256 hash chain over
// the committed records in id order.
//
// Ids come from AUTO_INCREMENT and commit out of order, so the sealer only seals below the
// lowest id that may still commit: every inserter holds a Slot from before its INSERT until
// its commit or rollback, and a Slot whose id is not known yet bounds the seal at the
// highest id the sealer had seen when the Slot was taken (its own id will be higher). A gap
// below that bound is an id a rolled-back transaction used. This holds for one server
// process per database (see README.md).
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "server/storage/audit_store.hpp"
#include "server/storage/db.hpp"

namespace kasama::audit {

struct VerifyResult {
  bool ok = true;
  std::uint64_t checked = 0;        // sealed events whose hash was recomputed
  std::uint64_t first_broken = 0;   // the first event (id) where the chain does not hold
  std::string problem;              // what is wrong there
  std::uint64_t head_id = 0;        // the last sealed event
  std::string head_hash;
  std::uint64_t anchor_id = 0;      // the chain starts after this (events before it were purged, R-34)
  std::uint64_t unsealed = 0;       // committed events above the head, not sealed yet
};

// Walks the whole chain (read-only; any connection).
VerifyResult verify_chain(storage::Connection& c, unsigned tenant);

class AuditTrail {
 public:
  AuditTrail(storage::DbTarget target, unsigned tenant, bool enabled = true);
  ~AuditTrail();
  AuditTrail(const AuditTrail&) = delete;
  AuditTrail& operator=(const AuditTrail&) = delete;

  bool enabled() const { return enabled_; }
  void start();
  void stop();  // appends what is queued, seals what it can

  // Appends one record and returns once it is committed; throws when it could not be.
  void append(storage::AuditRow row);

  // A write's record inside the write's transaction. Take the slot before the INSERT and
  // keep it until the transaction has committed or rolled back.
  class Slot {
   public:
    Slot() = default;
    Slot(AuditTrail* t, std::uint64_t token) : trail_(t), token_(token) {}
    Slot(Slot&& o) noexcept : trail_(o.trail_), token_(o.token_) { o.trail_ = nullptr; }
    Slot& operator=(Slot&& o) noexcept;
    ~Slot() { release(); }
    void release();
    explicit operator bool() const { return trail_ != nullptr; }

   private:
    friend class AuditTrail;
    AuditTrail* trail_ = nullptr;
    std::uint64_t token_ = 0;
  };
  Slot reserve();
  std::uint64_t insert(Slot& slot, storage::Connection& c, const storage::AuditRow& row);

  // Seals everything sealable now (tests and the CLI; the sealer does this on its own).
  void seal_now();
  std::uint64_t sealed_upto() const { return sealed_upto_.load(); }
  unsigned tenant() const { return store_.tenant(); }

 private:
  struct Pending {
    const storage::AuditRow* row;
    bool done = false;
    std::string error;
  };
  void append_loop();
  void seal_loop();
  void seal_pass(storage::Connection& c);
  std::uint64_t seal_floor();

  storage::DbTarget target_;
  storage::AuditStore store_;
  bool enabled_;

  std::mutex mu_;  // the append queue
  std::condition_variable queue_cv_, done_cv_;
  std::vector<Pending*> queue_;
  bool stopping_ = false;
  bool started_ = false;
  std::thread appender_, sealer_;

  std::mutex seal_mu_;  // slots and what the sealer has seen
  std::map<std::uint64_t, std::uint64_t> slots_;  // token → the highest id that may be sealed while it is held
  std::uint64_t next_token_ = 1;
  std::uint64_t observed_max_ = 0;
  std::mutex pass_mu_;  // one seal pass at a time
  std::string head_hash_;
  std::uint64_t head_id_ = 0;
  bool head_loaded_ = false;
  std::atomic<std::uint64_t> sealed_upto_{0};
  std::condition_variable seal_cv_;
  std::mutex seal_wait_mu_;
};

}  // namespace kasama::audit
