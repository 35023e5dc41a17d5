// serve_guard_test.cc — `dre serve` under hostile load, as a process on loopback: one client
// holding 3,000 slow connections (from 127.0.0.2) while a second one's /search and /health
// answer within a second; a client sending its headers a byte a second cut at the request
// deadline; kept-alive connections closed when idle past the idle timeout and kept while
// active; and a 60 s soak at 64 concurrent clients without an error, its RSS at the end
// within 5 % of its RSS after the first 10 s. Each test is bounded in count and time.
#include <arpa/inet.h>
#include <curl/curl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

namespace {

using namespace test_util;
using clock_type = std::chrono::steady_clock;

const std::string kSource = DRE_SOURCE_DIR;
const std::string kTiny = kSource + "/tests/fixtures/tiny-bert-cls";
const std::string kDre = std::string(DRE_BINARY_DIR) + "/dre";

double seconds_since(clock_type::time_point t0) {
    return std::chrono::duration<double>(clock_type::now() - t0).count();
}

size_t append(char *p, size_t size, size_t n, void *out) {
    static_cast<std::string *>(out)->append(p, size * n);
    return size * n;
}

// One request on a handle of the caller's (kept alive between calls): the HTTP status, 0
// when none came within timeout_s.
long request(CURL *c, int port, const std::string &method, const std::string &path,
             const std::string &body, double timeout_s, std::string *reply = nullptr) {
    std::string out;
    const std::string url = "http://127.0.0.1:" + std::to_string(port) + path;
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
    curl_easy_setopt(c, CURLOPT_POST, method == "POST" ? 1L : 0L);
    if (method == "POST") {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body.size());
    } else {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, append);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(timeout_s * 1000));
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (reply) *reply = out;
    return status;
}

// A TCP connection from source (an address of the loopback net) to 127.0.0.1:port; -1 when
// connect fails.
int connect_from(const char *source, int port) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    inet_pton(AF_INET, source, &a.sin_addr);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    if (bind(fd, (sockaddr *)&a, sizeof a) != 0 || connect(fd, (sockaddr *)&to, sizeof to) != 0) {
        close(fd);
        return -1;
    }
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

bool send_all(int fd, const std::string &s) {
    return send(fd, s.data(), s.size(), MSG_NOSIGNAL) == (ssize_t)s.size();
}

// Reads one HTTP response (headers and a Content-Length body) from fd: its status, 0 if the
// connection closed or timed out first.
int read_response(int fd) {
    std::string in;
    char buf[4096];
    size_t body_at = std::string::npos, need = 0;
    for (;;) {
        if (body_at != std::string::npos && in.size() >= body_at + need) break;
        const ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0) return 0;
        in.append(buf, (size_t)n);
        if (body_at == std::string::npos && (body_at = in.find("\r\n\r\n")) != std::string::npos) {
            body_at += 4;
            const size_t cl = in.find("Content-Length: ");
            need = cl == std::string::npos ? 0 : std::strtoul(in.c_str() + cl + 16, nullptr, 10);
        }
    }
    return std::atoi(in.c_str() + 9);
}

