// dist_test.cc — dre under mpirun (Open MPI, --oversubscribe: more ranks than this machine's
// cores): sharded embeds against one process, bit for bit; a trained (IVF) index shared by the
// shards and merged; kill -9 of one rank and --resume; more ranks than documents; an id in two
// shards; search, eval and serve across ranks equal to one process. Every mpirun runs under a
// timeout, so a hang fails the test instead of stalling the suite. The small test model
// (tests/fixtures/tiny-bert-cls) keeps it quick.
#include <gtest/gtest.h>

#include <curl/curl.h>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "dre.h"
#include "test_util.h"

namespace {

using namespace test_util;
namespace fs = std::filesystem;

const std::string kSource = DRE_SOURCE_DIR;
const std::string kDre = std::string(DRE_BINARY_DIR) + "/dre";
const std::string kTiny = kSource + "/tests/fixtures/tiny-bert-cls";
const int kTimeoutSeconds = 300;

std::string g_root; // scratch folder of the whole suite

struct outcome {
    int exit_code = -1;
    int signal = 0;
    std::string out, err;
};

std::ostream &operator<<(std::ostream &os, const outcome &r) {
    return os << "exit " << r.exit_code << ", signal " << r.signal << ", stderr: " << r.err;
}

// The command line of `dre args...` under mpirun with np ranks (np 0: dre alone), all under
// a timeout that kills the launcher and its ranks.
std::vector<std::string> command(int np, const std::vector<std::string> &args) {
    std::vector<std::string> full = {"timeout", "-s", "KILL", std::to_string(kTimeoutSeconds)};
    if (np > 0) {
        std::vector<std::string> mpi = {"mpirun", "--oversubscribe", "--bind-to", "none", "-np",
                                        std::to_string(np)};
        full.insert(full.end(), mpi.begin(), mpi.end());
    }
    full.push_back(kDre);
    full.insert(full.end(), args.begin(), args.end());
    return full;
}

pid_t spawn(const std::vector<std::string> &full, const std::string &tag) {
    std::vector<char *> argv;
    for (auto &a : full) argv.push_back(const_cast<char *>(a.c_str()));
    argv.push_back(nullptr);
    std::string out = g_root + "/" + tag + ".out", err = g_root + "/" + tag + ".err";
    int fd_out = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int fd_err = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd_out, 1);
        dup2(fd_err, 2);
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, 0);
        if (chdir(kSource.c_str()) != 0) _exit(126);
        execvp(argv[0], argv.data());
        _exit(127);
    }
    close(fd_out);
    close(fd_err);
    return pid;
}

outcome wait_for(pid_t pid, const std::string &tag) {
    outcome r;
    int status = 0;
    if (pid > 0 && waitpid(pid, &status, 0) == pid) {
        if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
        if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
    }
    r.out = read_text(g_root + "/" + tag + ".out");
    r.err = read_text(g_root + "/" + tag + ".err");
    EXPECT_FALSE(has(r.err, "Sanitizer") || has(r.err, "runtime error:")) << r.err;
    return r;
}

outcome run(int np, const std::vector<std::string> &args) {
    return wait_for(spawn(command(np, args), "run"), "run");
}

std::vector<std::string> embed_args(const std::string &corpus, const std::string &index,
                                    std::vector<std::string> more = {}) {
    std::vector<std::string> args = {"embed", "-q",     "--model", kTiny,   "--device",
                                     "cpu",   "--corpus", corpus,  "--index", index};
    args.insert(args.end(), more.begin(), more.end());
    return args;
}

// 1,001 documents (no np of 2, 3 or 4 divides it): the test SciFact corpus and 9 more.
std::string make_corpus() {
    std::string path = g_root + "/corpus-1001.jsonl";
    if (exists(path)) return path;
    std::string text = read_text(kSource + "/tests/data/scifact/corpus.jsonl");
    std::vector<std::string> papers = lines_of(read_text(kSource + "/tests/data/papers.jsonl"));
    for (int i = 0; i < 9; i++) text += papers[i] + "\n";
    write_text(path, text);
    EXPECT_EQ(lines_of(text).size(), 1001u);
    return path;
}

struct index_dump {
    bool opened = false;
    int64_t count = 0;
    int dim = 0;
    std::vector<float> vectors;
    std::vector<std::string> ids, texts;
};

