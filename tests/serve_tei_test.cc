// serve_tei_test.cc — dre serve's Text Embeddings Inference API (serve/tei.c) over real HTTP
// on loopback: /embed and / give /v1/embeddings' vectors bit for bit, normalize false the
// pooled vector before normalisation (as the library's dre_searcher_embed_ids), truncation
// Right and Left at the token level, /tokenize the library's ids with offsets that slice the
// input, /info TEI's fields, and TEI's errors (Validation 413, Empty 400, Overloaded 429,
// the API key). The tiny test model keeps it quick.
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "dre.h"
#include "http_client.h"
#include "test_util.h"

namespace {

using namespace http_client;
using namespace test_util;

const std::string kSource = DRE_SOURCE_DIR;
const std::string kTiny = kSource + "/tests/fixtures/tiny-bert-cls";
const std::string kDre = std::string(DRE_BINARY_DIR) + "/dre";
constexpr int kDim = 32;

// /v1/embeddings' vectors, each as its printed JSON array.
std::vector<std::string> openai_rows(const std::string &body) {
    std::vector<std::string> out;
    cJSON *root = cJSON_Parse(body.c_str());
    const cJSON *item;
    cJSON_ArrayForEach(item, cJSON_GetObjectItem(root, "data")) {
        char *s = cJSON_PrintUnformatted(cJSON_GetObjectItem(item, "embedding"));
        out.push_back(s);
        free(s);
    }
    cJSON_Delete(root);
    return out;
}

// TEI's [[...], ...], each row as its printed JSON array.
std::vector<std::string> tei_rows(const std::string &body) {
    std::vector<std::string> out;
    cJSON *root = cJSON_Parse(body.c_str());
    const cJSON *row;
    cJSON_ArrayForEach(row, root) {
        char *s = cJSON_PrintUnformatted(row);
        out.push_back(s);
        free(s);
    }
    cJSON_Delete(root);
    return out;
}

std::vector<float> floats_of(const std::string &row) {
    std::vector<float> v;
    cJSON *root = cJSON_Parse(row.c_str());
    const cJSON *x;
    cJSON_ArrayForEach(x, root) v.push_back((float)x->valuedouble);
    cJSON_Delete(root);
    return v;
}

// A vector printed as the server prints it.
std::string printed(const float *v) {
    cJSON *arr = cJSON_CreateArray();
    for (int j = 0; j < kDim; j++)
        cJSON_AddItemToArray(arr, cJSON_CreateNumber((double)v[j]));
    char *s = cJSON_PrintUnformatted(arr);
    std::string out = s;
    free(s);
    cJSON_Delete(arr);
    return out;
}

std::string error_type(const std::string &body) {
    cJSON *root = cJSON_Parse(body.c_str());
    const cJSON *t = cJSON_GetObjectItem(root, "error_type");
    std::string s = cJSON_IsString(t) ? t->valuestring : "";
    cJSON_Delete(root);
    return s;
}

// 300 distinct-ish words: past the tiny model's 128 tokens
std::string long_text() {
    std::string t;
    for (int i = 0; i < 300; i++)
        t += "word" + std::to_string(i % 97) + " ";
    return t;
}

class ServeTeiTest : public ::testing::Test {
  protected:
    static std::string root, index_dir;
    dre_searcher *searcher = nullptr;
    dre_server *server = nullptr;
    int port = 0;

