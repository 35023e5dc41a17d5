// model_test.cc — the model loader (config, sentence-transformers files, safetensors,
// fp32 conversion, q/k/v fusion) against what sentence-transformers loaded
// (tests/fixtures/embeddings_*.meta.json, from tools/fixtures/make_embedding_fixtures.py and
// tools/fixtures/make_tiny_model.py), SHA-256 against hashlib, and corrupt folders: each error
// must carry the right status and name the file and tensor.
#include <gtest/gtest.h>

#include <cjson/cJSON.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "dre.h"
#include "model/model.h"
#include "model/safetensors.h"
#include "model/sha256.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace {

using namespace test_util;

const std::string kSource = DRE_SOURCE_DIR;
const std::string kMiniLM = kSource + "/models/all-MiniLM-L6-v2";
const std::string kTiny = kSource + "/tests/fixtures/tiny-bert-cls";

// ---------------------------------------------------------------- SHA-256

std::string hex_of(const void *data, size_t len) {
    char hex[65];
    dre_sha256_hex(data, len, hex);
    return hex;
}

std::vector<unsigned char> pattern(size_t n) {
    std::vector<unsigned char> v(n);
    for (size_t i = 0; i < n; i++)
        v[i] = (unsigned char)((i * 31 + 7) & 255);
    return v;
}

