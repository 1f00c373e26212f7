#pragma once
// A thin, safe layer over MariaDB Connector/C: prepared statements with bound parameters
// (cached per connection), text queries for DDL and multi-row inserts, and a pool.
// storage/ is the only code that speaks SQL.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

struct st_mysql;
struct st_mysql_stmt;

namespace kasama::storage {

// Where and as whom to connect. Parsed from mariadb://user:pass@host[:port]/db[?socket=path].
struct DbTarget {
  std::string host = "localhost";
  unsigned port = 0;
  std::string socket;
  std::string user;
  std::string password;
  std::string database;

  static DbTarget parse_url(const std::string& url);  // throws std::invalid_argument
  std::string describe() const;                       // without the password
};

class DbError : public std::runtime_error {
 public:
  DbError(unsigned code, const std::string& message) : std::runtime_error(message), code_(code) {}
  unsigned code() const { return code_; }
  bool duplicate_key() const { return code_ == 1062; }
  bool deadlock_or_timeout() const { return code_ == 1213 || code_ == 1205; }
  bool connection_lost() const { return code_ == 2006 || code_ == 2013 || code_ == 2055; }

 private:
  unsigned code_;
};

using Param = std::variant<std::nullptr_t, std::int64_t, std::uint64_t, std::string_view>;

class ResultSet {
 public:
  std::size_t size() const { return rows_.size(); }
  bool empty() const { return rows_.empty(); }
  std::size_t columns() const { return columns_; }
  bool is_null(std::size_t row, std::size_t col) const { return !rows_[row][col].has_value(); }
  const std::string& text(std::size_t row, std::size_t col) const;  // "" for NULL
  std::int64_t integer(std::size_t row, std::size_t col) const;
  std::string take(std::size_t row, std::size_t col);  // moves the value out

  std::uint64_t affected_rows = 0;
  std::uint64_t insert_id = 0;

 private:
  friend class Connection;
  std::size_t columns_ = 0;
  std::vector<std::vector<std::optional<std::string>>> rows_;
};

class Connection {
 public:
  explicit Connection(const DbTarget& target);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Prepared statement with bound parameters; the statement is cached by its text.
  ResultSet query(std::string_view sql, std::initializer_list<Param> params = {});
  ResultSet query(std::string_view sql, const std::vector<Param>& params);
  // Text protocol, for DDL and generated multi-row statements whose values went through quote().
  ResultSet execute_text(std::string_view sql);
  std::string quote(std::string_view value) const;  // 'escaped'

  void begin();
  void commit();
  void rollback() noexcept;
  bool in_transaction() const { return in_tx_; }
  bool healthy() const { return healthy_; }
  void ping();

 private:
  struct Stmt;
  Stmt& prepare(std::string_view sql);
  [[noreturn]] void fail(unsigned code, const std::string& message);
  void connect();

  DbTarget target_;
  st_mysql* mysql_ = nullptr;
  std::unordered_map<std::string, std::unique_ptr<Stmt>> stmts_;
  bool in_tx_ = false;
  bool healthy_ = true;
};

class ConnectionPool;

// A borrowed connection: back to the pool on destruction (rolled back if a transaction is open).
class PooledConnection {
 public:
  PooledConnection(ConnectionPool* pool, std::unique_ptr<Connection> conn) : pool_(pool), conn_(std::move(conn)) {}
  PooledConnection(PooledConnection&&) = default;
  PooledConnection& operator=(PooledConnection&&) = default;
  ~PooledConnection();
  Connection& operator*() { return *conn_; }
  Connection* operator->() { return conn_.get(); }

 private:
  ConnectionPool* pool_;
  std::unique_ptr<Connection> conn_;
};

class ConnectionPool {
 public:
  ConnectionPool(DbTarget target, std::size_t max_size);
  PooledConnection acquire(std::chrono::milliseconds wait = std::chrono::seconds(30));
  void release(std::unique_ptr<Connection> conn);
  void close();  // drops idle connections; later acquires fail
  const DbTarget& target() const { return target_; }

 private:
  DbTarget target_;
  std::size_t max_size_;
  std::size_t open_ = 0;
  bool closed_ = false;
  std::vector<std::unique_ptr<Connection>> idle_;
  std::mutex mu_;
  std::condition_variable cv_;
};

// Runs fn in a transaction on a pooled connection, retrying on deadlock (InnoDB can pick any
// transaction as the victim, and a retry is the documented remedy).
template <typename Fn>
auto with_transaction(ConnectionPool& pool, Fn&& fn) {
  for (int attempt = 0;; ++attempt) {
    auto conn = pool.acquire();
    conn->begin();
    try {
      if constexpr (std::is_void_v<decltype(fn(*conn))>) {
        fn(*conn);
        conn->commit();
        return;
      } else {
        auto result = fn(*conn);
        conn->commit();
        return result;
      }
    } catch (const DbError& e) {
      conn->rollback();
      if (!e.deadlock_or_timeout() || attempt >= 4) throw;
    } catch (...) {
      conn->rollback();
      throw;
    }
  }
}

}  // namespace kasama::storage