// Everything an index folder (sharded or not) holds, through the public API.
index_dump dump(const std::string &dir) {
    index_dump d;
    dre_index *ix = nullptr;
    if (dre_index_open(dir.c_str(), &ix) != DRE_OK) {
        ADD_FAILURE() << dir << ": " << dre_last_error();
        return d;
    }
    d.opened = true;
    const dre_index_info *info = dre_index_get_info(ix);
    d.count = info->count;
    d.dim = info->dim;
    d.vectors.resize((size_t)d.count * info->dim);
    EXPECT_EQ(dre_index_vectors(ix, 0, d.count, d.vectors.data()), DRE_OK) << dre_last_error();
    for (int64_t row = 0; row < d.count; row++) {
        dre_doc doc;
        EXPECT_EQ(dre_index_doc(ix, row, &doc), DRE_OK) << dre_last_error();
        d.ids.push_back(doc.id ? doc.id : "");
        d.texts.push_back(doc.text ? doc.text : "");
        dre_doc_clear(&doc);
    }
    dre_index_close(ix);
    return d;
}

// The shards of a sharded index, each opened as the ordinary index folder it is, in order.
index_dump dump_shards(const std::string &dir, int n_shards) {
    index_dump all;
    all.opened = true;
    for (int r = 0; r < n_shards; r++) {
        char name[32];
        snprintf(name, sizeof name, "/shard-%05d", r);
        index_dump d = dump(dir + name);
        if (!d.opened) return d;
        all.count += d.count;
        all.dim = d.dim;
        all.vectors.insert(all.vectors.end(), d.vectors.begin(), d.vectors.end());
        all.ids.insert(all.ids.end(), d.ids.begin(), d.ids.end());
        all.texts.insert(all.texts.end(), d.texts.begin(), d.texts.end());
    }
    return all;
}

// Two outputs line for line; a difference shows its first differing line alone.
void expect_same_lines(const std::string &got, const std::string &want, const std::string &what) {
    std::vector<std::string> g = lines_of(got), w = lines_of(want);
    for (size_t i = 0; i < g.size() && i < w.size(); i++)
        if (g[i] != w[i]) {
            ADD_FAILURE() << what << ": line " << i + 1 << " is\n  " << g[i] << "\nnot\n  " << w[i];
            return;
        }
    EXPECT_EQ(g.size(), w.size()) << what << ": the outputs' lengths differ";
}

void expect_same(const index_dump &got, const index_dump &want, const std::string &what) {
    ASSERT_TRUE(got.opened && want.opened) << what;
    EXPECT_EQ(got.count, want.count) << what;
    EXPECT_EQ(got.ids, want.ids) << what;
    EXPECT_EQ(got.texts, want.texts) << what;
    ASSERT_EQ(got.vectors.size(), want.vectors.size()) << what;
    EXPECT_EQ(memcmp(got.vectors.data(), want.vectors.data(), got.vectors.size() * sizeof(float)),
              0)
        << what << ": the vectors differ";
}

// The one-process index of the 1,001-document corpus, made once.
const std::string &one_process_index() {
    static std::string dir;
    if (dir.empty()) {
        dir = g_root + "/one";
        outcome r = run(0, embed_args(make_corpus(), dir));
        EXPECT_EQ(r.exit_code, 0) << r;
    }
    return dir;
}

class DistEnv : public ::testing::Environment {
  public:
    void SetUp() override {
        char tmpl[] = "/tmp/dre_dist_test_XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        g_root = tmpl;
        // mpirun in a container, as root, on one machine: shared memory between the ranks
        setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
        setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
        setenv("OMPI_MCA_btl", "self,vader", 1);
        setenv("OMPI_MCA_btl_vader_single_copy_mechanism", "none", 1);
        setenv("OMPI_MCA_rmaps_base_oversubscribe", "1", 1);
        setenv("OMP_NUM_THREADS", "1", 1);
        // under -DDRE_SANITIZE=ON: Open MPI's own leaks are not dre's (tests/dist_lsan.supp);
        // whole stacks (the slow unwinder) so that the suppressions see Open MPI's frames
        std::string lsan = "suppressions=" + kSource + "/tests/dist_lsan.supp";
        if (const char *had = getenv("LSAN_OPTIONS")) lsan = std::string(had) + ":" + lsan;
        setenv("LSAN_OPTIONS", lsan.c_str(), 1);
        std::string asan = "fast_unwind_on_malloc=0";
        if (const char *had = getenv("ASAN_OPTIONS")) asan = std::string(had) + ":" + asan;
        setenv("ASAN_OPTIONS", asan.c_str(), 1);
    }
    void TearDown() override {
        if (!g_root.empty() && !getenv("DRE_KEEP_TEST_FILES")) fs::remove_all(g_root);
    }
};

