// pipeline_test.cc — dre_embed end to end on the CPU: the demo corpus against
// sentence-transformers' embeddings of it (tools/fixtures/make_pipeline_fixtures.py), resuming
// after `dre embed` is killed with SIGKILL (the result must equal an uninterrupted run's
// bit for bit), the lock, --append, a model that does not match, bad lines, factories
// that need training.
#include <gtest/gtest.h>

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "dre.h"
#include "test_util.h"

namespace {

// dre's CPU encoder and sentence-transformers (torch, fp32) give the same unit vectors to
// 1 - cos ~ 1e-12, so their inner products agree to a few fp32 ulps (measured at most
// 6.0e-7 on an AMD EPYC, 3.6e-7 on an Intel Xeon); 2e-6 leaves room for other CPUs' summation
// orders, far below what a wrong operator or pooling would move a score (1e-2 and more). Ids are
// checked wherever the reference's neighbours are more than twice that apart.
constexpr double kScoreTol = 2e-6;

using namespace test_util;

const std::string kSource = DRE_SOURCE_DIR;
const std::string kMiniLM = kSource + "/models/all-MiniLM-L6-v2";
const std::string kTiny = kSource + "/tests/fixtures/tiny-bert-cls";
const std::string kCorpus = kSource + "/tests/data/papers.jsonl";
const std::string kDre = std::string(DRE_BINARY_DIR) + "/dre";
constexpr int kDocs = 80;
constexpr int kDim = 384;
constexpr int kCheckpointEvery = 8;

const std::set<std::string> kIndexFiles = {"docs.sqlite", "index.faiss", "meta.json"};
const char *const INDEX_CHECKPOINT_NAME = "embed-checkpoint.json";

struct index_dump {
    int64_t count = 0;
    std::vector<float> vectors;
    std::vector<std::string> ids, titles, texts;
    std::vector<std::string> bm25;                   // every token of the BM25 index (test_util.h)
    std::vector<std::pair<int64_t, int32_t>> chunks; // each vector's document and chunk
};

// Everything an index folder holds, through the public API.
index_dump dump(const std::string &dir) {
    index_dump d;
    dre_index *ix = nullptr;
    EXPECT_EQ(dre_index_open(dir.c_str(), &ix), DRE_OK) << dre_last_error();
    if (!ix) return d;
    const dre_index_info *info = dre_index_get_info(ix);
    d.count = info->count;
    d.vectors.resize((size_t)info->n_vectors * info->dim);
    EXPECT_EQ(dre_index_vectors(ix, 0, info->n_vectors, d.vectors.data()), DRE_OK)
        << dre_last_error();
    for (int64_t row = 0; row < d.count; row++) {
        dre_doc doc;
        EXPECT_EQ(dre_index_doc(ix, row, &doc), DRE_OK);
        d.ids.push_back(doc.id);
        d.titles.push_back(doc.title);
        d.texts.push_back(doc.text);
        dre_doc_clear(&doc);
    }
    for (int64_t v = 0; v < info->n_vectors; v++) {
        int64_t row = -1;
        int32_t chunk = -1;
        EXPECT_EQ(dre_index_chunk(ix, v, &row, &chunk), DRE_OK);
        d.chunks.push_back({row, chunk});
    }
    dre_index_close(ix);
    d.bm25 = bm25_dump(dir);
    return d;
}

pid_t spawn(const std::vector<std::string> &args) {
    pid_t pid = fork();
    if (pid == 0) {
        std::vector<char *> argv;
        for (auto &a : args)
            argv.push_back(const_cast<char *>(a.c_str()));
        argv.push_back(nullptr);
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execv(argv[0], argv.data());
        _exit(127);
    }
    return pid;
}

class PipelineTest : public ::testing::Test {
  protected:
    static std::string root, ref_dir;
    static dre_status ref_status;
    static std::string ref_error;
    static dre_embed_summary ref_summary;
    std::string dir;

    // One uninterrupted embed of the demo corpus, shared by the tests that compare to it.
    static void SetUpTestSuite() {
        char tmpl[] = "/tmp/dre_pipeline_test_XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        root = tmpl;
        ref_dir = root + "/ref";
        if (access((kMiniLM + "/model.safetensors").c_str(), R_OK) != 0) {
            ref_status = DRE_ERR_IO;
            ref_error = kMiniLM + " is missing: run tools/setup.sh";
            return;
        }
        dre_embed_options opts;
        dre_embed_options_init(&opts);
        opts.device = DRE_DEVICE_CPU;
        opts.checkpoint_every = kCheckpointEvery;
        ref_status =
            dre_embed(kMiniLM.c_str(), kCorpus.c_str(), ref_dir.c_str(), &opts, &ref_summary);
        ref_error = dre_last_error();
    }
    static void TearDownTestSuite() {
        std::string cmd = "rm -rf '" + root + "'";
        if (system(cmd.c_str()) != 0) fprintf(stderr, "could not remove %s\n", root.c_str());
    }

    void SetUp() override {
        ASSERT_EQ(ref_status, DRE_OK) << ref_error;
        static int n = 0;
        dir = root + "/t" + std::to_string(n++);
        ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
    }

    void random_kills(const std::vector<std::string> &extra, dre_embed_options opts,
                      bool plain_lines = false);

