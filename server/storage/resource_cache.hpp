#pragma once
// Current versions of resources, kept in memory so that a read need not touch MariaDB.
// Reads fill it; writes only refresh entries that are already there (a bulk load does not
// churn the cache, and the allocator with it). A read fills only when no write touched the
// key's shard since the read took its ticket, and nothing ever replaces a newer version
// with an older one, so racing readers and writers cannot leave a stale entry. Valid for one server process per
// database: with several processes on one database (KASAMA_CACHE_BYTES=0 there) another process's writes would not be
// seen.
#include <array>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace kasama::storage {

struct CachedResource {
  std::uint32_t version = 0;
  std::int64_t last_updated = 0;
  bool deleted = false;
  std::string content;
  std::uint8_t category = 0;  // access labels (migration 0005)
  std::shared_ptr<const std::vector<std::string>> subjects;  // null: not known here
};

class ResourceCache {
 public:
  explicit ResourceCache(std::size_t max_bytes) : max_bytes_(max_bytes) {}

  std::shared_ptr<const CachedResource> get(const std::string& type, const std::string& id);
  // Before reading the database: the shard's write count, to hand to fill().
  std::uint64_t ticket(const std::string& type, const std::string& id);
  // After reading the database: caches value unless a write reached the shard since ticket.
  void fill(const std::string& type, const std::string& id, std::shared_ptr<const CachedResource> value,
            std::uint64_t ticket);
  // After a write committed: counts the write, refreshes an entry that is there.
  void written(const std::string& type, const std::string& id, std::shared_ptr<const CachedResource> value);
  // Unconditional (tests, warm-up): inserts or refreshes.
  void put(const std::string& type, const std::string& id, std::shared_ptr<const CachedResource> value);
  void erase(const std::string& type, const std::string& id);
  void clear();
  bool enabled() const { return max_bytes_ > 0; }

 private:
  static constexpr std::size_t kShards = 16;
  struct Shard {
    std::mutex mu;
    std::list<std::string> lru;  // front = most recent
    struct Entry {
      std::shared_ptr<const CachedResource> value;
      std::list<std::string>::iterator pos;
    };
    std::unordered_map<std::string, Entry> map;
    std::size_t bytes = 0;
    std::uint64_t writes = 0;
  };
  void insert_locked(Shard& s, const std::string& key, std::shared_ptr<const CachedResource> value);
  Shard& shard(const std::string& key);

  std::size_t max_bytes_;
  std::array<Shard, kShards> shards_;
};

}  // namespace kasama::storage