    static void SetUpTestSuite() {
        curl_global_init(CURL_GLOBAL_ALL);
        char tmpl[] = DRE_BINARY_DIR "/serve-tei-test-XXXXXX";
        ASSERT_NE(nullptr, mkdtemp(tmpl));
        root = tmpl;
        index_dir = root + "/demo";
        const std::string cmd = "'" + kDre + "' embed -q --device cpu --model '" + kTiny +
                                "' --corpus '" + kSource + "/tests/data/papers.jsonl' --index '" +
                                index_dir + "'";
        ASSERT_EQ(0, std::system(cmd.c_str()));
    }
    static void TearDownTestSuite() {
        std::filesystem::remove_all(root);
        curl_global_cleanup();
    }
    void start(dre_server_options o, dre_precision precision = DRE_PRECISION_FP32) {
        ASSERT_EQ(DRE_OK, dre_searcher_open_with(index_dir.c_str(), kTiny.c_str(), DRE_DEVICE_CPU,
                                                 precision, &searcher))
            << dre_last_error();
        o.port = 0;
        ASSERT_EQ(DRE_OK, dre_server_open(searcher, &o, &server)) << dre_last_error();
        port = dre_server_port(server);
    }
    void start() {
        dre_server_options o;
        dre_server_options_init(&o);
        start(o);
    }
    void TearDown() override {
        dre_server_close(server, 5000);
        dre_searcher_close(searcher);
    }
    // text's ids, whole ([CLS] wordpieces [SEP], no length limit)
    std::vector<int32_t> ids_of(const std::string &text) {
        std::vector<int32_t> ids(text.size() + 2);
        int32_t n = 0;
        EXPECT_EQ(DRE_OK, dre_tokenize(dre_searcher_tokenizer(searcher), text.data(), text.size(),
                                       (int32_t)ids.size(), ids.data(), &n));
        ids.resize((size_t)n);
        return ids;
    }
    // The library's vector of one sequence of ids, printed.
    std::string library_row(const std::vector<int32_t> &ids, int normalize) {
        const int32_t cu[2] = {0, (int32_t)ids.size()};
        std::vector<float> v(kDim);
        EXPECT_EQ(DRE_OK,
                  dre_searcher_embed_ids(searcher, ids.data(), cu, 1, normalize, v.data()))
            << dre_last_error();
        return printed(v.data());
    }
};
std::string ServeTeiTest::root, ServeTeiTest::index_dir;

TEST_F(ServeTeiTest, EmbedEqualsOpenAIEmbeddingsBitForBit) {
    ASSERT_NO_FATAL_FAILURE(start());
    const http_reply openai = request(
        port, "POST", "/v1/embeddings", "{\"input\": [\"a short query\", \"Attention is all\"]}");
    ASSERT_EQ(200, openai.status) << openai.body;
    const auto want = openai_rows(openai.body);
    ASSERT_EQ(2u, want.size());

    http_reply r = request(port, "POST", "/embed", "{\"inputs\": \"a short query\"}");
    ASSERT_EQ(200, r.status) << r.body;
    EXPECT_TRUE(has(r.headers, "Content-Type: application/json")) << r.headers;
    auto got = tei_rows(r.body);
    ASSERT_EQ(1u, got.size()) << r.body; // [[...]] for one string too
    EXPECT_EQ(want[0], got[0]);

    r = request(port, "POST", "/embed",
                "{\"inputs\": [\"a short query\", \"Attention is all\"], \"normalize\": true}");
    ASSERT_EQ(200, r.status) << r.body;
    got = tei_rows(r.body);
    ASSERT_EQ(2u, got.size());
    EXPECT_EQ(want, got);
    EXPECT_EQ(library_row(ids_of("Attention is all"), 1), got[1]);
}

TEST_F(ServeTeiTest, PostRootIsEmbed) {
    ASSERT_NO_FATAL_FAILURE(start());
    const std::string body = "{\"inputs\": [\"one text\", \"two texts\"]}";
    const http_reply embed = request(port, "POST", "/embed", body);
    const http_reply root_reply = request(port, "POST", "/", body);
    ASSERT_EQ(200, embed.status) << embed.body;
    ASSERT_EQ(200, root_reply.status) << root_reply.body;
    EXPECT_EQ(embed.body, root_reply.body);
    EXPECT_EQ(405, request(port, "GET", "/embed").status);
}

TEST_F(ServeTeiTest, NormalizeFalseGivesThePooledVector) {
    ASSERT_NO_FATAL_FAILURE(start());
    const std::string text = "pooled before normalisation";
    http_reply raw = request(port, "POST", "/embed",
                             "{\"inputs\": \"" + text + "\", \"normalize\": false}");
    http_reply unit = request(port, "POST", "/embed", "{\"inputs\": \"" + text + "\"}");
    ASSERT_EQ(200, raw.status) << raw.body;
    ASSERT_EQ(200, unit.status) << unit.body;
    const std::string raw_row = tei_rows(raw.body).at(0);
    const std::vector<float> v = floats_of(raw_row), u = floats_of(tei_rows(unit.body).at(0));
    double sq = 0;
    for (float x : v)
        sq += (double)x * x;
    EXPECT_GT(std::fabs(std::sqrt(sq) - 1.0), 1e-3); // the tiny model's pooled norm is not 1
    for (int j = 0; j < kDim; j++)
        EXPECT_NEAR(u[j], v[j] / std::sqrt(sq), 1e-6) << j;
    EXPECT_EQ(library_row(ids_of(text), 0), raw_row);
    // a batch mixing both keeps each request's own
    std::string mixed_raw, mixed_unit;
    std::thread t([&] {
        mixed_raw = request(port, "POST", "/embed",
                            "{\"inputs\": \"" + text + "\", \"normalize\": false}")
                        .body;
    });
    mixed_unit = request(port, "POST", "/embed", "{\"inputs\": \"" + text + "\"}").body;
    t.join();
    EXPECT_EQ(raw.body, mixed_raw);
    EXPECT_EQ(unit.body, mixed_unit);
}

TEST_F(ServeTeiTest, TruncationRightAndLeft) {
    ASSERT_NO_FATAL_FAILURE(start());
    const std::string text = long_text();
    const std::vector<int32_t> all = ids_of(text);
    const int32_t max = dre_searcher_max_length(searcher);
    ASSERT_GT((int32_t)all.size(), max);

    http_reply r = request(port, "POST", "/embed", "{\"inputs\": \"" + text + "\"}");
    EXPECT_EQ(413, r.status) << r.body;
    EXPECT_EQ("Validation", error_type(r.body)) << r.body;
    EXPECT_TRUE(has(r.body, "less than " + std::to_string(max) + " tokens") &&
                has(r.body, "Given: " + std::to_string(all.size())))
        << r.body;

    r = request(port, "POST", "/embed", "{\"inputs\": \"" + text + "\", \"truncate\": true}");
    ASSERT_EQ(200, r.status) << r.body;
    const std::string right = tei_rows(r.body).at(0);
    const http_reply openai =
        request(port, "POST", "/v1/embeddings", "{\"input\": \"" + text + "\"}");
    EXPECT_EQ(openai_rows(openai.body).at(0), right); // the library cuts on the right too

    r = request(port, "POST", "/embed",
                "{\"inputs\": \"" + text +
                    "\", \"truncate\": true, \"truncation_direction\": \"Left\"}");
    ASSERT_EQ(200, r.status) << r.body;
    const std::string left = tei_rows(r.body).at(0);
    EXPECT_NE(right, left);
    std::vector<int32_t> last = {all.front()}; // [CLS] + the last wordpieces + [SEP]
    last.insert(last.end(), all.end() - 1 - (max - 2), all.end());
    ASSERT_EQ((size_t)max, last.size());
    EXPECT_EQ(library_row(last, 1), left);
}

TEST_F(ServeTeiTest, TokenizeGivesTheLibrarysIdsAndOffsets) {
    ASSERT_NO_FATAL_FAILURE(start());
    const std::string text = "Hello, world! Tokenizers split unbelievably long words.";
    const std::vector<int32_t> want = ids_of(text);
    for (int special : {1, 0}) {
        const http_reply r =
            request(port, "POST", "/tokenize",
                    "{\"inputs\": [\"" + text + "\"], \"add_special_tokens\": " +
                        (special ? "true" : "false") + "}");
        ASSERT_EQ(200, r.status) << r.body;
        cJSON *root = cJSON_Parse(r.body.c_str());
        ASSERT_EQ(1, cJSON_GetArraySize(root)) << r.body;
        const cJSON *tokens = cJSON_GetArrayItem(root, 0), *t;
        std::vector<int32_t> ids;
        std::string joined;
        cJSON_ArrayForEach(t, tokens) {
            ids.push_back((int32_t)cJSON_GetObjectItem(t, "id")->valueint);
            const std::string piece = cJSON_GetObjectItem(t, "text")->valuestring;
            const cJSON *start = cJSON_GetObjectItem(t, "start"),
                        *stop = cJSON_GetObjectItem(t, "stop");
            if (cJSON_IsTrue(cJSON_GetObjectItem(t, "special"))) {
                EXPECT_TRUE(cJSON_IsNull(start) && cJSON_IsNull(stop));
                continue;
            }
            ASSERT_TRUE(cJSON_IsNumber(start) && cJSON_IsNumber(stop));
            EXPECT_EQ(text.substr((size_t)start->valueint,
                                  (size_t)(stop->valueint - start->valueint)),
                      piece);
            joined += piece;
        }
        cJSON_Delete(root);
        const std::vector<int32_t> expected =
            special ? want : std::vector<int32_t>(want.begin() + 1, want.end() - 1);
        EXPECT_EQ(expected, ids);
        std::string no_spaces;
        for (char c : text)
            if (c != ' ') no_spaces += c;
        EXPECT_EQ(no_spaces, joined); // the pieces cover the text
    }
}

// model_dtype names the CPU encoder's --precision
TEST_F(ServeTeiTest, InfoModelDtypeIsThePrecision) {
    dre_server_options o;
    dre_server_options_init(&o);
    char why[256];
    if (dre_cpu_path(DRE_PRECISION_BF16, why, sizeof why) != DRE_OK)
        GTEST_SKIP() << "this CPU runs no bf16 path: " << why;
    ASSERT_NO_FATAL_FAILURE(start(o, DRE_PRECISION_BF16));
    const http_reply r = request(port, "GET", "/info");
    EXPECT_TRUE(r.body.find("\"model_dtype\": \"bfloat16\"") != std::string::npos) << r.body;
}

TEST_F(ServeTeiTest, InfoHasTeisFields) {
    ASSERT_NO_FATAL_FAILURE(start());
    const http_reply r = request(port, "GET", "/info");
    ASSERT_EQ(200, r.status) << r.body;
    cJSON *root = cJSON_Parse(r.body.c_str());
    ASSERT_NE(nullptr, root) << r.body;
    EXPECT_STREQ("tiny-bert-cls", cJSON_GetObjectItem(root, "model_id")->valuestring);
    EXPECT_TRUE(cJSON_IsNull(cJSON_GetObjectItem(root, "model_sha")));
    EXPECT_STREQ("float32", cJSON_GetObjectItem(root, "model_dtype")->valuestring);
    EXPECT_STREQ("cls", cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "model_type"),
                                                                "embedding"),
                                            "pooling")
                            ->valuestring);
    EXPECT_EQ(dre_searcher_max_length(searcher),
              cJSON_GetObjectItem(root, "max_input_length")->valueint);
    for (const char *field : {"max_concurrent_requests", "max_batch_tokens",
                              "max_client_batch_size", "tokenization_workers", "dim", "documents"})
        EXPECT_TRUE(cJSON_IsNumber(cJSON_GetObjectItem(root, field))) << field;
    EXPECT_TRUE(cJSON_IsFalse(cJSON_GetObjectItem(root, "auto_truncate")));
    EXPECT_TRUE(cJSON_IsString(cJSON_GetObjectItem(root, "version")));
    cJSON_Delete(root);
}