    static dre_embed_options options(int checkpoint_every = kCheckpointEvery) {
        dre_embed_options opts;
        dre_embed_options_init(&opts);
        opts.device = DRE_DEVICE_CPU;
        opts.checkpoint_every = checkpoint_every;
        return opts;
    }
};

std::string PipelineTest::root, PipelineTest::ref_dir, PipelineTest::ref_error;
dre_status PipelineTest::ref_status = DRE_OK;
dre_embed_summary PipelineTest::ref_summary;

TEST_F(PipelineTest, DemoCorpusMatchesSentenceTransformers) {
    EXPECT_EQ(ref_summary.n_docs, kDocs);
    EXPECT_EQ(ref_summary.n_total, kDocs);
    EXPECT_EQ(ref_summary.n_skipped, 0);
    EXPECT_GT(ref_summary.n_tokens, kDocs * 50);
    EXPECT_EQ(files_in(ref_dir), kIndexFiles); // no staging files, checkpoint or lock left

    std::string meta_text = read_text(kSource + "/tests/fixtures/papers_minilm.json");
    cJSON *meta = cJSON_Parse(meta_text.c_str());
    ASSERT_NE(meta, nullptr)
        << "tests/fixtures/papers_minilm.json: run tools/fixtures/make_pipeline_fixtures.py";
    std::string ref_vectors = read_text(kSource + "/tests/fixtures/papers_minilm.f32");
    ASSERT_EQ(ref_vectors.size(), sizeof(float) * kDocs * kDim);
    const float *want = reinterpret_cast<const float *>(ref_vectors.data());

    dre_index *ix = nullptr;
    ASSERT_EQ(dre_index_open(ref_dir.c_str(), &ix), DRE_OK) << dre_last_error();
    const dre_index_info *info = dre_index_get_info(ix);
    EXPECT_EQ(info->count, kDocs);
    EXPECT_EQ(info->dim, kDim);
    EXPECT_STREQ(info->model_name, "all-MiniLM-L6-v2");
    EXPECT_STREQ(info->weights_sha256, cJSON_GetObjectItem(meta, "weights_sha256")->valuestring);
    EXPECT_STREQ(info->factory, "Flat");
    EXPECT_EQ(info->pooling, DRE_POOL_MEAN);
    EXPECT_EQ(info->normalize, 1);
    EXPECT_EQ(info->max_length, 256);
    EXPECT_EQ(info->format_version, 1);

    // Row i is the corpus's document i, embedded as "title text" (BEIR's join).
    std::vector<float> got((size_t)kDocs * kDim);
    ASSERT_EQ(dre_index_vectors(ix, 0, kDocs, got.data()), DRE_OK) << dre_last_error();
    const cJSON *doc_ids = cJSON_GetObjectItem(meta, "doc_ids");
    auto corpus_lines = lines_of(read_text(kCorpus));
    for (int i = 0; i < kDocs; i++) {
        EXPECT_LE(1.0 - cosine(got.data() + (size_t)i * kDim, want + (size_t)i * kDim, kDim),
                  kCpuParity)
            << "row " << i;
        dre_doc doc;
        ASSERT_EQ(dre_index_doc(ix, i, &doc), DRE_OK);
        EXPECT_STREQ(doc.id, cJSON_GetArrayItem(doc_ids, i)->valuestring);
        cJSON *line = cJSON_Parse(corpus_lines[i].c_str());
        EXPECT_STREQ(doc.title, cJSON_GetObjectItem(line, "title")->valuestring);
        EXPECT_STREQ(doc.text, cJSON_GetObjectItem(line, "text")->valuestring);
        cJSON_Delete(line);
        dre_doc_clear(&doc);
    }

    // The demo queries find the reference's top 10, with the reference's scores.
    dre_model *model = nullptr;
    dre_tokenizer *tok = nullptr;
    dre_encoder *enc = nullptr;
    ASSERT_EQ(dre_model_open(kMiniLM.c_str(), &model), DRE_OK) << dre_last_error();
    ASSERT_EQ(dre_tokenizer_open(kMiniLM.c_str(), &tok), DRE_OK) << dre_last_error();
    ASSERT_EQ(dre_encoder_open(model, DRE_DEVICE_CPU, 0, &enc), DRE_OK) << dre_last_error();
    const cJSON *queries = cJSON_GetObjectItem(meta, "queries");
    int n_queries = cJSON_GetArraySize(queries);
    ASSERT_GT(n_queries, 0);
    std::vector<const char *> texts;
    for (int q = 0; q < n_queries; q++)
        texts.push_back(cJSON_GetObjectItem(cJSON_GetArrayItem(queries, q), "text")->valuestring);
    std::vector<float> qv((size_t)n_queries * kDim), scores((size_t)n_queries * 10);
    std::vector<int64_t> rows((size_t)n_queries * 10);
    double worst_score = 0;
    int id_checks = 0;
    ASSERT_EQ(dre_encode_texts(enc, tok, texts.data(), texts.size(), 0, qv.data()), DRE_OK)
        << dre_last_error();
    ASSERT_EQ(dre_index_search(ix, qv.data(), n_queries, 10, scores.data(), rows.data()), DRE_OK);
    for (int q = 0; q < n_queries; q++) {
        const cJSON *top = cJSON_GetObjectItem(cJSON_GetArrayItem(queries, q), "top");
        for (int r = 0; r < 10; r++) {
            const cJSON *want_r = cJSON_GetArrayItem(top, r);
            double want_score = cJSON_GetObjectItem(want_r, "score")->valuedouble;
            EXPECT_NEAR(scores[q * 10 + r], want_score, kScoreTol)
                << "query " << q << " rank " << r;
            worst_score = std::max(worst_score, std::fabs(scores[q * 10 + r] - want_score));
            // Ids must agree except where the reference's own scores nearly tie.
            double gap_prev =
                r > 0
                    ? want_score -
                          cJSON_GetObjectItem(cJSON_GetArrayItem(top, r - 1), "score")->valuedouble
                    : -1;
            double gap_next =
                r < 9
                    ? want_score -
                          cJSON_GetObjectItem(cJSON_GetArrayItem(top, r + 1), "score")->valuedouble
                    : 1;
            if (std::fabs(gap_prev) > 2 * kScoreTol && std::fabs(gap_next) > 2 * kScoreTol) {
                id_checks++;
                dre_doc doc;
                ASSERT_EQ(dre_index_doc(ix, rows[q * 10 + r], &doc), DRE_OK);
                EXPECT_STREQ(doc.id, cJSON_GetObjectItem(want_r, "id")->valuestring)
                    << "query " << q << " rank " << r;
                dre_doc_clear(&doc);
            }
        }
    }
    printf("%d of %d ids checked (the rest within a near-tie of the reference); the largest "
           "score difference %.2e\n",
           id_checks, n_queries * 10, worst_score);
    dre_encoder_close(enc);
    dre_tokenizer_close(tok);
    dre_model_close(model);
    dre_index_close(ix);
    cJSON_Delete(meta);
}

// `dre embed` killed with SIGKILL a few times, each soon after a new checkpoint (so the
// kills land anywhere between checkpoints, mid-window and mid-write), then --resume to
// the end: the index must equal the uninterrupted run's exactly.
TEST_F(PipelineTest, ResumeAfterKillEqualsUninterruptedRun) {
    ASSERT_EQ(access(kDre.c_str(), X_OK), 0) << kDre << " is missing: build the dre target";
    std::string ix = dir + "/ix";
    std::vector<std::string> cmd = {kDre,
                                    "embed",
                                    "-q",
                                    "--model",
                                    kMiniLM,
                                    "--device",
                                    "cpu",
                                    "--checkpoint-every",
                                    std::to_string(kCheckpointEvery),
                                    kCorpus,
                                    ix};
    std::mt19937 rng(7);
    int kills_mid_run = 0;
    bool finished = false;
    long long last = -1;
    for (int attempt = 0; attempt < 3; attempt++) {
        std::vector<std::string> args = cmd;
        if (attempt > 0) args.insert(args.begin() + 2, "--resume");
        pid_t pid = spawn(args);
        ASSERT_GT(pid, 0);
        bool exited = false;
        int status = 0;
        auto start = std::chrono::steady_clock::now();
        // Wait for a checkpoint beyond the one this run started from.
        for (;;) {
            if (waitpid(pid, &status, WNOHANG) == pid) {
                exited = true;
                break;
            }
            long long now = checkpoint_count(ix);
            if (now > last && now > 0) break;
            ASSERT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(60));
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        if (exited) {
            ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
            finished = true;
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 300));
        kill(pid, SIGKILL);
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        if (WIFEXITED(status)) {
            ASSERT_EQ(WEXITSTATUS(status), 0);
            finished = true;
            break;
        }
        if (WIFSIGNALED(status)) {
            kills_mid_run++;
            long long after = checkpoint_count(ix);
            EXPECT_GE(after, last) << "a checkpoint went backwards";
            last = after;
            EXPECT_EQ(files_in(ix).count("meta.json"), 0u)
                << "killed mid-run, yet meta.json exists";
        }
    }
    EXPECT_GE(kills_mid_run, 2) << "the kills should land before the embed finishes";
    // A plain rerun refuses to clobber the unfinished embed.
    if (kills_mid_run > 0) {
        dre_embed_options opts = options();
        EXPECT_EQ(dre_embed(kMiniLM.c_str(), kCorpus.c_str(), ix.c_str(), &opts, nullptr),
                  DRE_ERR_INVALID_ARG);
        EXPECT_NE(std::string(dre_last_error()).find("--resume"), std::string::npos);
    }
    if (!finished) {
        std::vector<std::string> args = cmd;
        args.insert(args.begin() + 2, "--resume");
        pid_t pid = spawn(args);
        int status = 0;
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
    }

