#include "server/storage/embedded_mariadb.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

namespace kasama::storage {
namespace fs = std::filesystem;
namespace {

// The redo log: a quarter of the buffer pool, from 256M up to 2G. A small log forces
// constant checkpoint flushing under sustained writes (index rows arrive in random key
// order); test servers with the default 256M pool keep a 256M log.
std::string log_file_size(const std::string& buffer_pool) {
  unsigned long long bytes = std::strtoull(buffer_pool.c_str(), nullptr, 10);
  const char unit = buffer_pool.empty() ? 'M' : static_cast<char>(std::toupper(buffer_pool.back()));
  if (unit == 'K') bytes <<= 10;
  if (unit == 'M') bytes <<= 20;
  if (unit == 'G') bytes <<= 30;
  const unsigned long long mb = std::clamp<unsigned long long>((bytes / 4) >> 20, 256, 2048);
  return std::to_string(mb) + "M";
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string tail(const fs::path& p, std::size_t n = 2000) {
  std::string s = read_file(p);
  return s.size() > n ? s.substr(s.size() - n) : s;
}

// Starts a program with stdout/stderr appended to log. A detached one gets its own session,
// so that Ctrl-C in the terminal reaches only the server, which stops MariaDB in order.
int launch(const std::vector<std::string>& args, const fs::path& log, bool detach) {
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    if (detach) {
      setsid();
      // If the server dies without stopping it (a crash, kill -9), MariaDB gets SIGTERM and
      // shuts down cleanly instead of running on orphaned.
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (getppid() != parent) _exit(1);
    }
    FILE* f = std::fopen(log.c_str(), "a");
    if (f) {
      dup2(fileno(f), 1);
      dup2(fileno(f), 2);
    }
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execvp(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

// Runs a program to completion; returns its exit code.
int run(const std::vector<std::string>& args, const fs::path& log) {
  int status = 0;
  waitpid(launch(args, log, false), &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

// A zombie (killed, not yet reaped: its parent died with it and PID 1 may never reap it) is
// not alive: it holds no files and answers nothing.
bool alive(int pid) {
  if (pid <= 0 || kill(pid, 0) != 0) return false;
  const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  const auto paren = stat.rfind(')');
  return paren == std::string::npos || paren + 2 >= stat.size() || stat[paren + 2] != 'Z';
}

bool is_mariadbd(int pid) {
  std::string comm = read_file("/proc/" + std::to_string(pid) + "/comm");
  return comm.rfind("mariadbd", 0) == 0 || comm.rfind("mysqld", 0) == 0;
}

std::string random_secret() {
  static constexpr char kAlphabet[] = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
  std::random_device rd;
  std::string s;
  for (int i = 0; i < 32; ++i) s.push_back(kAlphabet[rd() % (sizeof kAlphabet - 1)]);
  return s;
}

}  // namespace

EmbeddedMariaDb::EmbeddedMariaDb(fs::path dir, std::string buffer_pool)
    : dir_(fs::absolute(std::move(dir))), buffer_pool_(std::move(buffer_pool)) {}

EmbeddedMariaDb::~EmbeddedMariaDb() {
  try {
    stop();
  } catch (...) {
  }
}

DbTarget EmbeddedMariaDb::admin_target(const std::string& database) const {
  DbTarget t;
  t.socket = (dir_ / "mysqld.sock").string();
  t.user = "root";
  t.database = database;
  return t;
}

void EmbeddedMariaDb::start() {
  const fs::path data = dir_ / "data";
  const fs::path log = dir_ / "mariadb.log";
  const fs::path pidfile = dir_ / "mariadbd.pid";
  const fs::path socket = dir_ / "mysqld.sock";
  fs::create_directories(dir_);
  fs::create_directories(dir_ / "tmp");
  const bool as_root = geteuid() == 0;
  if (!fs::exists(data / "mysql")) {
    fs::create_directories(data);
    std::vector<std::string> args = {"mariadb-install-db", "--no-defaults", "--datadir=" + data.string(),
                                     "--auth-root-authentication-method=normal", "--skip-test-db"};
    if (as_root) args.push_back("--user=root");
    if (run(args, dir_ / "install.log") != 0) {
      throw std::runtime_error("mariadb-install-db failed; see " + (dir_ / "install.log").string() + ":\n" +
                               tail(dir_ / "install.log"));
    }
  }
  if (fs::exists(pidfile)) {
    int old = std::atoi(read_file(pidfile).c_str());
    if (alive(old) && is_mariadbd(old)) {
      pid_ = old;  // left running by an earlier crash of ours (or a running server): adopt it
      running_ = true;
      adopted_ = true;
    } else {
      fs::remove(pidfile);
      fs::remove(socket);
    }
  }
  if (!running_) {
    if (socket.string().size() > 100)
      throw std::runtime_error("data dir path too long for a unix socket: " + socket.string());
    std::vector<std::string> args = {"mariadbd",
                                     "--no-defaults",
                                     "--datadir=" + data.string(),
                                     "--socket=" + socket.string(),
                                     "--pid-file=" + pidfile.string(),
                                     "--log-error=" + log.string(),
                                     "--tmpdir=" + (dir_ / "tmp").string(),
                                     "--skip-networking",
                                     "--skip-name-resolve",
                                     "--character-set-server=utf8mb4",
                                     "--collation-server=utf8mb4_bin",
                                     "--innodb-buffer-pool-size=" + buffer_pool_,
                                     "--innodb-log-file-size=" + log_file_size(buffer_pool_),
                                     "--innodb-io-capacity=1000",
                                     "--innodb-flush-log-at-trx-commit=1",
                                     "--max-connections=300",
                                     "--max-allowed-packet=1G",
                                     "--default-time-zone=+00:00"};
    if (as_root) args.push_back("--user=root");
    pid_ = launch(args, dir_ / "mariadbd.out", true);
    running_ = true;
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  for (;;) {
    try {
      Connection c(admin_target());
      c.ping();
      return;
    } catch (const DbError& e) {
      // 2002/2003: nothing listens on the socket yet; anything else is a real failure.
      if (e.code() != 2002 && e.code() != 2003 && e.code() != 2013) throw;
      if (!alive(pid_)) {
        running_ = false;
        throw std::runtime_error("mariadbd exited during start; see " + log.string() + ":\n" + tail(log));
      }
      // reap a child that became a zombie
      waitpid(pid_, nullptr, WNOHANG);
      if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("mariadbd did not answer in 120 s");
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
}

DbTarget EmbeddedMariaDb::provision(const std::string& database) {
  const fs::path secret = dir_ / "app-user.secret";
  std::string password;
  if (fs::exists(secret)) {
    password = read_file(secret);
  } else {
    password = random_secret();
    std::ofstream(secret) << password;
    fs::permissions(secret, fs::perms::owner_read | fs::perms::owner_write);
  }
  Connection root(admin_target());
  root.execute_text("CREATE DATABASE IF NOT EXISTS `" + database + "` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin");
  root.execute_text("CREATE USER IF NOT EXISTS 'kasama_app'@'localhost' IDENTIFIED BY " + root.quote(password));
  root.execute_text("ALTER USER 'kasama_app'@'localhost' IDENTIFIED BY " + root.quote(password));
  // Privileges are granted table by table after the migrations (grant_app_privileges).
  DbTarget app = admin_target(database);
  app.user = "kasama_app";
  app.password = password;
  return app;
}

void EmbeddedMariaDb::stop() {
  if (!running_) return;
  running_ = false;
  if (!alive(pid_)) return;
  kill(pid_, SIGTERM);
  for (int i = 0; i < 1200; ++i) {  // up to 120 s for InnoDB to flush
    if (waitpid(pid_, nullptr, WNOHANG) == pid_ || !alive(pid_)) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
}

}  // namespace kasama::storage
