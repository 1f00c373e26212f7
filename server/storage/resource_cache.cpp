#include "server/storage/resource_cache.hpp"

#include <functional>

namespace kasama::storage {
namespace {
std::string key_of(const std::string& type, const std::string& id) {
  return type + '/' + id;
}
std::size_t cost(const std::string& key, const CachedResource& v) {
  return key.size() * 2 + v.content.size() + 96;
}
}  // namespace

ResourceCache::Shard& ResourceCache::shard(const std::string& key) {
  return shards_[std::hash<std::string>{}(key) % kShards];
}

std::shared_ptr<const CachedResource> ResourceCache::get(const std::string& type, const std::string& id) {
  if (!enabled()) return nullptr;
  const std::string key = key_of(type, id);
  Shard& s = shard(key);
  std::lock_guard lock(s.mu);
  auto it = s.map.find(key);
  if (it == s.map.end()) return nullptr;
  s.lru.splice(s.lru.begin(), s.lru, it->second.pos);
  return it->second.value;
}

void ResourceCache::put(const std::string& type, const std::string& id, std::shared_ptr<const CachedResource> value) {
  if (!enabled()) return;
  const std::string key = key_of(type, id);
  Shard& s = shard(key);
  std::lock_guard lock(s.mu);
  insert_locked(s, key, std::move(value));
}

std::uint64_t ResourceCache::ticket(const std::string& type, const std::string& id) {
  if (!enabled()) return 0;
  Shard& s = shard(key_of(type, id));
  std::lock_guard lock(s.mu);
  return s.writes;
}

void ResourceCache::fill(const std::string& type, const std::string& id, std::shared_ptr<const CachedResource> value,
                         std::uint64_t ticket) {
  if (!enabled()) return;
  const std::string key = key_of(type, id);
  Shard& s = shard(key);
  std::lock_guard lock(s.mu);
  if (s.writes != ticket && s.map.find(key) == s.map.end()) return;  // a write may have overtaken this read
  insert_locked(s, key, std::move(value));
}

void ResourceCache::written(const std::string& type, const std::string& id,
                            std::shared_ptr<const CachedResource> value) {
  if (!enabled()) return;
  const std::string key = key_of(type, id);
  Shard& s = shard(key);
  std::lock_guard lock(s.mu);
  ++s.writes;
  if (s.map.find(key) != s.map.end()) insert_locked(s, key, std::move(value));
}

void ResourceCache::insert_locked(Shard& s, const std::string& key, std::shared_ptr<const CachedResource> value) {
  const std::size_t limit = max_bytes_ / kShards;
  const std::size_t c = cost(key, *value);
  auto it = s.map.find(key);
  if (it != s.map.end()) {
    if (it->second.value->version > value->version) return;  // a newer version is already here
    s.bytes -= cost(key, *it->second.value);
    s.bytes += c;
    it->second.value = std::move(value);
    s.lru.splice(s.lru.begin(), s.lru, it->second.pos);
  } else {
    if (c > limit) return;
    s.lru.push_front(key);
    s.map.emplace(key, Shard::Entry{std::move(value), s.lru.begin()});
    s.bytes += c;
  }
  while (s.bytes > limit && !s.lru.empty()) {
    auto victim = s.map.find(s.lru.back());
    s.bytes -= cost(victim->first, *victim->second.value);
    s.map.erase(victim);
    s.lru.pop_back();
  }
}

void ResourceCache::erase(const std::string& type, const std::string& id) {
  const std::string key = key_of(type, id);
  Shard& s = shard(key);
  std::lock_guard lock(s.mu);
  auto it = s.map.find(key);
  if (it == s.map.end()) return;
  s.bytes -= cost(key, *it->second.value);
  s.lru.erase(it->second.pos);
  s.map.erase(it);
}

void ResourceCache::clear() {
  for (auto& s : shards_) {
    std::lock_guard lock(s.mu);
    s.map.clear();
    s.lru.clear();
    s.bytes = 0;
  }
}

}  // namespace kasama::storage