    EXPECT_EQ(files_in(ix), kIndexFiles);
    index_dump want = dump(ref_dir), got = dump(ix);
    ASSERT_EQ(got.count, kDocs);
    EXPECT_EQ(got.ids, want.ids);
    EXPECT_EQ(got.titles, want.titles);
    EXPECT_EQ(got.texts, want.texts);
    ASSERT_GT(want.bm25.size(), (size_t)kDocs * 50); // the embed built BM25 by default
    EXPECT_EQ(want.bm25[0], "integrity ok");
    EXPECT_TRUE(got.bm25 == want.bm25) << "resumed BM25 index differs from the uninterrupted run's";
    ASSERT_EQ(got.vectors.size(), want.vectors.size());
    EXPECT_EQ(memcmp(got.vectors.data(), want.vectors.data(), got.vectors.size() * sizeof(float)),
              0)
        << "resumed vectors differ from the uninterrupted run's";
}

// Kills at random moments of an embed run as a command (extra: more options for it and
// opts), then --resume: the index equals an uninterrupted run's.
void PipelineTest::random_kills(const std::vector<std::string> &extra, dre_embed_options opts,
                                bool plain_lines) {
    ASSERT_EQ(access(kDre.c_str(), X_OK), 0) << kDre << " is missing: build the dre target";
    auto lines = lines_of(read_text(kCorpus));
    std::string corpus_text;
    for (int copy = 0; copy < 8; copy++)
        for (size_t i = 0; i < lines.size(); i++) { // unique ids: p001 -> c3p001
            cJSON *doc = cJSON_Parse(lines[i].c_str());
            std::string id =
                "c" + std::to_string(copy) + cJSON_GetObjectItem(doc, "_id")->valuestring;
            cJSON_ReplaceItemInObject(doc, "_id", cJSON_CreateString(id.c_str()));
            char *text = cJSON_PrintUnformatted(doc);
            // plain lines: the abstract alone, its line number its id
            corpus_text += plain_lines ? cJSON_GetObjectItem(doc, "text")->valuestring : text;
            corpus_text += "\n";
            free(text);
            cJSON_Delete(doc);
        }
    std::string corpus = dir + (plain_lines ? "/big.txt" : "/big.jsonl");
    write_text(corpus, corpus_text);
    std::string whole = dir + "/whole", ix = dir + "/ix";
    ASSERT_EQ(dre_embed(kTiny.c_str(), corpus.c_str(), whole.c_str(), &opts, nullptr), DRE_OK)
        << dre_last_error();

    std::vector<std::string> cmd = {kDre,
                                    "embed",
                                    "-q",
                                    "--model",
                                    kTiny,
                                    "--device",
                                    "cpu",
                                    "--resume",
                                    "--checkpoint-every",
                                    std::to_string(kCheckpointEvery),
                                    corpus,
                                    ix};
    cmd.insert(cmd.begin() + 2, extra.begin(), extra.end());
    // How long one whole run of the command takes here: the kills land within its first 60 %,
    // so they fall inside the work on a fast machine as on a slow one.
    std::vector<std::string> timed = cmd;
    timed.back() = dir + "/timed";
    const auto t0 = std::chrono::steady_clock::now();
    pid_t timed_pid = spawn(timed);
    int timed_status = 0;
    ASSERT_EQ(waitpid(timed_pid, &timed_status, 0), timed_pid);
    ASSERT_TRUE(WIFEXITED(timed_status) && WEXITSTATUS(timed_status) == 0);
    double run_us =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
    std::mt19937 rng(11);
    int kills = 0;
    for (int attempt = 0; attempt < 60 && kills < 10; attempt++) {
        pid_t pid = spawn(cmd);
        ASSERT_GT(pid, 0);
        std::this_thread::sleep_for(std::chrono::microseconds(
            (int64_t)(run_us * (0.05 + 0.55 * (double)(rng() % 1000) / 1000))));
        kill(pid, SIGKILL);
        int status = 0;
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        if (WIFSIGNALED(status)) {
            kills++;
            continue;
        }
        ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
        if (kills >= 3) break; // finished before the kill, after enough kills
        // finished too soon (the timed run was slowed by a busy machine): the same again from
        // nothing, with kills sooner
        run_us *= 0.6;
        ASSERT_EQ(0, std::system(("rm -rf '" + ix + "'").c_str()));
    }
    if (files_in(ix).count(INDEX_CHECKPOINT_NAME) || !files_in(ix).count("meta.json")) {
        pid_t pid = spawn(cmd);
        int status = 0;
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
    }
    EXPECT_GE(kills, 3);
    if (HasFailure()) return;
    std::set<std::string> files = kIndexFiles;
    if (opts.quantize != DRE_QUANTIZE_NONE) { // and its rescoring vectors, byte for byte
        const std::string name = opts.rescore == DRE_RESCORE_FP32 || opts.quantize == DRE_QUANTIZE_INT8
                                     ? "vectors.f32"
                                     : "vectors.i8";
        files.insert(name);
        EXPECT_TRUE(read_text(ix + "/" + name) == read_text(whole + "/" + name));
    }
    EXPECT_EQ(files_in(ix), files);
    index_dump want = dump(whole), got = dump(ix);
    ASSERT_EQ(got.count, (int64_t)lines.size() * 8);
    EXPECT_EQ(got.ids, want.ids);
    if (plain_lines)
        for (size_t i = 0; i < got.ids.size(); i++)
            ASSERT_EQ(got.ids[i], std::to_string(i + 1)) << "a document's id is its line number";
    EXPECT_EQ(got.texts, want.texts);
    EXPECT_EQ(got.chunks, want.chunks);
    ASSERT_FALSE(want.bm25.empty());
    EXPECT_EQ(want.bm25[0], "integrity ok");
    EXPECT_TRUE(got.bm25 == want.bm25) << "BM25 index differs after the kills";
    ASSERT_EQ(got.vectors.size(), want.vectors.size());
    EXPECT_EQ(memcmp(got.vectors.data(), want.vectors.data(), got.vectors.size() * sizeof(float)),
              0);
}