TEST_F(ServeTeiTest, ErrorsInTeisShape) {
    ASSERT_NO_FATAL_FAILURE(start());
    http_reply r = request(port, "POST", "/embed", "{\"inputs\": []}");
    EXPECT_EQ(400, r.status);
    EXPECT_EQ("Empty", error_type(r.body)) << r.body;
    r = request(port, "POST", "/embed", "");
    EXPECT_EQ(400, r.status);
    EXPECT_EQ("Empty", error_type(r.body)) << r.body;
    r = request(port, "POST", "/embed", "{not json");
    EXPECT_EQ(422, r.status);
    EXPECT_EQ("Validation", error_type(r.body)) << r.body;
    r = request(port, "POST", "/embed", "{\"inputs\": \"x\", \"prompt_name\": \"nope\"}");
    EXPECT_EQ(413, r.status);
    EXPECT_EQ("Validation", error_type(r.body)) << r.body;
    r = request(port, "POST", "/embed", "{\"inputs\": \"x\", \"prompt_name\": \"query\"}");
    EXPECT_EQ(200, r.status) << r.body;
    r = request(port, "POST", "/tokenize", "{\"inputs\": []}");
    EXPECT_EQ(400, r.status);
    EXPECT_EQ("Empty", error_type(r.body)) << r.body;
}