// Digests from Python's hashlib.sha256 (the FIPS 180-2 examples, then lengths around the
// 55/56/64-byte padding boundaries of bytes((i*31+7) & 255 for i in range(n))).
TEST(Sha256, MatchesHashlib) {
    EXPECT_EQ(hex_of("", 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(hex_of("abc", 3), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m56 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    EXPECT_EQ(hex_of(m56, strlen(m56)),
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    const struct {
        size_t n;
        const char *hex;
    } cases[] = {
        {55, "8aa994584139d128848eeebc4e815639ba5ab6e6e39574195a63ac4f14f7c43b"},
        {56, "ad574708f75c044c9b85de64cb568ee7711ff4f36448c6242f053ba8f6cc2b63"},
        {63, "280ed3e8ff1df845b2e7dfe6ac6cee817bef20e783cc65abc41b818b4d2fe076"},
        {64, "c6ab9724ade5b6a7a1edfffb12f3aa9181351355af8fd08c919952ad211339dd"},
        {65, "788367c73c7ddf4c53f65e68cc0d943e6227ab55b0e78ba63ace822b1c6301c0"},
        {119, "3d610547d68216dedf7435a4fb6260353911f6b3fd3f18805ddb8be285d726fe"},
        {120, "1f80156a804cb7862ad113e8200e9d74499723e7c7854d5f48776d3148e09656"},
        {128, "cc548ca2dec1f6fe4f58b2e27aa9c7521607df1130d140b55a4dad0665302356"},
        {1000, "5097e7d587352f5097062ae679f37bda5802d9f875aba14c8cb4d1a188ada179"},
    };
    for (const auto &c : cases) {
        auto data = pattern(c.n);
        EXPECT_EQ(hex_of(data.data(), c.n), c.hex) << "length " << c.n;
        // the same message fed in two pieces, split anywhere
        for (size_t split : {size_t(0), size_t(1), size_t(55), size_t(64), c.n / 2, c.n}) {
            if (split > c.n) continue;
            sha256_ctx ctx;
            dre_sha256_init(&ctx);
            dre_sha256_update(&ctx, data.data(), split);
            dre_sha256_update(&ctx, data.data() + split, c.n - split);
            uint8_t digest[32];
            dre_sha256_final(&ctx, digest);
            char hex[65];
            for (int i = 0; i < 32; i++)
                snprintf(hex + 2 * i, 3, "%02x", digest[i]);
            EXPECT_EQ(std::string(hex), c.hex) << "length " << c.n << " split " << split;
        }
    }
}

TEST(Sha256, MillionAsInChunks) {
    std::string chunk(1000, 'a');
    sha256_ctx ctx;
    dre_sha256_init(&ctx);
    for (int i = 0; i < 1000; i++)
        dre_sha256_update(&ctx, chunk.data(), chunk.size());
    uint8_t digest[32];
    dre_sha256_final(&ctx, digest);
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    EXPECT_EQ(std::string(hex), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// ---------------------------------------------------------------- loading real folders

struct meta_file {
    cJSON *root = nullptr;
    explicit meta_file(const std::string &name) {
        std::string text = read_text(kSource + "/tests/fixtures/embeddings_" + name + ".meta.json");
        root = cJSON_Parse(text.c_str());
    }
    ~meta_file() { cJSON_Delete(root); }
    double num(const char *key) const {
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, key);
        return cJSON_IsNumber(item) ? item->valuedouble : -1;
    }
    std::string str(const char *key) const {
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, key);
        return cJSON_IsString(item) ? item->valuestring : "";
    }
    bool flag(const char *key) const {
        return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, key));
    }
};

// The loaded fp32 value of PyTorch's tensor `name`[row, col] (col only for vectors).
float weight_at(const dre_model *m, const std::string &name, int row, int col) {
    const int h = m->info.hidden, ff = m->info.intermediate;
    if (name == "embeddings.word_embeddings.weight") return m->word_emb[(size_t)row * h + col];
    if (name == "embeddings.position_embeddings.weight") return m->pos_emb[(size_t)row * h + col];
    if (name == "embeddings.token_type_embeddings.weight")
        return m->type_emb[(size_t)row * h + col];
    if (name == "embeddings.LayerNorm.weight") return m->emb_ln_g[col];
    if (name == "embeddings.LayerNorm.bias") return m->emb_ln_b[col];
    int layer = -1, used = 0;
    if (sscanf(name.c_str(), "encoder.layer.%d.%n", &layer, &used) != 1 || used == 0) {
        ADD_FAILURE() << "unexpected probe " << name;
        return NAN;
    }
    const layer_weights &l = m->layers[layer];
    const std::string s = name.substr((size_t)used);
    // fused projection: rows [0, h) query, [h, 2h) key, [2h, 3h) value
    const char *qkv[3] = {"query", "key", "value"};
    for (int j = 0; j < 3; j++) {
        if (s == std::string("attention.self.") + qkv[j] + ".weight")
            return l.qkv_w[(size_t)(j * h + row) * h + col];
        if (s == std::string("attention.self.") + qkv[j] + ".bias") return l.qkv_b[j * h + col];
    }
    if (s == "attention.output.dense.weight") return l.attn_out_w[(size_t)row * h + col];
    if (s == "attention.output.dense.bias") return l.attn_out_b[col];
    if (s == "attention.output.LayerNorm.weight") return l.ln1_g[col];
    if (s == "attention.output.LayerNorm.bias") return l.ln1_b[col];
    if (s == "intermediate.dense.weight") return l.ffn_in_w[(size_t)row * h + col];
    if (s == "intermediate.dense.bias") return l.ffn_in_b[col];
    if (s == "output.dense.weight") return l.ffn_out_w[(size_t)row * ff + col];
    if (s == "output.dense.bias") return l.ffn_out_b[col];
    if (s == "output.LayerNorm.weight") return l.ln2_g[col];
    if (s == "output.LayerNorm.bias") return l.ln2_b[col];
    ADD_FAILURE() << "unexpected probe " << name;
    return NAN;
}

// Every info field and every probed weight against sentence-transformers' view.
void check_against_meta(const std::string &dir, const std::string &fixture) {
    meta_file meta(fixture);
    ASSERT_NE(meta.root, nullptr)
        << "missing fixture; run tools/fixtures/make_embedding_fixtures.py";
    dre_model *model = nullptr;
    ASSERT_EQ(dre_model_open(dir.c_str(), &model), DRE_OK) << dre_last_error();
    const dre_model_info *info = dre_model_get_info(model);
    EXPECT_EQ(std::string(info->name), meta.str("model"));
    EXPECT_EQ(info->n_layers, meta.num("n_layers"));
    EXPECT_EQ(info->hidden, meta.num("hidden"));
    EXPECT_EQ(info->n_heads, meta.num("n_heads"));
    EXPECT_EQ(info->head_dim, meta.num("hidden") / meta.num("n_heads"));
    EXPECT_EQ(info->intermediate, meta.num("intermediate"));
    EXPECT_EQ(info->max_positions, meta.num("max_positions"));
    EXPECT_EQ(info->vocab_size, meta.num("vocab_size"));
    EXPECT_EQ(info->type_vocab_size, meta.num("type_vocab_size"));
    EXPECT_FLOAT_EQ(info->layer_norm_eps, (float)meta.num("layer_norm_eps"));
    EXPECT_EQ(info->max_length, meta.num("max_seq_length"));
    EXPECT_EQ(info->pooling, meta.str("pooling") == "cls" ? DRE_POOL_CLS : DRE_POOL_MEAN);
    EXPECT_EQ(info->normalize != 0, meta.flag("normalize"));
    EXPECT_EQ(std::string(info->weights_sha256), meta.str("weights_sha256"));

    const cJSON *probe;
    int n_probes = 0;
    cJSON_ArrayForEach(probe, cJSON_GetObjectItemCaseSensitive(meta.root, "probes")) {
        std::string name = cJSON_GetObjectItemCaseSensitive(probe, "tensor")->valuestring;
        int row = cJSON_GetObjectItemCaseSensitive(probe, "row")->valueint;
        int col = cJSON_GetObjectItemCaseSensitive(probe, "col")->valueint;
        float want = (float)cJSON_GetObjectItemCaseSensitive(probe, "value")->valuedouble;
        EXPECT_EQ(weight_at(model, name, row, col), want)
            << name << "[" << row << ", " << col << "]";
        n_probes++;
    }
    EXPECT_GT(n_probes, 20);
    dre_model_close(model);
}

// The three dtypes a checkpoint may hold, converted to fp32 bit for bit: bf16 is an fp32's
// top half; fp16's normals, subnormals, signed zeros and infinities map exactly.
TEST(Safetensors, DtypesConvertExactly) {
    const uint16_t bf16[] = {0x3F80, 0xC000, 0x3E20, 0x0000, 0x8000, 0x7F80, 0x0001};
    const float bf16_want[] = {1.0f, -2.0f, 0.15625f, 0.0f, -0.0f, INFINITY, 9.18354962e-41f};
    const uint16_t f16[] = {0x3C00, 0xC000, 0x3500, 0x0001, 0x8000, 0x7C00, 0x7BFF};
    const float f16_want[] = {1.0f, -2.0f, 0.3125f, 5.9604645e-8f, -0.0f, INFINITY, 65504.0f};
    const float f32[] = {1.5f, -0.0f, 3.4e38f};
    float out[7];
    dre_st_to_f32(reinterpret_cast<const uint8_t *>(bf16), ST_BF16, 7, out);
    for (int i = 0; i < 7; i++)
        EXPECT_EQ(0, std::memcmp(&out[i], &bf16_want[i], 4)) << "bf16 " << i << ": " << out[i];
    dre_st_to_f32(reinterpret_cast<const uint8_t *>(f16), ST_F16, 7, out);
    for (int i = 0; i < 7; i++)
        EXPECT_EQ(0, std::memcmp(&out[i], &f16_want[i], 4)) << "f16 " << i << ": " << out[i];
    dre_st_to_f32(reinterpret_cast<const uint8_t *>(f32), ST_F32, 3, out);
    EXPECT_EQ(0, std::memcmp(out, f32, sizeof f32));
}

TEST(Model, LoadsMiniLM) {
    ASSERT_TRUE(fs::exists(kMiniLM + "/model.safetensors"))
        << kMiniLM << " is missing: run tools/setup.sh to install the default model";
    check_against_meta(kMiniLM, "minilm");
    // and the numbers the design names, in case the fixture itself drifted
    dre_model *model = nullptr;
    ASSERT_EQ(dre_model_open(kMiniLM.c_str(), &model), DRE_OK) << dre_last_error();
    const dre_model_info *info = dre_model_get_info(model);
    EXPECT_STREQ(info->name, "all-MiniLM-L6-v2");
    EXPECT_EQ(info->n_layers, 6);
    EXPECT_EQ(info->hidden, 384);
    EXPECT_EQ(info->n_heads, 12);
    EXPECT_EQ(info->head_dim, 32);
    EXPECT_EQ(info->intermediate, 1536);
    EXPECT_EQ(info->max_positions, 512);
    EXPECT_EQ(info->max_length, 256);
    EXPECT_EQ(info->pooling, DRE_POOL_MEAN);
    EXPECT_TRUE(info->normalize);
    dre_model_close(model);
}

TEST(Model, LoadsTinyF16WithBertPrefix) {
    check_against_meta(kTiny, "tiny");
    dre_model *model = nullptr;
    ASSERT_EQ(dre_model_open((kTiny + "/").c_str(), &model), DRE_OK) << dre_last_error();
    EXPECT_STREQ(dre_model_get_info(model)->name, "tiny-bert-cls");
    EXPECT_EQ(dre_model_get_info(model)->pooling, DRE_POOL_CLS);
    dre_model_close(model);
}

TEST(Model, NullArguments) {
    dre_model *model = nullptr;
    EXPECT_EQ(dre_model_open(nullptr, &model), DRE_ERR_INVALID_ARG);
    EXPECT_EQ(dre_model_open(kTiny.c_str(), nullptr), DRE_ERR_INVALID_ARG);
    dre_model_close(nullptr);
}

// ---------------------------------------------------------------- corrupt folders

// A writable copy of the tiny model in a fresh temporary folder.
class CorruptModel : public ::testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/dre_model_test_XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir_ = std::string(tmpl) + "/tiny-bert-cls";
        fs::copy(kTiny, dir_, fs::copy_options::recursive);
        root_ = tmpl;
    }
    void TearDown() override {
        if (!root_.empty()) fs::remove_all(root_);
    }
    std::string path(const std::string &rel) const { return dir_ + "/" + rel; }

    // Rewrites model.safetensors with its JSON header edited by edit; data unchanged.
    void edit_header(const std::function<void(cJSON *)> &edit) {
        std::string bytes = read_text(path("model.safetensors"));
        ASSERT_GE(bytes.size(), 8u);
        uint64_t len = 0;
        for (int i = 7; i >= 0; i--)
            len = len << 8 | (unsigned char)bytes[i];
        cJSON *root = cJSON_ParseWithLength(bytes.data() + 8, len);
        ASSERT_NE(root, nullptr);
        edit(root);
        char *printed = cJSON_PrintUnformatted(root);
        std::string header = printed;
        free(printed);
        cJSON_Delete(root);
        header.append((8 - header.size() % 8) % 8, ' ');
        std::string out(8, '\0');
        for (int i = 0; i < 8; i++)
            out[i] = (char)((header.size() >> (8 * i)) & 255);
        write_text(path("model.safetensors"), out + header + bytes.substr(8 + len));
    }

    void edit_json(const std::string &rel, const std::function<void(cJSON *)> &edit) {
        cJSON *root = cJSON_Parse(read_text(path(rel)).c_str());
        ASSERT_NE(root, nullptr);
        edit(root);
        char *printed = cJSON_Print(root);
        write_text(path(rel), printed);
        free(printed);
        cJSON_Delete(root);
    }

    // Opening must fail with want, and the message must contain every needle.
    void expect_failure(dre_status want, const std::vector<std::string> &needles) {
        dre_model *model = nullptr;
        dre_status got = dre_model_open(dir_.c_str(), &model);
        EXPECT_EQ(got, want) << dre_status_str(got) << ": " << dre_last_error();
        EXPECT_EQ(model, nullptr);
        std::string msg = dre_last_error();
        for (const auto &needle : needles)
            EXPECT_NE(msg.find(needle), std::string::npos)
                << "message \"" << msg << "\" does not mention \"" << needle << "\"";
        if (model) dre_model_close(model);
    }

    std::string root_, dir_;
};