// Whether the server has closed fd: a read gives end-of-file or an error at once (a
// connection still open blocks, here for up to wait_s).
bool closed_by_server(int fd, double wait_s) {
    timeval tv{(time_t)wait_s, (suseconds_t)((wait_s - (time_t)wait_s) * 1e6)};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char c;
    const ssize_t n = recv(fd, &c, 1, 0);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

long rss_kib(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
    return -1;
}

// A counter's value in /metrics text (-1 when absent).
double metric(const std::string &text, const std::string &name) {
    const size_t at = text.find("\n" + name + " ");
    return at == std::string::npos ? -1 : std::atof(text.c_str() + at + name.size() + 2);
}

class ServeGuard : public ::testing::Test {
  protected:
    static std::string root, index_dir;
    static void SetUpTestSuite() {
        curl_global_init(CURL_GLOBAL_ALL);
        char tmpl[] = DRE_BINARY_DIR "/serve-guard-test-XXXXXX";
        ASSERT_NE(nullptr, mkdtemp(tmpl));
        root = tmpl;
        index_dir = root + "/demo";
        ASSERT_EQ(0, std::system(("'" + kDre + "' embed -q --device cpu --model '" + kTiny +
                                  "' --corpus '" + kSource + "/tests/data/papers.jsonl' --index '" +
                                  index_dir + "'")
                                     .c_str()));
        // each slow connection is a descriptor here and one in the server
        rlimit r;
        getrlimit(RLIMIT_NOFILE, &r);
        r.rlim_cur = r.rlim_max;
        setrlimit(RLIMIT_NOFILE, &r);
    }
    static void TearDownTestSuite() {
        std::filesystem::remove_all(root);
        curl_global_cleanup();
    }

    pid_t pid = -1;
    int port = 0;
    std::string log;

    // Starts `dre serve` on a free port with extra flags and waits for its /health.
    void serve(const std::vector<std::string> &flags) {
        static int runs = 0; // a log of its own, so no earlier server's port is read
        log = root + "/serve-" + std::to_string(++runs) + ".log";
        std::vector<std::string> args = {
            kDre,  "serve",  "--index", index_dir,   "--model", kTiny,         "--device",
            "cpu", "--port", "0",       "--threads", "2",       "--log-level", "warn"};
        args.insert(args.end(), flags.begin(), flags.end());
        pid = fork();
        if (pid == 0) {
            if (!freopen(log.c_str(), "w", stderr)) _exit(126);
            std::vector<char *> argv;
            for (auto &a : args)
                argv.push_back(const_cast<char *>(a.c_str()));
            argv.push_back(nullptr);
            execv(kDre.c_str(), argv.data());
            _exit(127);
        }
        ASSERT_GT(pid, 0);
        for (int i = 0; i < 300 && !port; i++) {
            const std::string text = read_text(log);
            const size_t at = text.find("listening on http://127.0.0.1:");
            if (at != std::string::npos) port = std::atoi(text.c_str() + at + 30);
            if (!port) usleep(100 * 1000);
        }
        ASSERT_GT(port, 0) << read_text(log);
    }
    void TearDown() override {
        if (pid > 0) {
            kill(pid, SIGTERM);
            int status = 0;
            waitpid(pid, &status, 0);
            EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << read_text(log);
        }
    }
    std::string metrics_text() {
        CURL *c = curl_easy_init();
        std::string text;
        request(c, port, "GET", "/metrics", "", 5.0, &text);
        curl_easy_cleanup(c);
        return text;
    }
};
std::string ServeGuard::root, ServeGuard::index_dir;

const std::string kQuery = "{\"query\": \"speeding up diffusion transformers\", \"k\": 3}";

TEST_F(ServeGuard, ThreeThousandSlowConnectionsDoNotTakeTheService) {
    ASSERT_NO_FATAL_FAILURE(serve({}));
    // the slow client: a request line, headers and one byte of a 100 kB body, on each of
    // 3,000 connections from its own address
    const std::string head = "POST /search HTTP/1.1\r\nHost: x\r\nContent-Type: "
                             "application/json\r\nContent-Length: 100000\r\n\r\n{";
    std::vector<int> slow;
    for (int i = 0; i < 3000; i++) {
        const int fd = connect_from("127.0.0.2", port);
        if (fd < 0) break;
        send_all(fd, head);
        slow.push_back(fd);
    }
    ASSERT_EQ(3000u, slow.size()) << "the slow client could not open its connections";
    // the other client: /search and /health, each within a second, for 5 s
    CURL *c = curl_easy_init();
    const auto t0 = clock_type::now();
    int rounds = 0;
    double worst = 0;
    while (seconds_since(t0) < 5.0) {
        for (const char *path : {"/search", "/health"}) {
            const auto r0 = clock_type::now();
            const bool search = !strcmp(path, "/search");
            EXPECT_EQ(200,
                      request(c, port, search ? "POST" : "GET", path, search ? kQuery : "", 1.0))
                << path << " round " << rounds;
            worst = std::max(worst, seconds_since(r0));
        }
        rounds++;
        usleep(100 * 1000);
    }
    curl_easy_cleanup(c);
    EXPECT_LT(worst, 1.0);
    const std::string during = metrics_text();
    EXPECT_GE(
        metric(during, "dre_connections_refused_total{reason=\"max_connections_per_client\"}"),
        3000 - 256 - 10)
        << during;
    // the slow client leaves: /health answers within 2 s
    for (int fd : slow)
        close(fd);
    CURL *after = curl_easy_init();
    const auto a0 = clock_type::now();
    EXPECT_EQ(200, request(after, port, "GET", "/health", "", 2.0));
    EXPECT_LT(seconds_since(a0), 2.0);
    curl_easy_cleanup(after);
    printf("%d rounds of /search + /health beside 3,000 slow connections, the slowest %.0f ms\n",
           rounds, worst * 1e3);
}

TEST_F(ServeGuard, HeadersAByteASecondAreCutAtTheRequestDeadline) {
    ASSERT_NO_FATAL_FAILURE(serve({"--request-timeout", "2"}));
    const int fd = connect_from("127.0.0.1", port);
    ASSERT_GE(fd, 0);
    const std::string head =
        "GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + std::string(40, 'a') + "\r\n\r\n";
    const auto t0 = clock_type::now();
    bool cut = false;
    for (size_t i = 0; i < head.size() && seconds_since(t0) < 8; i++) {
        if (!send_all(fd, head.substr(i, 1)) || closed_by_server(fd, 1.0)) {
            cut = true;
            break;
        }
    }
    const double at = seconds_since(t0);
    close(fd);
    EXPECT_TRUE(cut) << "the slow sender was not cut in 8 s";
    EXPECT_GE(at, 1.5); // not before its deadline
    EXPECT_LT(at, 4.0); // and soon after it
    EXPECT_GE(metric(metrics_text(), "dre_connections_timed_out_total{reason=\"request_timeout\"}"),
              1);
}

TEST_F(ServeGuard, IdleKeptAliveConnectionsCloseActiveOnesStay) {
    ASSERT_NO_FATAL_FAILURE(serve({"--idle-timeout", "2"}));
    const std::string health = "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n";
    const int idle = connect_from("127.0.0.1", port), active = connect_from("127.0.0.1", port);
    ASSERT_GE(idle, 0);
    ASSERT_GE(active, 0);
    ASSERT_TRUE(send_all(idle, health));
    EXPECT_EQ(200, read_response(idle));
    // the active one asks every half second for 4 s, on its one connection
    const auto t0 = clock_type::now();
    int answered = 0;
    while (seconds_since(t0) < 4.0) {
        ASSERT_TRUE(send_all(active, health)) << "after " << answered << " answers";
        ASSERT_EQ(200, read_response(active)) << "after " << answered << " answers";
        answered++;
        usleep(500 * 1000);
    }
    EXPECT_GE(answered, 7);
    // the idle one, untouched for 4 s, is gone
    EXPECT_TRUE(closed_by_server(idle, 1.0)) << "an idle kept-alive connection outlived 2 s";
    EXPECT_FALSE(closed_by_server(active, 0.2));
    close(idle);
    close(active);
    EXPECT_GE(metric(metrics_text(), "dre_connections_timed_out_total{reason=\"idle_timeout\"}"),
              1);
}

// ASan keeps freed memory in quarantine (256 MB by default), which RSS would show as growth:
// the server here gets a small one, and the bound that much more room.
#if defined(__SANITIZE_ADDRESS__)
constexpr long kQuarantineKiB = 16 << 10;
#else
constexpr long kQuarantineKiB = 0;
#endif

TEST_F(ServeGuard, SixtySecondSoakAtSixtyFourClients) {
    if (kQuarantineKiB) {
        const char *given = getenv("ASAN_OPTIONS");
        const std::string options = std::string(given ? given : "") + (given && *given ? ":" : "") +
                                    "quarantine_size_mb=16";
        setenv("ASAN_OPTIONS", options.c_str(), 1);
    }
    ASSERT_NO_FATAL_FAILURE(serve({}));
    std::atomic<bool> stop{false};
    std::atomic<long> ok{0}, errors{0};
    std::vector<std::thread> clients;
    for (int i = 0; i < 64; i++)
        clients.emplace_back([&, i] {
            CURL *c = curl_easy_init();
            const std::string embed =
                "{\"input\": [\"client " + std::to_string(i) + " text\", \"a second text\"]}";
            for (long n = 0; !stop; n++) {
                const bool search = (n + i) % 2 == 0;
                const long st = request(c, port, "POST", search ? "/search" : "/v1/embeddings",
                                        search ? kQuery : embed, 10.0);
                (st == 200 ? ok : errors)++;
            }
            curl_easy_cleanup(c);
        });
    const auto t0 = clock_type::now();
    std::this_thread::sleep_for(std::chrono::seconds(10));
    const long rss_10 = rss_kib(pid);
    while (seconds_since(t0) < 60.0)
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const long rss_60 = rss_kib(pid);
    stop = true;
    for (auto &t : clients)
        t.join();
    printf(
        "soak: %ld requests in 60 s (%.0f/s), %ld errors; RSS %ld KiB at 10 s, %ld KiB at 60 s\n",
        ok.load(), ok.load() / 60.0, errors.load(), rss_10, rss_60);
    EXPECT_EQ(0, errors.load());
    EXPECT_GT(ok.load(), 1000);
    ASSERT_GT(rss_10, 0);
    EXPECT_LE(rss_60, rss_10 * 105 / 100 + kQuarantineKiB);
}

} // namespace