// Many kills at random moments (before the first checkpoint, mid-window, mid-checkpoint)
// on a larger corpus with the small model and a checkpoint every 8 documents.
TEST_F(PipelineTest, RandomKillsNeverLoseOrCorruptWork) { random_kills({}, options()); }

// The same with documents cut into chunks: vectors, chunk map and BM25 rows all equal.
TEST_F(PipelineTest, RandomKillsWithChunksNeverLoseOrCorruptWork) {
    dre_embed_options opts = options();
    opts.chunk_tokens = 24;
    opts.chunk_overlap = 6;
    random_kills({"--chunk-tokens", "24", "--chunk-overlap", "6"}, opts);
}

// The same on a corpus of plain lines, whose ids are line numbers: a resumed run numbers its
// lines on from where the checkpoint says.
TEST_F(PipelineTest, RandomKillsOnPlainLinesNeverLoseOrCorruptWork) {
    random_kills({}, options(), true);
}

// The same for a binary index: its sign bits, and int8 rescoring vectors trained and written
// at the end, equal an uninterrupted run's.
TEST_F(PipelineTest, RandomKillsOfAQuantizedEmbedNeverLoseOrCorruptWork) {
    dre_embed_options opts = options();
    opts.quantize = DRE_QUANTIZE_BINARY;
    random_kills({"--quantize", "binary"}, opts);
}