::testing::Environment *const g_env = ::testing::AddGlobalTestEnvironment(new DistEnv);

// ---------------------------------------------------------------- embed

// np = 1..4 on 1,001 documents: the shards, in order, hold the one-process index's documents
// and vectors bit for bit, and the sharded folder reads as that index.
TEST(DistEmbed, ShardsEqualOneProcess) {
    index_dump want = dump(one_process_index());
    ASSERT_EQ(want.count, 1001);
    for (int np = 1; np <= 4; np++) {
        std::string dir = g_root + "/sharded-" + std::to_string(np);
        outcome r = run(np, embed_args(make_corpus(), dir));
        ASSERT_EQ(r.exit_code, 0) << "np " << np << ": " << r;
        EXPECT_TRUE(exists(dir + "/meta.json")) << "np " << np;
        EXPECT_FALSE(exists(dir + "/embed-plan.json")) << "np " << np << ": left behind";
        char name[32];
        snprintf(name, sizeof name, "/shard-%05d", np);
        EXPECT_FALSE(exists(dir + name)) << "np " << np << ": a shard too many";
        expect_same(dump_shards(dir, np), want, "np " + std::to_string(np) + ", shard by shard");
        expect_same(dump(dir), want, "np " + std::to_string(np) + ", as one index");
        // every shard holds some of the documents
        for (int s = 0; s < np; s++) {
            snprintf(name, sizeof name, "/shard-%05d", s);
            EXPECT_GT(dump(dir + name).count, 0) << "np " << np << " shard " << s;
        }
    }
}

// More ranks than documents: the empty shards are indexes of nothing, the whole reads right.
TEST(DistEmbed, MoreRanksThanDocuments) {
    std::string corpus = g_root + "/two.jsonl";
    std::vector<std::string> papers = lines_of(read_text(kSource + "/tests/data/papers.jsonl"));
    write_text(corpus, papers[0] + "\n" + papers[1] + "\n");
    std::string one = g_root + "/two-one", dir = g_root + "/two-sharded";
    ASSERT_EQ(run(0, embed_args(corpus, one)).exit_code, 0);
    outcome r = run(4, embed_args(corpus, dir));
    ASSERT_EQ(r.exit_code, 0) << r;
    expect_same(dump(dir), dump(one), "4 ranks, 2 documents");
    int empty = 0;
    for (int s = 0; s < 4; s++) {
        char name[32];
        snprintf(name, sizeof name, "/shard-%05d", s);
        empty += dump(dir + name).count == 0;
    }
    EXPECT_EQ(empty, 2);
}

// The same id in two ranks' parts: the job fails naming both documents and their shards, and
// writes no manifest.
TEST(DistEmbed, AnIdInTwoShardsFails) {
    std::string corpus = g_root + "/dup.jsonl";
    std::vector<std::string> papers = lines_of(read_text(kSource + "/tests/data/papers.jsonl"));
    std::string text;
    for (int i = 0; i < 20; i++) text += papers[i] + "\n";
    text += papers[3] + "\n"; // p's id again, in the last rank's part
    write_text(corpus, text);
    std::string dir = g_root + "/dup-sharded";
    outcome r = run(3, embed_args(corpus, dir));
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(has(r.err, "duplicate id")) << r;
    EXPECT_TRUE(has(r.err, "document 4 of the corpus (shard-00000)")) << r;
    EXPECT_TRUE(has(r.err, "document 21 (shard-00002)")) << r;
    EXPECT_FALSE(exists(dir + "/meta.json"));
}