TEST_F(CorruptModel, CopyLoads) {
    dre_model *model = nullptr;
    ASSERT_EQ(dre_model_open(dir_.c_str(), &model), DRE_OK) << dre_last_error();
    dre_model_close(model);
}

TEST_F(CorruptModel, MissingConfig) {
    fs::remove(path("config.json"));
    expect_failure(DRE_ERR_IO, {path("config.json")});
}

TEST_F(CorruptModel, MissingWeights) {
    fs::remove(path("model.safetensors"));
    expect_failure(DRE_ERR_IO, {path("model.safetensors")});
}

TEST_F(CorruptModel, ConfigNotJson) {
    write_text(path("config.json"), "{\n  \"hidden_size\": 32,\n  \"num_hidden_layers\": ,\n}\n");
    expect_failure(DRE_ERR_FORMAT, {path("config.json") + ":3"});
}

TEST_F(CorruptModel, ConfigFieldMissing) {
    edit_json("config.json", [](cJSON *r) { cJSON_DeleteItemFromObject(r, "hidden_size"); });
    expect_failure(DRE_ERR_FORMAT, {"config.json", "hidden_size"});
}

TEST_F(CorruptModel, ConfigHeadsDoNotDivide) {
    edit_json("config.json", [](cJSON *r) {
        cJSON_ReplaceItemInObject(r, "num_attention_heads", cJSON_CreateNumber(3));
    });
    expect_failure(DRE_ERR_FORMAT, {"config.json", "num_attention_heads"});
}

