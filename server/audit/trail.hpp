#pragma once
// The audit trail: every request's record is durable before its response is
// sent. A write's record goes into the write's own transaction. Every other record is
// appended to a journal file on the server's disk (one pwrite; with the default sync mode
// the request also waits for an fdatasync that many requests share: group commit) and a
// loader thread moves the journal into audit_event in large batches, each together with the
// journal position it reached (audit_loaded), so that a restart resumes exactly there. A sealer thread then extends the
// SHA-256 hash chain over the committed records in id order.
//
// Why a journal: waiting for a MariaDB commit per batch put a database round trip (and its
// context switches) on every read's path; on a 2-core machine that cut read throughput to a
// third. A local append and one shared fdatasync cost a fraction of that (bench/audit.sh).
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
#include <memory>
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
  std::uint64_t checked = 0;       // sealed events whose hash was recomputed
  std::uint64_t first_broken = 0;  // the first event (id) where the chain does not hold
  std::string problem;             // what is wrong there
  std::uint64_t head_id = 0;       // the last sealed event
  std::string head_hash;
  std::uint64_t anchor_id = 0;  // the chain starts after this (events before it were purged, R-34)
  std::uint64_t unsealed = 0;   // committed events above the head, not sealed yet
};

// Walks the whole chain (read-only; any connection).
VerifyResult verify_chain(storage::Connection& c, unsigned tenant);

class AuditTrail {
 public:
  // journal_dir: where the journal files live (created); sync: fdatasync before a request is
  // answered (durable across power loss), else the record is only handed to the kernel
  // (durable across a crash of the server or of MariaDB).
  AuditTrail(storage::DbTarget target, unsigned tenant, bool enabled, std::string journal_dir, bool sync = true);
  ~AuditTrail();
  AuditTrail(const AuditTrail&) = delete;
  AuditTrail& operator=(const AuditTrail&) = delete;

  bool enabled() const { return enabled_; }
  void start();  // loads what earlier runs left in the journal, then starts the threads
  void stop();   // loads everything appended, seals what it can

  // Appends one record and returns once it is durable; throws when it could not be.
  void append(const storage::AuditRow& row);
  // Returns once everything appended before the call is in audit_event (searches, $verify).
  void flush();

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
  // A request waiting for its record: woken alone (a futex of its own) when its batch is done,
  // not with everyone else who waits (context switches are most of what the trail costs).
  void open_journal(storage::Connection& c);
  void fail(const std::string& why);
  void note_loaded(std::uint64_t offset);            // the loader reached offset in the current file
  static constexpr std::size_t kMaxEntry = 1 << 20;  // a record's bytes (bounded far below by record.hpp)
  void sync_loop();
  void load_loop();
  // Loads complete entries of file_no from offset (up to limit bytes of the file); returns
  // the new offset. Bytes that are no entry (a hole or a torn entry after a crash, or a
  // change) are skipped to the next valid entry, and logged.
  void load_rows(storage::Connection& c, std::vector<storage::AuditRow>& rows, std::uint64_t file_no,
                 std::uint64_t end_offset);
  std::uint64_t load_some(storage::Connection& c, std::uint64_t file_no, std::uint64_t offset, std::uint64_t limit,
                          bool finished);
  void load_everything_before(std::uint64_t file_no);
  void seal_loop();
  void seal_pass(storage::Connection& c);
  void seal_pass_locked(storage::Connection& c);
  std::uint64_t seal_floor();

  storage::DbTarget target_;
  storage::AuditStore store_;
  bool enabled_;
  std::string dir_;
  bool sync_;

  // The journal being written: entries are "<8 hex digits: length> <canonical bytes>\n".
  std::mutex write_mu_;
  int fd_ = -1;
  std::uint64_t file_no_ = 0;
  std::uint64_t reserved_ = 0;             // under write_mu_: bytes of the current file given out
  std::vector<std::uint64_t> in_flight_;   // under write_mu_: offsets being written now
  std::atomic<std::uint64_t> written_{0};  // bytes of the current file written without a gap
  std::atomic<std::uint64_t> synced_{0};   // bytes of the current file known to be on disk
  std::atomic<bool> sync_wanted_{false};
  std::atomic<bool> failed_{false};  // a write or fdatasync failed: no more answers until a restart
  std::mutex sync_mu_;
  std::condition_variable sync_cv_;

  std::mutex load_mu_;                 // the loader's progress, for flush()
  std::condition_variable loaded_cv_;  // the loader made progress
  std::condition_variable load_cv_;    // wake the loader (flush, stop)
  std::uint64_t loaded_ = 0;           // offset in the current file loaded into audit_event
  std::string load_error_;

  std::mutex mu_;  // start/stop
  std::atomic<bool> stopping_{false};
  bool started_ = false;
  std::thread syncer_, loader_, sealer_;
  std::mutex seal_wait_mu_;
  std::condition_variable seal_cv_;  // wake the sealer (stop)
  bool seal_last_ = false;           // under seal_wait_mu_: the loader is done; seal and end

  std::mutex seal_mu_;                            // slots and what the sealer has seen
  std::map<std::uint64_t, std::uint64_t> slots_;  // token → the highest id that may be sealed while it is held
  std::uint64_t next_token_ = 1;
  std::uint64_t observed_max_ = 0;
  // Digest entries of the events the loader inserted, by id, so that the sealer need not read
  // them back (only when AUTO_INCREMENT gives a multi-row INSERT consecutive ids).
  std::mutex handed_mu_;
  std::map<std::uint64_t, std::string> handed_;
  bool consecutive_ids_ = false;
  std::mutex pass_mu_;  // one seal pass at a time
  std::string head_hash_;
  std::uint64_t head_id_ = 0;
  bool head_loaded_ = false;
  std::atomic<std::uint64_t> sealed_upto_{0};
};

}  // namespace kasama::audit