// A kill after the last rename leaves a finished index and no checkpoint: --resume then
// has nothing to do and succeeds, leaving the index as it was.
TEST_F(PipelineTest, ResumeOnAFinishedIndexIsANoOp) {
    std::string ix = dir + "/done";
    dre_embed_options opts = options();
    ASSERT_EQ(dre_embed(kTiny.c_str(), kCorpus.c_str(), ix.c_str(), &opts, nullptr), DRE_OK)
        << dre_last_error();
    index_dump before = dump(ix);
    opts.resume = 1;
    dre_embed_summary summary;
    ASSERT_EQ(dre_embed(kTiny.c_str(), kCorpus.c_str(), ix.c_str(), &opts, &summary), DRE_OK)
        << dre_last_error();
    EXPECT_EQ(summary.n_docs, 0);
    EXPECT_EQ(summary.n_total, kDocs);
    EXPECT_EQ(files_in(ix), kIndexFiles);
    index_dump after = dump(ix);
    EXPECT_EQ(after.ids, before.ids);
    EXPECT_EQ(after.vectors, before.vectors);
    opts.resume = 0; // without --resume, the same command refuses to overwrite it
    EXPECT_EQ(dre_embed(kTiny.c_str(), kCorpus.c_str(), ix.c_str(), &opts, nullptr),
              DRE_ERR_INVALID_ARG);
}

// The progress callback: a call per window written (windows end at checkpoints, every 8
// documents here), counts that only grow, the corpus read to its last byte, then one call
// with done set. dre_embed itself prints nothing.
TEST_F(PipelineTest, ProgressCallbackFollowsTheWindows) {
    std::vector<dre_embed_progress> calls;
    dre_embed_options opts = options();
    opts.progress = [](const dre_embed_progress *p, void *user) {
        static_cast<std::vector<dre_embed_progress> *>(user)->push_back(*p);
    };
    opts.progress_user = &calls;
    dre_embed_summary summary;
    testing::internal::CaptureStderr();
    dre_status st =
        dre_embed(kTiny.c_str(), kCorpus.c_str(), (dir + "/ix").c_str(), &opts, &summary);
    std::string printed = testing::internal::GetCapturedStderr();
    ASSERT_EQ(st, DRE_OK) << dre_last_error();
    EXPECT_EQ(printed, "");
    ASSERT_EQ(calls.size(), (size_t)kDocs / kCheckpointEvery + 1);
    long long corpus_bytes = (long long)read_text(kCorpus).size();
    for (size_t i = 0; i + 1 < calls.size(); i++) {
        EXPECT_EQ(calls[i].n_docs, (int64_t)(i + 1) * kCheckpointEvery);
        EXPECT_FALSE(calls[i].done);
        EXPECT_EQ(calls[i].start, 0);
        EXPECT_EQ(calls[i].size, corpus_bytes);
        if (i > 0) {
            EXPECT_GT(calls[i].offset, calls[i - 1].offset);
            EXPECT_GT(calls[i].n_tokens, calls[i - 1].n_tokens);
            EXPECT_GE(calls[i].seconds, calls[i - 1].seconds);
        }
    }
    const dre_embed_progress &last = calls.back();
    EXPECT_TRUE(last.done);
    EXPECT_EQ(last.n_docs, kDocs);
    EXPECT_EQ(last.offset, corpus_bytes);
    EXPECT_EQ(last.n_tokens, summary.n_tokens);
    EXPECT_EQ(summary.n_docs, kDocs);
    EXPECT_EQ(summary.device, DRE_DEVICE_CPU);
}