TEST_F(ServeTeiTest, AFullQueueAnswers429Overloaded) {
    dre_server_options o;
    dre_server_options_init(&o);
    o.max_queue = 1;
    o.max_wait_ms = 500; // the first request waits in the queue for half a second
    ASSERT_NO_FATAL_FAILURE(start(o));
    http_reply first;
    std::thread t([&] { first = request(port, "POST", "/embed", "{\"inputs\": \"one\"}"); });
    usleep(150 * 1000);
    const http_reply second = request(port, "POST", "/embed", "{\"inputs\": \"two\"}");
    t.join();
    EXPECT_EQ(200, first.status) << first.body;
    EXPECT_EQ(429, second.status) << second.body;
    EXPECT_EQ("Overloaded", error_type(second.body)) << second.body;
    EXPECT_TRUE(has(second.headers, "Retry-After: 1")) << second.headers;
}

TEST_F(ServeTeiTest, TheApiKeyGuardsTeisRoutes) {
    dre_server_options o;
    dre_server_options_init(&o);
    o.api_key = "s3cret-key";
    ASSERT_NO_FATAL_FAILURE(start(o));
    for (const char *path : {"/embed", "/", "/tokenize"}) {
        http_reply r = request(port, "POST", path, "{\"inputs\": \"x\"}");
        EXPECT_EQ(401, r.status) << path;
        EXPECT_EQ("Unauthorized", error_type(r.body)) << r.body;
        r = request(port, "POST", path, "{\"inputs\": \"x\"}", "Bearer s3cret-key");
        EXPECT_EQ(200, r.status) << path << " " << r.body;
    }
}

} // namespace