TEST_F(CorruptModel, UnsupportedActivation) {
    edit_json("config.json", [](cJSON *r) {
        cJSON_ReplaceItemInObject(r, "hidden_act", cJSON_CreateString("gelu_new"));
    });
    expect_failure(DRE_ERR_UNSUPPORTED, {"config.json", "gelu_new"});
}

TEST_F(CorruptModel, UnsupportedPositionEmbedding) {
    edit_json("config.json", [](cJSON *r) {
        cJSON_AddStringToObject(r, "position_embedding_type", "relative_key");
    });
    expect_failure(DRE_ERR_UNSUPPORTED, {"config.json", "relative_key"});
}

TEST_F(CorruptModel, UnsupportedPooling) {
    edit_json("1_Pooling/config.json", [](cJSON *r) {
        cJSON_ReplaceItemInObject(r, "pooling_mode", cJSON_CreateString("max"));
    });
    expect_failure(DRE_ERR_UNSUPPORTED, {"1_Pooling/config.json", "max"});
}

TEST_F(CorruptModel, UnsupportedLegacyPoolingFlag) {
    write_text(path("1_Pooling/config.json"),
               "{\"word_embedding_dimension\": 32, \"pooling_mode_cls_token\": false,"
               " \"pooling_mode_mean_tokens\": false, \"pooling_mode_max_tokens\": true}");
    expect_failure(DRE_ERR_UNSUPPORTED, {"1_Pooling/config.json", "pooling_mode_max_tokens"});
}