// A BM25 table added to an index made without one equals the one an embed builds as it
// goes; --append keeps an index's BM25 choice.
TEST_F(PipelineTest, Bm25AddedLaterEqualsBm25BuiltDuringTheEmbed) {
    std::string with = dir + "/with", without = dir + "/without";
    dre_embed_options opts = options();
    ASSERT_EQ(dre_embed(kTiny.c_str(), kCorpus.c_str(), with.c_str(), &opts, nullptr), DRE_OK)
        << dre_last_error();
    opts.no_bm25 = 1;
    ASSERT_EQ(dre_embed(kTiny.c_str(), kCorpus.c_str(), without.c_str(), &opts, nullptr), DRE_OK)
        << dre_last_error();
    EXPECT_TRUE(bm25_dump(without).empty());
    dre_index *ix = nullptr;
    ASSERT_EQ(dre_index_open(without.c_str(), &ix), DRE_OK);
    EXPECT_EQ(dre_index_get_info(ix)->bm25, 0);
    double score;
    int64_t row;
    int32_t n;
    EXPECT_EQ(dre_index_bm25_search(ix, "diffusion", 1, &score, &row, &n), DRE_ERR_UNSUPPORTED);
    EXPECT_NE(std::string(dre_last_error()).find("add-bm25"), std::string::npos);
    dre_index_close(ix);

    ASSERT_EQ(dre_index_add_bm25(without.c_str()), DRE_OK) << dre_last_error();
    EXPECT_EQ(files_in(without), kIndexFiles);
    index_dump a = dump(with), b = dump(without);
    ASSERT_GT(a.bm25.size(), (size_t)kDocs);
    EXPECT_EQ(a.bm25[0], "integrity ok");
    EXPECT_TRUE(a.bm25 == b.bm25);
    EXPECT_EQ(a.vectors, b.vectors);
    ASSERT_EQ(dre_index_open(without.c_str(), &ix), DRE_OK) << dre_last_error();
    EXPECT_EQ(dre_index_get_info(ix)->bm25, 1);
    ASSERT_EQ(dre_index_bm25_search(ix, "diffusion transformers", 1, &score, &row, &n), DRE_OK);
    EXPECT_EQ(n, 1);
    EXPECT_GT(score, 0);
    dre_index_close(ix);
    std::string meta = read_text(without + "/meta.json");
    EXPECT_NE(meta.find("\"tokenizer\":\t\"porter unicode61\""), std::string::npos) << meta;
    EXPECT_EQ(dre_index_add_bm25(without.c_str()), DRE_OK); // again: nothing to do

    // --append --no-bm25 to an index with BM25 is refused; without the flag it keeps it up
    std::string half = dir + "/half.jsonl";
    auto lines = lines_of(read_text(kCorpus));
    write_text(half, lines[0] + "\n");
    std::string one = dir + "/one";
    opts.no_bm25 = 0;
    ASSERT_EQ(dre_embed(kTiny.c_str(), half.c_str(), one.c_str(), &opts, nullptr), DRE_OK);
    write_text(half, lines[1] + "\n");
    opts.append = 1;
    opts.no_bm25 = 1;
    EXPECT_EQ(dre_embed(kTiny.c_str(), half.c_str(), one.c_str(), &opts, nullptr),
              DRE_ERR_MISMATCH);
    opts.no_bm25 = 0;
    ASSERT_EQ(dre_embed(kTiny.c_str(), half.c_str(), one.c_str(), &opts, nullptr), DRE_OK)
        << dre_last_error();
    auto terms = bm25_dump(one);
    ASSERT_FALSE(terms.empty());
    EXPECT_EQ(terms[0], "integrity ok");
    EXPECT_NE(terms.back().find(" 1 "), std::string::npos) << terms.back(); // row 1 indexed
}

