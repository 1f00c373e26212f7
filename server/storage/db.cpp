#include "server/storage/db.hpp"

#include <mysql.h>

#include <cstring>
#include <stdexcept>

namespace kasama::storage {
namespace {

std::string url_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

}  // namespace

DbTarget DbTarget::parse_url(const std::string& url) {
  static constexpr std::string_view kSchemes[] = {"mariadb://", "mysql://"};
  std::string_view rest;
  for (auto scheme : kSchemes) {
    if (url.rfind(scheme, 0) == 0) rest = std::string_view(url).substr(scheme.size());
  }
  if (rest.empty()) throw std::invalid_argument("database URL must start with mariadb://");
  DbTarget t;
  auto q = rest.find('?');
  std::string_view query = q == std::string_view::npos ? std::string_view() : rest.substr(q + 1);
  rest = rest.substr(0, q);
  auto slash = rest.find('/');
  if (slash == std::string_view::npos) throw std::invalid_argument("database URL needs a /database");
  t.database = url_decode(rest.substr(slash + 1));
  std::string_view authority = rest.substr(0, slash);
  if (auto at = authority.rfind('@'); at != std::string_view::npos) {
    std::string_view cred = authority.substr(0, at);
    authority = authority.substr(at + 1);
    auto colon = cred.find(':');
    t.user = url_decode(cred.substr(0, colon));
    if (colon != std::string_view::npos) t.password = url_decode(cred.substr(colon + 1));
  }
  if (auto colon = authority.rfind(':'); colon != std::string_view::npos) {
    t.port = static_cast<unsigned>(std::stoul(std::string(authority.substr(colon + 1))));
    authority = authority.substr(0, colon);
  }
  if (!authority.empty()) t.host = url_decode(authority);
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view kv = query.substr(0, amp);
    if (kv.rfind("socket=", 0) == 0) t.socket = url_decode(kv.substr(7));
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
  }
  if (t.database.empty()) throw std::invalid_argument("database URL needs a database name");
  return t;
}

std::string DbTarget::describe() const {
  std::string s = "mariadb://";
  s.append(user).append("@").append(host);
  if (port) s.append(":").append(std::to_string(port));
  s.append("/").append(database);
  if (!socket.empty()) s.append("?socket=").append(socket);
  return s;
}

const std::string& ResultSet::text(std::size_t row, std::size_t col) const {
  static const std::string kEmpty;
  const auto& v = rows_[row][col];
  return v ? *v : kEmpty;
}

std::int64_t ResultSet::integer(std::size_t row, std::size_t col) const {
  const auto& v = rows_[row][col];
  return v ? std::stoll(*v) : 0;
}

std::string ResultSet::take(std::size_t row, std::size_t col) {
  auto& v = rows_[row][col];
  return v ? std::move(*v) : std::string();
}

struct Connection::Stmt {
  MYSQL_STMT* stmt = nullptr;
  unsigned long param_count = 0;
  ~Stmt() {
    if (stmt) mysql_stmt_close(stmt);
  }
};

Connection::Connection(const DbTarget& target) : target_(target) {
  connect();
}

Connection::~Connection() {
  stmts_.clear();
  if (mysql_) mysql_close(mysql_);
}

