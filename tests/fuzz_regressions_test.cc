// fuzz_regressions_test.cc — replays the inputs under tests/fuzz/regressions/<target>/
// (inputs that once crashed a fuzz target) and tests/fuzz/seeds/<target>/ through the
// fuzz targets' own code (tests/fuzz/fuzz_<target>.c, included here without their
// libFuzzer entry points), so a fixed bug stays fixed without clang or libFuzzer. Each
// input runs in a child process: a crash fails that input's case, not the whole binary.
// Under -DDRE_SANITIZE=ON the replay also sees the memory errors the fuzzers saw.
#include <dirent.h>
#include <ftw.h>
#include <sys/wait.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

// A broken invariant in a target is a test failure here, not an abort; the flag tells
// the parent, since the child's own test state also holds the parent's earlier failures.
static int fuzz_check_failed = 0;
#define FUZZ_FAIL(msg)                                                                             \
    do {                                                                                           \
        fuzz_check_failed = 1;                                                                     \
        ADD_FAILURE() << "fuzz check failed: " << (msg);                                           \
    } while (0)
#define FUZZ_NO_ENTRY
#define FUZZ_MODEL_DIR DRE_SOURCE_DIR "/models/all-MiniLM-L6-v2"

#include "fuzz/fuzz_bm25.c"
#include "fuzz/fuzz_config.c"
#include "fuzz/fuzz_corpus.c"
#include "fuzz/fuzz_qrels.c"
#include "fuzz/fuzz_queries.c"
#include "fuzz/fuzz_safetensors.c"
#include "fuzz/fuzz_serve_request.c"
#include "fuzz/fuzz_serve_tei.c"
#include "fuzz/fuzz_tokenizer.c"

namespace {

typedef int (*fuzz_entry)(const uint8_t *data, size_t size);

struct target {
    const char *name;
    fuzz_entry run;
};

const target kTargets[] = {
    {"tokenizer", fuzz_tokenizer_input}, {"safetensors", fuzz_safetensors_input},
    {"config", fuzz_config_input},       {"corpus", fuzz_corpus_input},
    {"queries", fuzz_queries_input},     {"qrels", fuzz_qrels_input},
    {"bm25", fuzz_bm25_input},           {"serve_request", fuzz_serve_request_input},
    {"serve_tei", fuzz_serve_tei_input},
};

std::vector<std::string> files_in(const std::string &dir) {
    std::vector<std::string> files;
    DIR *d = opendir(dir.c_str());
    if (!d) return files;
    while (const dirent *e = readdir(d)) {
        std::string name = e->d_name;
        if (name == "." || name == ".." || name[0] == '.') continue;
        files.push_back(dir + "/" + name);
    }
    closedir(d);
    std::sort(files.begin(), files.end());
    return files;
}

std::vector<uint8_t> read_bytes(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(in),
                                std::istreambuf_iterator<char>());
}

int remove_entry(const char *path, const struct stat *, int, struct FTW *) { return remove(path); }

// Runs one input through a target in a child; returns "" or what went wrong.
std::string replay(const target &t, const std::string &path) {
    std::vector<uint8_t> data = read_bytes(path);
    // a buffer of exactly the input's size, as libFuzzer gives, so that reading past it
    // is an error AddressSanitizer can see
    uint8_t *copy = static_cast<uint8_t *>(malloc(data.size() ? data.size() : 1));
    if (!data.empty()) memcpy(copy, data.data(), data.size());
    fflush(nullptr);
    pid_t pid = fork();
    if (pid == 0) {
        t.run(copy, data.size());
        fflush(nullptr);
        _exit(fuzz_check_failed ? 1 : 0);
    }
    free(copy);
    if (pid < 0) return "fork failed";
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) return "waitpid failed";
    if (WIFSIGNALED(status))
        return std::string("crashed with signal ") + strsignal(WTERMSIG(status));
    if (WEXITSTATUS(status) != 0)
        return "exit status " + std::to_string(WEXITSTATUS(status)) +
               " (a fuzz check failed or a sanitizer reported an error: see above)";
    return "";
}

class FuzzReplay : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        // one scratch folder, made before forking so every child shares it
        std::string base = std::string(DRE_BINARY_DIR) + "/fuzz-replay-XXXXXX";
        std::vector<char> dir(base.begin(), base.end());
        dir.push_back('\0');
        ASSERT_NE(mkdtemp(dir.data()), nullptr);
        setenv("TMPDIR", dir.data(), 1);
        scratch_ = dir.data();
        ASSERT_NE(fuzz_tmp_dir(), nullptr);
    }
    static void TearDownTestSuite() {
        if (!scratch_.empty()) nftw(scratch_.c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    }

    // Replays every file under tests/fuzz/<kind>/<target>/; returns how many.
    static size_t replay_all(const char *kind) {
        size_t n = 0;
        std::string root = std::string(DRE_SOURCE_DIR) + "/tests/fuzz/" + kind;
        for (const target &t : kTargets) {
            for (const std::string &path : files_in(root + "/" + t.name)) {
                SCOPED_TRACE(path);
                std::string what = replay(t, path);
                EXPECT_EQ(what, "") << "fuzz_" << t.name << " on " << path;
                n++;
            }
        }
        // a folder whose name is no target would be skipped silently
        for (const std::string &dir : files_in(root)) {
            std::string name = dir.substr(dir.rfind('/') + 1);
            bool known = false;
            for (const target &t : kTargets)
                known |= name == t.name;
            EXPECT_TRUE(known) << dir << " is not a fuzz target's folder";
        }
        return n;
    }

    static std::string scratch_;
};

std::string FuzzReplay::scratch_;

TEST_F(FuzzReplay, ModelIsInstalled) {
    std::ifstream vocab(FUZZ_MODEL_DIR "/vocab.txt");
    ASSERT_TRUE(vocab.good()) << FUZZ_MODEL_DIR "/vocab.txt is missing: run tools/setup.sh";
}

// Inputs that once crashed a target or broke one of its checks: they must pass now.
TEST_F(FuzzReplay, Regressions) { replay_all("regressions"); }

// The committed seed corpora: every target accepts its own seeds.
TEST_F(FuzzReplay, Seeds) { EXPECT_GT(replay_all("seeds"), 50u); }

} // namespace
