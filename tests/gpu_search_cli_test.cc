// gpu_search_cli_test.cc — exact GPU search as `dre search` and `dre eval` use it: on the demo
// corpus, a GPU searcher's dense search (fp16 vectors re-scored in fp32, and fp32 vectors)
// gives the ids, order and scores (to 1e-5) that FAISS gives for the same query embeddings
// (--search-precision faiss), and eval the same metrics, in every mode; and the same
// metrics as the CPU searcher. On the CUDA emulation through build/dre-emu.
#include "gpu_test_util.h"

#include <cjson/cJSON.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "test_util.h"

namespace {

using namespace gpu_test;
using namespace test_util;

const std::string kSource = source_dir();
const std::string kBin = binary_dir();
#ifdef DRE_CUDA_EMU
const std::string kDre = kBin + "/dre-emu";
#else
const std::string kDre = kBin + "/dre";
#endif

// stdout of `dre args` run from the source folder; the exit code in *rc.
std::string run(const std::string &args, int *rc) {
    // a file per process: ctest may run this binary's cases side by side (ctest -j)
    const std::string out =
        kBin + "/gpu-search-cli-" + std::to_string(getpid()) + ".out";
    const std::string cmd =
        "cd '" + kSource + "' && '" + kDre + "' " + args + " > '" + out + "' 2> '" + out + ".err'";
    const int status = std::system(cmd.c_str());
    *rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (*rc != 0) std::printf("%s", read_text(out + ".err").c_str());
    const std::string text = read_text(out);
    std::remove(out.c_str());
    std::remove((out + ".err").c_str());
    return text;
}

class GpuSearchCli : public ::testing::Test {
  protected:
    static std::string index_dir, queries;
    static size_t n_queries;
    static void SetUpTestSuite() {
        if (!gpu_available()) return;
        std::string made = kBin + "/gpu-search-cli-XXXXXX";
        std::vector<char> tmpl(made.begin(), made.end());
        tmpl.push_back('\0');
        if (!mkdtemp(tmpl.data())) return;
        index_dir = std::string(tmpl.data()) + "/demo";
        // the demo queries; under the emulation (every query through the emulated encoder,
        // in each of a dozen runs) the first 6 of them, 3 under ASan
        std::vector<std::string> lines = lines_of(read_text(kSource + "/tests/data/queries.jsonl"));
        const size_t keep = sanitized() ? 3 : 6;
        if (emulated() && lines.size() > keep) lines.resize(keep);
        n_queries = lines.size();
        queries = std::string(tmpl.data()) + "/queries.jsonl";
        std::string text;
        for (const std::string &l : lines)
            text += l + "\n";
        write_text(queries, text);
        int rc = 0;
        run("embed -q --device cpu --corpus tests/data/papers.jsonl --index " + index_dir, &rc);
        if (rc != 0) index_dir.clear();
    }
    static void TearDownTestSuite() {
        if (!index_dir.empty())
            std::filesystem::remove_all(std::filesystem::path(index_dir).parent_path());
    }
};
std::string GpuSearchCli::index_dir, GpuSearchCli::queries;
size_t GpuSearchCli::n_queries = 0;

struct result_list {
    std::vector<std::string> ids;
    std::vector<double> scores;
};

// Each query's (id, score) list from `dre search --json` output.
std::vector<result_list> parse(const std::string &json_lines) {
    std::vector<result_list> out;
    for (const std::string &line : lines_of(json_lines)) {
        cJSON *root = cJSON_Parse(line.c_str());
        result_list r;
        const cJSON *results = cJSON_GetObjectItem(root, "results"), *hit;
        cJSON_ArrayForEach(hit, results) {
            r.ids.push_back(cJSON_GetObjectItem(hit, "id")->valuestring);
            r.scores.push_back(cJSON_GetObjectItem(hit, "score")->valuedouble);
        }
        cJSON_Delete(root);
        out.push_back(r);
    }
    return out;
}

TEST_F(GpuSearchCli, SearchOnTheGpuEqualsFaiss) {
    SKIP_WITHOUT_GPU();
    ASSERT_FALSE(index_dir.empty()) << "the demo index could not be made";
    const std::string base = "search --device gpu --json -k 20 --index " + index_dir +
                             " --queries " + queries + " --mode ";
    for (const char *mode : {"dense", "hybrid"}) {
        int rc = 0;
        const auto faiss = parse(run(base + mode + " --search-precision faiss", &rc));
        ASSERT_EQ(0, rc);
        ASSERT_EQ(n_queries, faiss.size());
        for (const char *precision : {"fp16", "fp32"}) {
            SCOPED_TRACE(std::string(mode) + ", GPU " + precision);
            const auto gpu = parse(run(base + mode + " --search-precision " + precision, &rc));
            ASSERT_EQ(0, rc);
            ASSERT_EQ(faiss.size(), gpu.size());
            for (size_t q = 0; q < gpu.size(); q++) {
                EXPECT_EQ(faiss[q].ids, gpu[q].ids) << "query " << q;
                ASSERT_EQ(faiss[q].scores.size(), gpu[q].scores.size());
                for (size_t i = 0; i < gpu[q].scores.size(); i++)
                    EXPECT_NEAR(faiss[q].scores[i], gpu[q].scores[i], 1e-5)
                        << "query " << q << " rank " << i;
            }
        }
    }
}

TEST_F(GpuSearchCli, EvalOnTheGpuEqualsFaissAndTheCpu) {
    SKIP_WITHOUT_GPU();
    ASSERT_FALSE(index_dir.empty()) << "the demo index could not be made";
    const std::string base =
        "eval --index " + index_dir + " --queries " + queries + " --qrels tests/data/qrels.tsv ";
    for (const char *mode : {"dense", "hybrid"}) {
        SCOPED_TRACE(mode);
        int rc = 0;
        const std::string m = std::string("--mode ") + mode;
        const std::string cpu = run(base + m + " --device cpu", &rc);
        ASSERT_EQ(0, rc);
        const std::string faiss = run(base + m + " --device gpu --search-precision faiss", &rc);
        ASSERT_EQ(0, rc);
        const std::string fp16 = run(base + m + " --device gpu", &rc);
        ASSERT_EQ(0, rc);
        const std::string fp32 = run(base + m + " --device gpu --search-precision fp32", &rc);
        ASSERT_EQ(0, rc);
        std::printf("  %s: cpu %s", mode, cpu.c_str());
        EXPECT_TRUE(has(cpu, "nDCG@10")) << cpu;
        EXPECT_EQ(faiss, fp16);
        EXPECT_EQ(faiss, fp32);
        EXPECT_EQ(cpu, fp16) << "the GPU encoder's query vectors changed a metric";
    }
    // and the GPU searched, where asked to
    int rc = 0;
    for (const char *precision : {"fp16", "fp32", "faiss"}) {
        const std::string json =
            run(base + "--json --device gpu --search-precision " + precision, &rc);
        ASSERT_EQ(0, rc);
        const std::string want = !strcmp(precision, "faiss")
                                     ? "\"dense_search\": \"faiss\""
                                     : std::string("\"dense_search\": \"gpu ") + precision + "\"";
        EXPECT_TRUE(has(json, want)) << json;
    }
}

} // namespace