// A second job into a finished folder is refused; a --resume of it has nothing to do.
TEST(DistEmbed, FinishedFolder) {
    std::string dir = g_root + "/sharded-2";
    if (!exists(dir + "/meta.json")) ASSERT_EQ(run(2, embed_args(make_corpus(), dir)).exit_code, 0);
    outcome again = run(2, embed_args(make_corpus(), dir));
    EXPECT_EQ(again.exit_code, 1) << again;
    EXPECT_TRUE(has(again.err, "already holds an index")) << again;
    outcome resumed = run(2, embed_args(make_corpus(), dir, {"--resume"}));
    EXPECT_EQ(resumed.exit_code, 0) << resumed;
}

// Rank 1 killed with SIGKILL mid-embed: mpirun stops the job and says which rank and why;
// --resume with the same np finishes it, and the shards equal an uninterrupted run's.
TEST(DistEmbed, KillOneRankThenResume) {
    std::string dir = g_root + "/killed";
    // small batches and frequent checkpoints: rank 1 is still embedding when it is killed
    std::vector<std::string> more = {"--checkpoint-every", "20", "--batch-tokens", "512"};
    pid_t pid = spawn(command(3, embed_args(make_corpus(), dir, more)), "killed");
    // wait until rank 1 has checkpointed, then kill it
    std::string checkpoint = dir + "/shard-00001/embed-checkpoint.json";
    pid_t victim = -1;
    for (int i = 0; i < 3000 && victim < 0; i++) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        if (checkpoint_count(dir + "/shard-00001") < 40) continue;
        // rank 1: the dre process whose environment says so
        DIR *proc = opendir("/proc");
        for (struct dirent *e; proc && (e = readdir(proc));) {
            pid_t p = atoi(e->d_name);
            if (p <= 0) continue;
            std::string env = read_text("/proc/" + std::string(e->d_name) + "/environ");
            std::string cmd = read_text("/proc/" + std::string(e->d_name) + "/cmdline");
            if (has(env, std::string("OMPI_COMM_WORLD_RANK=1") + '\0') && has(cmd, dir)) victim = p;
        }
        if (proc) closedir(proc);
    }
    ASSERT_GT(victim, 0) << "rank 1 never checkpointed";
    ASSERT_EQ(kill(victim, SIGKILL), 0);
    EXPECT_TRUE(exists(checkpoint)) << "rank 1 had finished: the kill tests nothing";
    outcome killed = wait_for(pid, "killed");
    EXPECT_NE(killed.exit_code, 0) << killed;
    EXPECT_TRUE(has(killed.err, "rank 1")) << killed;
    EXPECT_TRUE(has(killed.err, "signal 9")) << killed;
    EXPECT_FALSE(exists(dir + "/meta.json"));

    // a resume with another np is refused, naming the np to use
    outcome wrong = run(2, embed_args(make_corpus(), dir, {"--resume"}));
    EXPECT_EQ(wrong.exit_code, 1) << wrong;
    EXPECT_TRUE(has(wrong.err, "mpirun -np 3")) << wrong;

    outcome resumed = run(3, embed_args(make_corpus(), dir, {"--resume"}));
    ASSERT_EQ(resumed.exit_code, 0) << resumed;
    std::string clean = g_root + "/sharded-3";
    if (!exists(clean + "/meta.json")) ASSERT_EQ(run(3, embed_args(make_corpus(), clean)).exit_code, 0);
    for (int s = 0; s < 3; s++) {
        char name[32];
        snprintf(name, sizeof name, "/shard-%05d", s);
        expect_same(dump(dir + name), dump(clean + name), std::string("resumed ") + name);
    }
}