TEST_F(CorruptModel, LegacyPoolingFlagsAndNoModules) {
    // the older file layout: boolean pooling flags; without modules.json no Normalize
    write_text(path("1_Pooling/config.json"),
               "{\"word_embedding_dimension\": 32, \"pooling_mode_cls_token\": false,"
               " \"pooling_mode_mean_tokens\": true, \"pooling_mode_max_tokens\": false}");
    fs::remove(path("modules.json"));
    fs::remove(path("sentence_bert_config.json"));
    dre_model *model = nullptr;
    ASSERT_EQ(dre_model_open(dir_.c_str(), &model), DRE_OK) << dre_last_error();
    EXPECT_EQ(dre_model_get_info(model)->pooling, DRE_POOL_MEAN);
    EXPECT_EQ(dre_model_get_info(model)->normalize, 0);
    EXPECT_EQ(dre_model_get_info(model)->max_length, 128); // max_position_embeddings
    dre_model_close(model);
}

TEST_F(CorruptModel, MaxSeqLengthCappedByPositions) {
    write_text(path("sentence_bert_config.json"), "{\"max_seq_length\": 100000}");
    dre_model *model = nullptr;
    ASSERT_EQ(dre_model_open(dir_.c_str(), &model), DRE_OK) << dre_last_error();
    EXPECT_EQ(dre_model_get_info(model)->max_length, 128);
    dre_model_close(model);
    write_text(path("sentence_bert_config.json"), "{\"max_seq_length\": 64}");
    ASSERT_EQ(dre_model_open(dir_.c_str(), &model), DRE_OK) << dre_last_error();
    EXPECT_EQ(dre_model_get_info(model)->max_length, 64);
    dre_model_close(model);
}

TEST_F(CorruptModel, UnsupportedModule) {
    edit_json("modules.json", [](cJSON *r) {
        cJSON *dense = cJSON_CreateObject();
        cJSON_AddStringToObject(dense, "type", "sentence_transformers.models.Dense");
        cJSON_AddStringToObject(dense, "path", "3_Dense");
        cJSON_AddItemToArray(r, dense);
    });
    expect_failure(DRE_ERR_UNSUPPORTED, {"modules.json", "Dense"});
}

TEST_F(CorruptModel, TruncatedWeights) {
    std::string bytes = read_text(path("model.safetensors"));
    write_text(path("model.safetensors"), bytes.substr(0, bytes.size() * 6 / 10));
    // the header survives; the tensors whose data was cut off are named
    expect_failure(DRE_ERR_FORMAT, {path("model.safetensors"), "tensor 'bert.", "truncated"});
}

TEST_F(CorruptModel, HeaderLengthBeyondFile) {
    std::string bytes = read_text(path("model.safetensors"));
    std::string len(8, '\0');
    len[0] = (char)0xff, len[1] = (char)0xff, len[2] = (char)0xff, len[3] = (char)0x7f;
    write_text(path("model.safetensors"), len + bytes.substr(8, 1000));
    expect_failure(DRE_ERR_FORMAT, {path("model.safetensors"), "header length"});
}

TEST_F(CorruptModel, ShorterThanHeaderLength) {
    write_text(path("model.safetensors"), "abc");
    expect_failure(DRE_ERR_FORMAT, {path("model.safetensors")});
}