void Connection::connect() {
  mysql_ = mysql_init(nullptr);
  if (!mysql_) throw DbError(2008, "out of memory creating a MariaDB handle");
  unsigned timeout = 10;
  mysql_optionsv(mysql_, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
  mysql_optionsv(mysql_, MYSQL_SET_CHARSET_NAME, "utf8mb4");
  unsigned long max_packet = 1024UL * 1024UL * 1024UL;
  mysql_optionsv(mysql_, MYSQL_OPT_MAX_ALLOWED_PACKET, &max_packet);
  const char* host = target_.socket.empty() ? target_.host.c_str() : "localhost";
  const char* socket = target_.socket.empty() ? nullptr : target_.socket.c_str();
  if (!mysql_real_connect(mysql_, host, target_.user.c_str(), target_.password.c_str(),
                          target_.database.empty() ? nullptr : target_.database.c_str(), target_.port, socket, 0)) {
    unsigned code = mysql_errno(mysql_);
    std::string msg = std::string("cannot connect to ") + target_.describe() + ": " + mysql_error(mysql_);
    mysql_close(mysql_);
    mysql_ = nullptr;
    throw DbError(code, msg);
  }
  // UTC everywhere; READ COMMITTED so that a retried lookup sees what others committed.
  execute_text("SET SESSION time_zone='+00:00', SESSION tx_isolation='READ-COMMITTED'");
}

void Connection::fail(unsigned code, const std::string& message) {
  if (code == 2006 || code == 2013 || code == 2055) healthy_ = false;
  throw DbError(code, message);
}

Connection::Stmt& Connection::prepare(std::string_view sql) {
  auto it = stmts_.find(std::string(sql));
  if (it != stmts_.end()) return *it->second;
  auto s = std::make_unique<Stmt>();
  s->stmt = mysql_stmt_init(mysql_);
  if (!s->stmt) fail(mysql_errno(mysql_), mysql_error(mysql_));
  if (mysql_stmt_prepare(s->stmt, sql.data(), sql.size()) != 0) {
    fail(mysql_stmt_errno(s->stmt), std::string(mysql_stmt_error(s->stmt)) + " in: " + std::string(sql.substr(0, 200)));
  }
  s->param_count = mysql_stmt_param_count(s->stmt);
  auto& ref = *s;
  stmts_.emplace(std::string(sql), std::move(s));
  return ref;
}

ResultSet Connection::query(std::string_view sql, std::initializer_list<Param> params) {
  return query(sql, std::vector<Param>(params));
}

ResultSet Connection::query(std::string_view sql, const std::vector<Param>& params) {
  Stmt& s = prepare(sql);
  if (params.size() != s.param_count) {
    throw std::logic_error("parameter count mismatch for: " + std::string(sql));
  }
  std::vector<MYSQL_BIND> binds(params.size());
  std::vector<unsigned long> lengths(params.size());
  std::vector<my_bool> nulls(params.size());
  std::vector<std::int64_t> ints(params.size());
  for (std::size_t i = 0; i < params.size(); ++i) {
    MYSQL_BIND& b = binds[i];
    std::memset(&b, 0, sizeof b);
    const Param& p = params[i];
    if (std::holds_alternative<std::nullptr_t>(p)) {
      b.buffer_type = MYSQL_TYPE_NULL;
      nulls[i] = 1;
      b.is_null = &nulls[i];
    } else if (auto* si = std::get_if<std::int64_t>(&p)) {
      ints[i] = *si;
      b.buffer_type = MYSQL_TYPE_LONGLONG;
      b.buffer = &ints[i];
    } else if (auto* ui = std::get_if<std::uint64_t>(&p)) {
      ints[i] = static_cast<std::int64_t>(*ui);
      b.buffer_type = MYSQL_TYPE_LONGLONG;
      b.buffer = &ints[i];
      b.is_unsigned = 1;
    } else {
      auto sv = std::get<std::string_view>(p);
      b.buffer_type = MYSQL_TYPE_STRING;
      b.buffer = const_cast<char*>(sv.data());
      lengths[i] = static_cast<unsigned long>(sv.size());
      b.buffer_length = lengths[i];
      b.length = &lengths[i];
    }
  }
  if (!binds.empty() && mysql_stmt_bind_param(s.stmt, binds.data()) != 0) {
    fail(mysql_stmt_errno(s.stmt), mysql_stmt_error(s.stmt));
  }
  if (mysql_stmt_execute(s.stmt) != 0) {
    fail(mysql_stmt_errno(s.stmt), mysql_stmt_error(s.stmt));
  }
  ResultSet rs;
  MYSQL_RES* meta = mysql_stmt_result_metadata(s.stmt);
  if (!meta) {
    rs.affected_rows = mysql_stmt_affected_rows(s.stmt);
    rs.insert_id = mysql_stmt_insert_id(s.stmt);
    return rs;
  }
  const unsigned ncols = mysql_num_fields(meta);
  mysql_free_result(meta);
  rs.columns_ = ncols;
  std::vector<MYSQL_BIND> out(ncols);
  std::vector<std::string> bufs(ncols, std::string(512, '\0'));
  std::vector<unsigned long> out_len(ncols);
  std::vector<my_bool> out_null(ncols), out_err(ncols);
  for (unsigned c = 0; c < ncols; ++c) {
    std::memset(&out[c], 0, sizeof out[c]);
    out[c].buffer_type = MYSQL_TYPE_STRING;
    out[c].buffer = bufs[c].data();
    out[c].buffer_length = static_cast<unsigned long>(bufs[c].size());
    out[c].length = &out_len[c];
    out[c].is_null = &out_null[c];
    out[c].error = &out_err[c];
  }
  if (mysql_stmt_bind_result(s.stmt, out.data()) != 0) fail(mysql_stmt_errno(s.stmt), mysql_stmt_error(s.stmt));
  if (mysql_stmt_store_result(s.stmt) != 0) fail(mysql_stmt_errno(s.stmt), mysql_stmt_error(s.stmt));
  for (;;) {
    int r = mysql_stmt_fetch(s.stmt);
    if (r == MYSQL_NO_DATA) break;
    if (r == 1) {
      unsigned code = mysql_stmt_errno(s.stmt);
      std::string msg = mysql_stmt_error(s.stmt);
      mysql_stmt_free_result(s.stmt);
      fail(code, msg);
    }
    auto& row = rs.rows_.emplace_back(ncols);
    for (unsigned c = 0; c < ncols; ++c) {
      if (out_null[c]) continue;
      if (out_len[c] <= bufs[c].size()) {
        row[c].emplace(bufs[c].data(), out_len[c]);
      } else {
        std::string big(out_len[c], '\0');
        MYSQL_BIND fb;
        std::memset(&fb, 0, sizeof fb);
        unsigned long got = 0;
        fb.buffer_type = MYSQL_TYPE_STRING;
        fb.buffer = big.data();
        fb.buffer_length = out_len[c];
        fb.length = &got;
        if (mysql_stmt_fetch_column(s.stmt, &fb, c, 0) != 0) fail(mysql_stmt_errno(s.stmt), mysql_stmt_error(s.stmt));
        row[c].emplace(std::move(big));
      }
    }
  }
  mysql_stmt_free_result(s.stmt);
  return rs;
}

ResultSet Connection::execute_text(std::string_view sql) {
  if (mysql_real_query(mysql_, sql.data(), static_cast<unsigned long>(sql.size())) != 0) {
    fail(mysql_errno(mysql_), std::string(mysql_error(mysql_)) + " in: " + std::string(sql.substr(0, 200)));
  }
  ResultSet rs;
  MYSQL_RES* res = mysql_store_result(mysql_);
  if (!res) {
    if (mysql_field_count(mysql_) != 0) fail(mysql_errno(mysql_), mysql_error(mysql_));
    rs.affected_rows = mysql_affected_rows(mysql_);
    rs.insert_id = mysql_insert_id(mysql_);
    return rs;
  }
  rs.columns_ = mysql_num_fields(res);
  while (MYSQL_ROW r = mysql_fetch_row(res)) {
    unsigned long* lens = mysql_fetch_lengths(res);
    auto& row = rs.rows_.emplace_back(rs.columns_);
    for (std::size_t c = 0; c < rs.columns_; ++c) {
      if (r[c]) row[c].emplace(r[c], lens[c]);
    }
  }
  mysql_free_result(res);
  return rs;
}

std::string Connection::quote(std::string_view value) const {
  std::string out(value.size() * 2 + 3, '\0');
  out[0] = '\'';
  unsigned long n =
      mysql_real_escape_string(mysql_, out.data() + 1, value.data(), static_cast<unsigned long>(value.size()));
  out.resize(n + 1);
  out.push_back('\'');
  return out;
}

void Connection::begin() {
  execute_text("START TRANSACTION");
  in_tx_ = true;
}

void Connection::commit() {
  in_tx_ = false;
  execute_text("COMMIT");
}

void Connection::rollback() noexcept {
  if (!in_tx_) return;
  in_tx_ = false;
  if (mysql_real_query(mysql_, "ROLLBACK", 8) != 0) healthy_ = false;
}

void Connection::ping() {
  if (mysql_ping(mysql_) != 0) fail(mysql_errno(mysql_), mysql_error(mysql_));
}

PooledConnection::~PooledConnection() {
  if (pool_ && conn_) {
    conn_->rollback();
    pool_->release(std::move(conn_));
  }
}

ConnectionPool::ConnectionPool(DbTarget target, std::size_t max_size)
    : target_(std::move(target)), max_size_(max_size) {}

PooledConnection ConnectionPool::acquire(std::chrono::milliseconds wait) {
  std::unique_lock lock(mu_);
  auto deadline = std::chrono::steady_clock::now() + wait;
  for (;;) {
    if (closed_) throw DbError(2006, "the database pool is closed");
    if (!idle_.empty()) {
      auto conn = std::move(idle_.back());
      idle_.pop_back();
      return PooledConnection(this, std::move(conn));
    }
    if (open_ < max_size_) {
      ++open_;
      lock.unlock();
      try {
        return PooledConnection(this, std::make_unique<Connection>(target_));
      } catch (...) {
        lock.lock();
        --open_;
        cv_.notify_one();
        throw;
      }
    }
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
      throw DbError(2006, "timed out waiting for a database connection");
    }
  }
}

void ConnectionPool::release(std::unique_ptr<Connection> conn) {
  std::lock_guard lock(mu_);
  if (closed_ || !conn->healthy()) {
    --open_;
  } else {
    idle_.push_back(std::move(conn));
  }
  cv_.notify_one();
}

void ConnectionPool::close() {
  std::vector<std::unique_ptr<Connection>> drop;
  {
    std::lock_guard lock(mu_);
    closed_ = true;
    open_ -= idle_.size();
    drop.swap(idle_);
    cv_.notify_all();
  }
}

}  // namespace kasama::storage