// An IVF index: trained once by rank 0 on the corpus's first vectors (here all of them, as one
// process trains), shared by the shards. Searched at a fixed nprobe, the shards fanned out and
// the shards merged into one index (dre index merge) answer as the one-process IVF index does,
// and the merged index holds the same vectors, lists and documents.
TEST(DistEmbed, IvfShardsShareTheirTrainingAndMerge) {
    std::vector<std::string> ivf = {"--factory", "IVF16,Flat"};
    std::string one = g_root + "/ivf-one", dir = g_root + "/ivf-sharded", merged = g_root + "/ivf-merged";
    outcome r1 = run(0, embed_args(make_corpus(), one, ivf));
    ASSERT_EQ(r1.exit_code, 0) << r1;
    outcome r3 = run(3, embed_args(make_corpus(), dir, ivf));
    ASSERT_EQ(r3.exit_code, 0) << r3;
    EXPECT_FALSE(exists(dir + "/trained.faiss")) << "left behind";
    outcome m = run(0, {"index", "merge", dir, merged});
    ASSERT_EQ(m.exit_code, 0) << m;
    expect_same(dump(merged), dump(one), "merged IVF shards");
    expect_same(dump(dir), dump(one), "IVF shards");
    std::string queries = kSource + "/tests/data/scifact/queries.jsonl";
    for (const char *nprobe : {"nprobe=1", "nprobe=4"}) {
        std::vector<std::string> args = {"search", "--model", kTiny, "--device", "cpu", "--mode",
                                         "dense", "-k", "20", "--queries", queries, "--param",
                                         nprobe, "--index"};
        auto with = [&](const std::string &index) {
            std::vector<std::string> a = args;
            a.push_back(index);
            return a;
        };
        outcome want = run(0, with(one)), fanned = run(0, with(dir)), folded = run(0, with(merged));
        ASSERT_EQ(want.exit_code, 0) << want;
        EXPECT_GT(lines_of(want.out).size(), 1000u);
        expect_same_lines(fanned.out, want.out, std::string(nprobe) + ", the shards");
        expect_same_lines(folded.out, want.out, std::string(nprobe) + ", the merged index");
    }
    // nprobe matters here (else the comparison above proves little)
    outcome p1 = run(0, {"search", "--model", kTiny, "--device", "cpu", "--mode", "dense", "-k",
                         "20", "--queries", queries, "--param", "nprobe=1", "--index", one});
    outcome p16 = run(0, {"search", "--model", kTiny, "--device", "cpu", "--mode", "dense", "-k",
                          "20", "--queries", queries, "--param", "nprobe=16", "--index", one});
    EXPECT_NE(p1.out, p16.out);
    // IVF shards trained apart do not merge
    std::string apart = g_root + "/ivf-apart";
    fs::create_directories(apart);
    fs::copy(dir, apart, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
    std::string half = g_root + "/half.jsonl";
    std::vector<std::string> lines = lines_of(read_text(make_corpus()));
    std::string text;
    for (size_t i = 700; i < lines.size(); i++) text += lines[i] + "\n";
    write_text(half, text);
    fs::remove_all(apart + "/shard-00002");
    ASSERT_EQ(run(0, embed_args(half, apart + "/shard-00002", ivf)).exit_code, 0);
    outcome bad = run(0, {"index", "merge", apart, g_root + "/ivf-apart-merged"});
    EXPECT_EQ(bad.exit_code, 1) << bad;
    EXPECT_TRUE(has(bad.err, "coarse quantizer")) << bad;
}

// Dense, BM25 and hybrid search, and dre eval, over a Flat index's shards equal the
// one-process index's, line for line (ids, order, scores as printed).
TEST(DistSearch, ShardedAnswersEqualOneProcess) {
    std::string dir = g_root + "/sharded-3";
    if (!exists(dir + "/meta.json")) ASSERT_EQ(run(3, embed_args(make_corpus(), dir)).exit_code, 0);
    std::string queries = kSource + "/tests/data/scifact/queries.jsonl";
    for (const char *mode : {"dense", "bm25", "hybrid"}) {
        for (const char *fusion : {"convex", "rrf"}) {
            if (strcmp(mode, "hybrid") && strcmp(fusion, "convex")) continue;
            std::vector<std::string> args = {"search", "--model", kTiny, "--device", "cpu",
                                             "--mode", mode, "--fusion", fusion, "-k", "10",
                                             "--queries", queries, "--index"};
            std::vector<std::string> a1 = args, a3 = args;
            a1.push_back(one_process_index());
            a3.push_back(dir);
            outcome want = run(0, a1), got = run(0, a3);
            ASSERT_EQ(want.exit_code, 0) << want;
            EXPECT_GT(lines_of(want.out).size(), 1000u) << mode;
            expect_same_lines(got.out, want.out, std::string(mode) + " " + fusion);
        }
    }
    std::vector<std::string> eval = {"eval", "--model", kTiny, "--device", "cpu", "--queries",
                                     queries, "--qrels", kSource + "/tests/data/scifact/qrels.tsv",
                                     "--index"};
    std::vector<std::string> e1 = eval, e3 = eval;
    e1.push_back(one_process_index());
    e3.push_back(dir);
    outcome want = run(0, e1), got = run(0, e3);
    ASSERT_EQ(want.exit_code, 0) << want;
    EXPECT_TRUE(has(want.out, "ndcg") || has(want.out, "nDCG")) << want.out;
    expect_same_lines(got.out, want.out, "eval");
}

// ---------------------------------------------------------------- serve

size_t append_body(char *data, size_t size, size_t n, void *out) {
    static_cast<std::string *>(out)->append(data, size * n);
    return size * n;
}

// POSTs body to the service on port; the status and the body of the answer.
std::pair<long, std::string> post(int port, const std::string &path, const std::string &body) {
    std::string out;
    long code = 0;
    CURL *c = curl_easy_init();
    std::string url = "http://127.0.0.1:" + std::to_string(port) + path;
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, append_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    return {code, out};
}

// Waits until the service on port answers (or gives up after a minute).
bool wait_until_up(int port) {
    for (int i = 0; i < 600; i++) {
        std::string out;
        CURL *c = curl_easy_init();
        std::string url = "http://127.0.0.1:" + std::to_string(port) + "/health";
        curl_easy_setopt(c, CURLOPT_URL, url.c_str());
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, append_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
        bool up = curl_easy_perform(c) == CURLE_OK;
        curl_easy_cleanup(c);
        if (up) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
}

pid_t mpirun_pid_of(pid_t timeout_pid) {
    // the timeout wrapper's child is mpirun
    for (int i = 0; i < 100; i++) {
        std::string children =
            read_text("/proc/" + std::to_string(timeout_pid) + "/task/" +
                      std::to_string(timeout_pid) + "/children");
        if (!children.empty()) return atoi(children.c_str());
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
}

// mpirun -np 3 dre serve over a sharded index answers /search as one-process dre serve over the
// unsharded index does, byte for byte, in every mode (one query and several at once); SIGUSR1
// to mpirun stops every rank after the requests in flight, exit 0; SIGTERM (which Open MPI
// answers by ending the job) still lets rank 0 finish and every rank stop.
TEST(DistServe, ShardsOverRanksAnswerAsOneProcess) {
    std::string dir = g_root + "/sharded-3";
    if (!exists(dir + "/meta.json")) ASSERT_EQ(run(3, embed_args(make_corpus(), dir)).exit_code, 0);
    const int one_port = 18731, dist_port = 18732;
    std::vector<std::string> serve = {"serve", "--model", kTiny, "--device", "cpu", "--port"};
    std::vector<std::string> a1 = serve, a3 = serve;
    a1.insert(a1.end(), {std::to_string(one_port), "--index", one_process_index()});
    a3.insert(a3.end(), {std::to_string(dist_port), "--index", dir});
    pid_t one = spawn(command(0, a1), "serve-one");
    pid_t dist = spawn(command(3, a3), "serve-dist");
    ASSERT_TRUE(wait_until_up(one_port));
    ASSERT_TRUE(wait_until_up(dist_port)) << read_text(g_root + "/serve-dist.err");
    const char *bodies[] = {
        R"({"query": "stem cells in the bone marrow niche", "k": 10, "mode": "dense"})",
        R"({"query": "stem cells in the bone marrow niche", "k": 10, "mode": "bm25"})",
        R"({"query": "stem cells in the bone marrow niche", "k": 10, "mode": "hybrid"})",
        R"({"query": "stem cells in the bone marrow niche", "k": 10, "mode": "hybrid", "fusion": "rrf"})",
        R"({"queries": ["malaria vectors", "prion disease", "insulin secretion", "zzzz"], "k": 25})",
    };
    for (const char *body : bodies) {
        auto want = post(one_port, "/search", body), got = post(dist_port, "/search", body);
        EXPECT_EQ(want.first, 200) << body << ": " << want.second;
        EXPECT_EQ(got.first, 200) << body << ": " << got.second;
        EXPECT_GT(want.second.size(), 200u);
        EXPECT_EQ(got.second, want.second) << body;
    }
    pid_t mpirun = mpirun_pid_of(dist);
    ASSERT_GT(mpirun, 0);
    ASSERT_EQ(kill(mpirun, SIGUSR1), 0);
    outcome stopped = wait_for(dist, "serve-dist");
    EXPECT_EQ(stopped.exit_code, 0) << stopped;
    EXPECT_TRUE(has(stopped.err, "dre serve: stopped")) << stopped;
    kill(one, SIGTERM);
    EXPECT_EQ(wait_for(one, "serve-one").exit_code, 0);

    // SIGTERM: the job ends (Open MPI's doing), rank 0 first finishing and stopping its ranks
    pid_t again = spawn(command(3, a3), "serve-term");
    ASSERT_TRUE(wait_until_up(dist_port));
    EXPECT_EQ(post(dist_port, "/search", bodies[0]).first, 200);
    mpirun = mpirun_pid_of(again);
    ASSERT_GT(mpirun, 0);
    ASSERT_EQ(kill(mpirun, SIGTERM), 0);
    outcome termed = wait_for(again, "serve-term");
    EXPECT_TRUE(has(termed.err, "SIGTERM: finishing the requests in flight")) << termed;
    EXPECT_TRUE(has(termed.err, "dre serve: stopped")) << termed;
    EXPECT_FALSE(has(termed.err, "Killed")) << termed;
}

// Documents without a title travel from the rank holding them as documents with one do (the
// title's absence is marked, not sent): /search equals one process's.
TEST(DistServe, DocumentsWithoutTitles) {
    std::string corpus = g_root + "/untitled.jsonl", text;
    std::vector<std::string> lines = lines_of(read_text(kSource + "/tests/data/scifact/corpus.jsonl"));
    for (int i = 0; i < 60; i++) {
        size_t t = lines[i].find("\"text\":");
        ASSERT_NE(t, std::string::npos);
        size_t id_end = lines[i].find(',');
        text += lines[i].substr(0, id_end) + ", " + lines[i].substr(t) + "\n";
    }
    write_text(corpus, text);
    std::string one = g_root + "/untitled-one", dir = g_root + "/untitled-sharded";
    ASSERT_EQ(run(0, embed_args(corpus, one)).exit_code, 0);
    ASSERT_EQ(run(2, embed_args(corpus, dir)).exit_code, 0);
    const int one_port = 18741, dist_port = 18742;
    std::vector<std::string> serve = {"serve", "--model", kTiny, "--device", "cpu", "--port"};
    std::vector<std::string> a1 = serve, a2 = serve;
    a1.insert(a1.end(), {std::to_string(one_port), "--index", one});
    a2.insert(a2.end(), {std::to_string(dist_port), "--index", dir});
    pid_t p1 = spawn(command(0, a1), "untitled-one");
    pid_t p2 = spawn(command(2, a2), "untitled-dist");
    ASSERT_TRUE(wait_until_up(one_port));
    ASSERT_TRUE(wait_until_up(dist_port));
    const char *body = R"({"queries": ["stem cells", "vitamin D and bone"], "k": 20})";
    auto want = post(one_port, "/search", body), got = post(dist_port, "/search", body);
    EXPECT_EQ(want.first, 200) << want.second;
    EXPECT_EQ(got.first, 200) << got.second;
    EXPECT_NE(want.second.find("\"title\":\"\""), std::string::npos) << "the corpus has no titles";
    EXPECT_EQ(got.second, want.second);
    pid_t mpirun = mpirun_pid_of(p2);
    ASSERT_GT(mpirun, 0);
    kill(mpirun, SIGUSR1);
    EXPECT_EQ(wait_for(p2, "untitled-dist").exit_code, 0);
    kill(p1, SIGTERM);
    EXPECT_EQ(wait_for(p1, "untitled-one").exit_code, 0);
}

// A sharded index served by one process, and an ordinary index refused by mpirun dre serve.
TEST(DistServe, WhatMpirunServes) {
    outcome r = run(2, {"serve", "--model", kTiny, "--device", "cpu", "--port", "18733", "--index",
                        one_process_index()});
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(has(r.err, "not a sharded index")) << r;
}

// Options a sharded embed cannot honour are refused by rank 0, once.
TEST(DistEmbed, RefusesWhatItCannotShard) {
    outcome r = run(2, embed_args(make_corpus(), g_root + "/q8", {"--quantize", "int8"}));
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(has(r.err, "int8 rescoring")) << r;
    outcome s = run(2, {"search", "--index", one_process_index(), "--model", kTiny, "q"});
    EXPECT_EQ(s.exit_code, 2) << s;
    EXPECT_TRUE(has(s.err, "runs in one process")) << s;
}

} // namespace