TEST_F(CorruptModel, HeaderNotJson) {
    std::string header = "{\"bert.embeddings.LayerNorm.weight\": {\"dtype\": \"F16\", ";
    std::string len(8, '\0');
    len[0] = (char)header.size();
    write_text(path("model.safetensors"), len + header + std::string(64, '\0'));
    expect_failure(DRE_ERR_FORMAT, {path("model.safetensors"), "JSON"});
}

TEST_F(CorruptModel, MissingTensor) {
    edit_header([](cJSON *r) {
        cJSON_DeleteItemFromObject(r, "bert.encoder.layer.1.output.dense.weight");
    });
    expect_failure(DRE_ERR_FORMAT,
                   {path("model.safetensors"), "encoder.layer.1.output.dense.weight", "not found"});
}

TEST_F(CorruptModel, MisshapedTensor) {
    // same byte count, so only the shape check can catch it
    edit_header([](cJSON *r) {
        cJSON *t = cJSON_GetObjectItem(r, "bert.encoder.layer.0.attention.self.key.weight");
        int shape[2] = {16, 64};
        cJSON_ReplaceItemInObject(t, "shape", cJSON_CreateIntArray(shape, 2));
    });
    expect_failure(DRE_ERR_FORMAT,
                   {path("model.safetensors"), "bert.encoder.layer.0.attention.self.key.weight",
                    "[16, 64]", "[32, 32]"});
}

TEST_F(CorruptModel, UnsupportedDtype) {
    edit_header([](cJSON *r) {
        cJSON *t = cJSON_GetObjectItem(r, "bert.embeddings.LayerNorm.weight");
        cJSON_ReplaceItemInObject(t, "dtype", cJSON_CreateString("I16"));
    });
    expect_failure(DRE_ERR_UNSUPPORTED,
                   {path("model.safetensors"), "bert.embeddings.LayerNorm.weight", "I16"});
}

TEST_F(CorruptModel, UnknownDtype) {
    edit_header([](cJSON *r) {
        cJSON *t = cJSON_GetObjectItem(r, "bert.encoder.layer.1.output.LayerNorm.bias");
        cJSON_ReplaceItemInObject(t, "dtype", cJSON_CreateString("Q4_K"));
    });
    expect_failure(DRE_ERR_FORMAT, {path("model.safetensors"),
                                    "bert.encoder.layer.1.output.LayerNorm.bias", "Q4_K"});
}

TEST_F(CorruptModel, OffsetsDisagreeWithShape) {
    edit_header([](cJSON *r) {
        cJSON *t = cJSON_GetObjectItem(r, "bert.encoder.layer.0.output.dense.bias");
        cJSON *offsets = cJSON_GetObjectItem(t, "data_offsets");
        double end = cJSON_GetArrayItem(offsets, 1)->valuedouble;
        cJSON_ReplaceItemInArray(offsets, 1, cJSON_CreateNumber(end - 2));
    });
    expect_failure(DRE_ERR_FORMAT, {path("model.safetensors"),
                                    "bert.encoder.layer.0.output.dense.bias", "data_offsets"});
}

TEST_F(CorruptModel, OffsetsNegative) {
    edit_header([](cJSON *r) {
        cJSON *t = cJSON_GetObjectItem(r, "bert.embeddings.LayerNorm.bias");
        cJSON *offsets = cJSON_GetObjectItem(t, "data_offsets");
        cJSON_ReplaceItemInArray(offsets, 0, cJSON_CreateNumber(-64));
    });
    expect_failure(DRE_ERR_FORMAT, {path("model.safetensors"), "bert.embeddings.LayerNorm.bias"});
}

TEST_F(CorruptModel, DuplicateTensor) {
    edit_header([](cJSON *r) {
        cJSON *t = cJSON_GetObjectItem(r, "bert.embeddings.LayerNorm.bias");
        cJSON_AddItemToObject(r, "bert.embeddings.LayerNorm.bias", cJSON_Duplicate(t, 1));
    });
    expect_failure(DRE_ERR_FORMAT,
                   {path("model.safetensors"), "bert.embeddings.LayerNorm.bias", "twice"});
}

TEST_F(CorruptModel, ConfigDisagreesWithWeights) {
    edit_json("config.json", [](cJSON *r) {
        cJSON_ReplaceItemInObject(r, "intermediate_size", cJSON_CreateNumber(96));
    });
    expect_failure(DRE_ERR_FORMAT, {path("model.safetensors"), "intermediate.dense.weight",
                                    "[128, 32]", "[96, 32]"});
}

} // namespace