TEST_F(PipelineTest, SecondEmbedOnALockedIndexFails) {
    std::string ix = dir + "/ix";
    ASSERT_EQ(mkdir(ix.c_str(), 0755), 0);
    int fd = open((ix + "/embed.lock").c_str(), O_RDWR | O_CREAT, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(flock(fd, LOCK_EX | LOCK_NB), 0); // as a running embed holds it
    dre_embed_options opts = options();
    EXPECT_EQ(dre_embed(kTiny.c_str(), kCorpus.c_str(), ix.c_str(), &opts, nullptr),
              DRE_ERR_LOCKED);
    EXPECT_NE(std::string(dre_last_error()).find("another dre embed"), std::string::npos)
        << dre_last_error();
    flock(fd, LOCK_UN);
    close(fd);
    // Once released, the embed runs.
    EXPECT_EQ(dre_embed(kTiny.c_str(), kCorpus.c_str(), ix.c_str(), &opts, nullptr), DRE_OK)
        << dre_last_error();
    EXPECT_EQ(files_in(ix), kIndexFiles);
}

// The small model keeps this quick: the whole corpus at once against 50 then 30 more.
TEST_F(PipelineTest, AppendAddsTheSecondHalf) {
    auto lines = lines_of(read_text(kCorpus));
    std::string first, second;
    for (size_t i = 0; i < lines.size(); i++)
        (i < 50 ? first : second) += lines[i] + "\n";
    write_text(dir + "/first.jsonl", first);
    write_text(dir + "/second.jsonl", second);
    std::string whole = dir + "/whole", ix = dir + "/ix";
    dre_embed_options opts = options();
    dre_embed_summary s;
    ASSERT_EQ(dre_embed(kTiny.c_str(), kCorpus.c_str(), whole.c_str(), &opts, &s), DRE_OK)
        << dre_last_error();
    ASSERT_EQ(dre_embed(kTiny.c_str(), (dir + "/first.jsonl").c_str(), ix.c_str(), &opts, &s),
              DRE_OK)
        << dre_last_error();
    EXPECT_EQ(s.n_total, 50);
    // Without --append an existing index is not touched.
    EXPECT_EQ(dre_embed(kTiny.c_str(), (dir + "/second.jsonl").c_str(), ix.c_str(), &opts, &s),
              DRE_ERR_INVALID_ARG);
    EXPECT_NE(std::string(dre_last_error()).find("--append"), std::string::npos);
    opts.append = 1;
    ASSERT_EQ(dre_embed(kTiny.c_str(), (dir + "/second.jsonl").c_str(), ix.c_str(), &opts, &s),
              DRE_OK)
        << dre_last_error();
    EXPECT_EQ(s.n_docs, 30);
    EXPECT_EQ(s.n_total, kDocs);
    EXPECT_EQ(files_in(ix), kIndexFiles);
    index_dump want = dump(whole), got = dump(ix);
    ASSERT_EQ(got.count, kDocs);
    EXPECT_EQ(got.ids, want.ids);
    EXPECT_EQ(got.texts, want.texts);
    int dim = (int)(got.vectors.size() / kDocs);
    for (int i = 0; i < kDocs; i++)
        EXPECT_GE(cosine(got.vectors.data() + (size_t)i * dim,
                         want.vectors.data() + (size_t)i * dim, dim),
                  0.99999)
            << "row " << i;
    // Appending the same documents again: every id is a duplicate.
    EXPECT_EQ(dre_embed(kTiny.c_str(), (dir + "/second.jsonl").c_str(), ix.c_str(), &opts, &s),
              DRE_ERR_FORMAT);
    EXPECT_NE(std::string(dre_last_error()).find("duplicate id \"p051\""), std::string::npos)
        << dre_last_error();
}

// --append to a chunked index chunks the new documents the same way (without being told)
// and maps their chunks to the new rows; other chunk sizes are refused.
TEST_F(PipelineTest, AppendToAChunkedIndex) {
    auto lines = lines_of(read_text(kCorpus));
    std::string first, second;
    for (size_t i = 0; i < lines.size(); i++)
        (i < 50 ? first : second) += lines[i] + "\n";
    write_text(dir + "/first.jsonl", first);
    write_text(dir + "/second.jsonl", second);
    std::string whole = dir + "/whole", ix = dir + "/ix";
    dre_embed_options opts = options();
    opts.chunk_tokens = 40;
    opts.chunk_overlap = 10;
    ASSERT_EQ(dre_embed(kTiny.c_str(), kCorpus.c_str(), whole.c_str(), &opts, nullptr), DRE_OK)
        << dre_last_error();
    ASSERT_EQ(dre_embed(kTiny.c_str(), (dir + "/first.jsonl").c_str(), ix.c_str(), &opts, nullptr),
              DRE_OK)
        << dre_last_error();
    opts.append = 1;
    opts.chunk_tokens = 48;
    EXPECT_EQ(dre_embed(kTiny.c_str(), (dir + "/second.jsonl").c_str(), ix.c_str(), &opts, nullptr),
              DRE_ERR_MISMATCH);
    EXPECT_NE(std::string(dre_last_error()).find("chunks of 40 tokens"), std::string::npos)
        << dre_last_error();
    opts.chunk_tokens = 0; // the index's
    opts.chunk_overlap = -1;
    dre_embed_summary s;
    ASSERT_EQ(dre_embed(kTiny.c_str(), (dir + "/second.jsonl").c_str(), ix.c_str(), &opts, &s),
              DRE_OK)
        << dre_last_error();
    EXPECT_EQ(s.n_docs, 30);
    index_dump want = dump(whole), got = dump(ix);
    ASSERT_EQ(got.count, kDocs);
    EXPECT_EQ(got.ids, want.ids);
    EXPECT_EQ(got.chunks, want.chunks);
    EXPECT_EQ(got.bm25, want.bm25);
    ASSERT_EQ(got.vectors.size(), want.vectors.size());
    int dim = 32;
    for (size_t v = 0; v < got.chunks.size(); v++)
        EXPECT_GE(cosine(got.vectors.data() + v * dim, want.vectors.data() + v * dim, dim), 0.99999)
            << "vector " << v;
}

TEST_F(PipelineTest, AppendWithAnotherModelIsAMismatch) {
    std::string ix = dir + "/ix";
    std::string cmd = "cp -r '" + ref_dir + "' '" + ix + "'";
    ASSERT_EQ(system(cmd.c_str()), 0);
    dre_embed_options opts = options();
    opts.append = 1;
    EXPECT_EQ(dre_embed(kTiny.c_str(), kCorpus.c_str(), ix.c_str(), &opts, nullptr),
              DRE_ERR_MISMATCH);
    EXPECT_NE(std::string(dre_last_error()).find("another model"), std::string::npos)
        << dre_last_error();
    EXPECT_EQ(files_in(ix), kIndexFiles); // untouched, nothing left behind
    EXPECT_EQ(dump(ix).count, kDocs);
}

TEST_F(PipelineTest, BadLinesFailOrAreSkippedAndListed) {
    std::string corpus = dir + "/bad.jsonl";
    write_text(corpus, "{\"_id\": \"a\", \"title\": \"T\", \"text\": \"first\"}\n"
                       "{\"_id\": \"b\", \"text\": broken}\n"
                       "{\"_id\": \"c\", \"text\": \"third\"}\n"
                       "{\"_id\": \"a\", \"text\": \"same id again\"}\n"
                       "{\"_id\": \"e\", \"text\": \"\"}\n"
                       "{\"_id\": \"f\", \"text\": \"last, no newline\"}");
    std::string ix = dir + "/fail";
    dre_embed_options opts = options();
    EXPECT_EQ(dre_embed(kTiny.c_str(), corpus.c_str(), ix.c_str(), &opts, nullptr), DRE_ERR_FORMAT);
    EXPECT_EQ(std::string(dre_last_error()).rfind(corpus + ":2: malformed JSON", 0), 0u)
        << dre_last_error();
    // Nothing was checkpointed, so nothing is left to resume: the folder is clean again.
    EXPECT_TRUE(files_in(ix).empty());

    ix = dir + "/skip";
    opts.skip_bad_lines = 1;
    std::string errors = dir + "/errors.txt";
    opts.errors_path = errors.c_str();
    dre_embed_summary s;
    ASSERT_EQ(dre_embed(kTiny.c_str(), corpus.c_str(), ix.c_str(), &opts, &s), DRE_OK)
        << dre_last_error();
    EXPECT_EQ(s.n_docs, 3);
    EXPECT_EQ(s.n_skipped, 3);
    index_dump d = dump(ix);
    EXPECT_EQ(d.ids, (std::vector<std::string>{"a", "c", "f"}));
    EXPECT_EQ(d.texts[2], "last, no newline");
    auto listed = lines_of(read_text(errors));
    ASSERT_EQ(listed.size(), 3u);
    std::set<std::string> got(listed.begin(), listed.end());
    EXPECT_EQ(got.count(corpus + ":4: duplicate id \"a\" (already at row 0)"), 1u);
    EXPECT_EQ(got.count(corpus + ":5: empty text"), 1u);
    EXPECT_EQ(listed[0].rfind(corpus + ":2: malformed JSON", 0), 0u);
}

TEST_F(PipelineTest, EmptyCorpusAndMissingCorpusAreErrors) {
    std::string corpus = dir + "/empty.jsonl";
    write_text(corpus, "\n");
    dre_embed_options opts = options();
    EXPECT_EQ(dre_embed(kTiny.c_str(), corpus.c_str(), (dir + "/a").c_str(), &opts, nullptr),
              DRE_ERR_FORMAT);
    EXPECT_NE(std::string(dre_last_error()).find("no documents"), std::string::npos);
    EXPECT_EQ(dre_embed(kTiny.c_str(), (dir + "/none.jsonl").c_str(), (dir + "/b").c_str(), &opts,
                        nullptr),
              DRE_ERR_IO);
}

// Factories that need training are trained on the staged vectors at the end (the corpus
// is smaller than the training sample); searching every list gives Flat's answers.
TEST_F(PipelineTest, TrainedAndGraphFactoriesAgreeWithFlat) {
    dre_embed_options opts = options(1000);
    std::vector<std::string> factories = {"Flat", "IVF4,Flat", "HNSW32"};
    std::vector<std::vector<int64_t>> results;
    std::vector<float> queries;
    for (auto &factory : factories) {
        std::string ix = dir + "/" + factory;
        opts.factory = factory.c_str();
        ASSERT_EQ(dre_embed(kTiny.c_str(), kCorpus.c_str(), ix.c_str(), &opts, nullptr), DRE_OK)
            << factory << ": " << dre_last_error();
        EXPECT_EQ(files_in(ix), kIndexFiles);
        dre_index *index = nullptr;
        ASSERT_EQ(dre_index_open(ix.c_str(), &index), DRE_OK) << dre_last_error();
        EXPECT_STREQ(dre_index_get_info(index)->factory, factory.c_str());
        int dim = dre_index_get_info(index)->dim;
        if (queries.empty()) { // the first 10 documents' own vectors as queries
            queries.resize((size_t)10 * dim);
            ASSERT_EQ(dre_index_vectors(index, 0, 10, queries.data()), DRE_OK);
        }
        if (factory == "IVF4,Flat") ASSERT_EQ(dre_index_set_param(index, "nprobe", 4), DRE_OK);
        if (factory == "HNSW32") ASSERT_EQ(dre_index_set_param(index, "efSearch", 128), DRE_OK);
        std::vector<float> scores(10 * 5);
        std::vector<int64_t> rows(10 * 5);
        ASSERT_EQ(dre_index_search(index, queries.data(), 10, 5, scores.data(), rows.data()),
                  DRE_OK);
        for (int q = 0; q < 10; q++)
            EXPECT_EQ(rows[q * 5], q) << factory; // itself first
        results.push_back(rows);
        dre_index_close(index);
    }
    EXPECT_EQ(results[1], results[0]);
    EXPECT_EQ(results[2], results[0]);
}

} // namespace
