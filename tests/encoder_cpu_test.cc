// encoder_cpu_test.cc — the fp32 CPU reference encoder against sentence-transformers
// (fp32, CPU): for every fixture text, the Hugging Face token ids from
// tests/fixtures/embeddings_*.jsonl go through our encoder and the embedding must have
// 1 - cosine <= 1e-9 to the reference in embeddings_*.f32
// (tools/fixtures/make_embedding_fixtures.py, tools/fixtures/make_tiny_model.py). Then the same end
// to end through dre_tokenize and dre_encode_texts.
#include <gtest/gtest.h>

#include <cjson/cJSON.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "cpu/encoder.h"
#include "cpu/gemm.h"
#include "cpu/ops.h"
#include "cpu_amx_modes.h"
#include "dre.h"
#include "model/model.h"
#include "test_util.h"

namespace {

using namespace test_util;

const std::string kSource = DRE_SOURCE_DIR;
const std::string kMiniLM = kSource + "/models/all-MiniLM-L6-v2";
const std::string kTiny = kSource + "/tests/fixtures/tiny-bert-cls";

struct reference {
    std::vector<std::string> kinds, texts;
    std::vector<std::vector<int32_t>> ids;
    std::vector<float> emb; // [n, dim]
    int dim = 0;
    size_t size() const { return texts.size(); }
};

// Reads embeddings_<name>.jsonl / .f32 / .meta.json.
void load_reference(const std::string &name, reference *ref) {
    const std::string base = kSource + "/tests/fixtures/embeddings_" + name;
    std::ifstream meta_in(base + ".meta.json");
    ASSERT_TRUE(meta_in) << base
                         << ".meta.json missing: run tools/fixtures/make_embedding_fixtures.py";
    std::stringstream ss;
    ss << meta_in.rdbuf();
    cJSON *meta = cJSON_Parse(ss.str().c_str());
    ASSERT_NE(meta, nullptr);
    ref->dim = cJSON_GetObjectItem(meta, "dim")->valueint;
    int n = cJSON_GetObjectItem(meta, "n_texts")->valueint;
    cJSON_Delete(meta);

    std::ifstream lines(base + ".jsonl");
    ASSERT_TRUE(lines);
    std::string line;
    while (std::getline(lines, line)) {
        cJSON *row = cJSON_Parse(line.c_str());
        ASSERT_NE(row, nullptr) << line;
        ref->kinds.push_back(cJSON_GetObjectItem(row, "kind")->valuestring);
        ref->texts.push_back(cJSON_GetObjectItem(row, "text")->valuestring);
        std::vector<int32_t> ids;
        const cJSON *id;
        cJSON_ArrayForEach(id, cJSON_GetObjectItem(row, "ids")) ids.push_back(id->valueint);
        ref->ids.push_back(ids);
        cJSON_Delete(row);
    }
    ASSERT_EQ((int)ref->size(), n);
    std::ifstream f32(base + ".f32", std::ios::binary);
    ref->emb.resize((size_t)n * ref->dim);
    f32.read(reinterpret_cast<char *>(ref->emb.data()), (std::streamsize)(ref->emb.size() * 4));
    ASSERT_EQ(f32.gcount(), (std::streamsize)(ref->emb.size() * 4)) << base << ".f32 too short";
}

// Every text's 1 - cosine to the reference within kCpuParity (test_util.h); prints the worst
// per kind.
void expect_parity(const std::string &label, const reference &ref, const std::vector<float> &out) {
    std::map<std::string, std::pair<double, size_t>> worst; // kind -> (cosine, text index)
    double worst_all = 1.0;
    for (size_t i = 0; i < ref.size(); i++) {
        double c = cosine(&out[i * ref.dim], &ref.emb[i * ref.dim], ref.dim);
        EXPECT_LE(1.0 - c, kCpuParity)
            << label << " text " << i << " (" << ref.kinds[i] << ", " << ref.ids[i].size()
            << " tokens): " << ref.texts[i].substr(0, 80);
        auto it = worst.find(ref.kinds[i]);
        if (it == worst.end() || c < it->second.first) worst[ref.kinds[i]] = {c, i};
        worst_all = std::min(worst_all, c);
    }
    // 1 - cosine, since the cosines themselves print as 1.0000000
    printf("[ parity   ] %s: %zu texts, worst cosine %.10f (1 - cos = %.1e); by kind:",
           label.c_str(), ref.size(), worst_all, 1.0 - worst_all);
    for (const auto &w : worst)
        printf(" %s %.1e", w.first.c_str(), 1.0 - w.second.first);
    printf("\n");
}

struct model_handle {
    dre_model *model = nullptr;
    ~model_handle() { dre_model_close(model); }
};

void open_model(const std::string &dir, model_handle *h) {
    ASSERT_TRUE(std::filesystem::exists(dir + "/model.safetensors"))
        << dir << " is missing: run tools/setup.sh to install the default model";
    ASSERT_EQ(dre_model_open(dir.c_str(), &h->model), DRE_OK) << dre_last_error();
}

// Packs the fixture ids in input order into batches of at most budget tokens and
// encodes them with the CPU encoder.
void encode_fixture_ids(const dre_model *model, const reference &ref, int32_t budget,
                        std::vector<float> *out, dre_precision precision = DRE_PRECISION_FP32) {
    cpu_encoder *enc = nullptr;
    ASSERT_EQ(dre_cpu_encoder_create(model, budget, precision, &enc), DRE_OK) << dre_last_error();
    out->assign(ref.size() * ref.dim, 0.0f);
    size_t next = 0;
    while (next < ref.size()) {
        std::vector<int32_t> ids, cu{0};
        size_t first = next;
        while (next < ref.size() && (int32_t)(ids.size() + ref.ids[next].size()) <= budget) {
            ids.insert(ids.end(), ref.ids[next].begin(), ref.ids[next].end());
            cu.push_back((int32_t)ids.size());
            next++;
        }
        ASSERT_GT(next, first);
        ASSERT_EQ(dre_cpu_encoder_encode(enc, ids.data(), cu.data(), (int32_t)(cu.size() - 1),
                                         &(*out)[first * ref.dim]),
                  DRE_OK)
            << dre_last_error();
    }
    dre_cpu_encoder_destroy(enc);
}

TEST(EncoderCpu, MatchesSentenceTransformersMiniLM) {
    reference ref;
    ASSERT_NO_FATAL_FAILURE(load_reference("minilm", &ref));
    model_handle m;
    ASSERT_NO_FATAL_FAILURE(open_model(kMiniLM, &m));
    ASSERT_EQ(ref.dim, m.model->info.hidden);
    std::vector<float> out;
    ASSERT_NO_FATAL_FAILURE(encode_fixture_ids(m.model, ref, 4096, &out));
    expect_parity("all-MiniLM-L6-v2 (fixture ids)", ref, out);
}

TEST(EncoderCpu, MatchesSentenceTransformersTinyF16Cls) {
    reference ref;
    ASSERT_NO_FATAL_FAILURE(load_reference("tiny", &ref));
    model_handle m;
    ASSERT_NO_FATAL_FAILURE(open_model(kTiny, &m));
    ASSERT_EQ(ref.dim, m.model->info.hidden);
    std::vector<float> out;
    ASSERT_NO_FATAL_FAILURE(encode_fixture_ids(m.model, ref, 512, &out));
    expect_parity("tiny-bert-cls (fixture ids)", ref, out);
}

// Keeps every stride-th text of a reference (all kinds still in)
void every_nth(reference *ref, size_t stride) {
    if (stride <= 1) return;
    reference kept;
    kept.dim = ref->dim;
    for (size_t i = 0; i < ref->size(); i += stride) {
        kept.kinds.push_back(ref->kinds[i]), kept.texts.push_back(ref->texts[i]);
        kept.ids.push_back(ref->ids[i]);
        kept.emb.insert(kept.emb.end(), ref->emb.begin() + i * ref->dim,
                        ref->emb.begin() + (i + 1) * ref->dim);
    }
    *ref = kept;
}

// --precision bf16: the four products of each layer in bf16 (sums in fp32). Its contract:
// cosine >= 0.999 per text to sentence-transformers fp32 (issue 24's bound; measured here
// about 0.9999). And it must really be bf16: some text differs from fp32 by more than fp32's
// own rounding (fp32 is within 1e-9 of the reference, MatchesSentenceTransformersMiniLM).
void expect_bf16_contract(const std::string &dir, const std::string &name, int32_t budget,
                          size_t stride = 1) {
    if (!dre_cpu_bf16_supported()) GTEST_SKIP() << "this CPU has no AVX-512 BF16";
    reference ref;
    ASSERT_NO_FATAL_FAILURE(load_reference(name, &ref));
    every_nth(&ref, stride);
    model_handle m;
    ASSERT_NO_FATAL_FAILURE(open_model(dir, &m));
    std::vector<float> out;
    ASSERT_NO_FATAL_FAILURE(encode_fixture_ids(m.model, ref, budget, &out, DRE_PRECISION_BF16));
    double worst = 1.0;
    for (size_t i = 0; i < ref.size(); i++) {
        const double c = cosine(&out[i * ref.dim], &ref.emb[i * ref.dim], ref.dim);
        EXPECT_GE(c, 0.999) << name << " text " << i << ": " << ref.texts[i].substr(0, 60);
        worst = std::min(worst, c);
    }
    std::printf("%s bf16: worst cosine to sentence-transformers fp32 %.7f over %zu texts\n",
                name.c_str(), worst, ref.size());
    EXPECT_LT(worst, 1.0 - 1e-7) << "bf16 gave fp32's embeddings: was it bf16?";
}

TEST(EncoderCpu, Bf16WithinItsContractMiniLM) { expect_bf16_contract(kMiniLM, "minilm", 4096); }
TEST(EncoderCpu, Bf16WithinItsContractTinyF16Cls) { expect_bf16_contract(kTiny, "tiny", 512); }

TEST(EncoderCpu, Bf16OnTheGpuOrUnknownIsAClearError) {
    model_handle m;
    ASSERT_NO_FATAL_FAILURE(open_model(kTiny, &m));
    dre_encoder *enc = nullptr;
    EXPECT_EQ(DRE_ERR_INVALID_ARG,
              dre_encoder_open_with(m.model, DRE_DEVICE_GPU, 0, DRE_PRECISION_BF16, &enc));
    EXPECT_EQ(nullptr, enc);
    EXPECT_NE(std::string(dre_last_error()).find("--device cpu"), std::string::npos)
        << dre_last_error();
    EXPECT_EQ(DRE_ERR_INVALID_ARG,
              dre_encoder_open_with(m.model, DRE_DEVICE_CPU, 0, (dre_precision)7, &enc));
    dre_precision p;
    EXPECT_EQ(DRE_ERR_INVALID_ARG, dre_precision_parse("fp16", &p));
    ASSERT_EQ(DRE_OK, dre_precision_parse("bf16", &p));
    EXPECT_EQ(DRE_PRECISION_BF16, p);
    EXPECT_STREQ("bf16", dre_precision_name(p));
    if (!dre_cpu_bf16_supported()) { // the CPU says why it cannot
        EXPECT_EQ(DRE_ERR_UNSUPPORTED,
                  dre_encoder_open_with(m.model, DRE_DEVICE_CPU, 0, DRE_PRECISION_BF16, &enc));
        EXPECT_NE(std::string(dre_last_error()).find("AVX-512 BF16"), std::string::npos);
    }
}

// --precision int8: the four products' weights as int8 (a scale per 64 weights of a column),
// the activations in bf16, sums in fp32. Its contract, issue 24's: cosine >= 0.999 per text
// to sentence-transformers fp32 and to dre's own fp32 (both printed; measured 0.99946 on
// MiniLM). The tiny model is held to 0.998: its random weights (initializer range 0.5,
// hidden 32) amplify any weight error about ten times MiniLM's (bf16's worst there is 0.99979
// against 0.99997), and its products are too narrow (k = 32) for a group to be finer than a
// column. It must really be int8: not bf16's embeddings nor fp32's. Then the same texts one at
// a time (queries: codes widened in registers) at 1 thread must give the batches' bits (a
// panel widened once, 2 threads).
void expect_int8_contract(const std::string &dir, const std::string &name, int32_t budget,
                          double bound, size_t stride = 1) {
    if (!dre_cpu_int8_supported()) GTEST_SKIP() << "this CPU has no AVX-512 BF16";
    reference ref;
    ASSERT_NO_FATAL_FAILURE(load_reference(name, &ref));
    every_nth(&ref, stride);
    model_handle m;
    ASSERT_NO_FATAL_FAILURE(open_model(dir, &m));
    std::vector<float> out, fp32, bf16;
    ASSERT_NO_FATAL_FAILURE(encode_fixture_ids(m.model, ref, budget, &out, DRE_PRECISION_INT8));
    ASSERT_NO_FATAL_FAILURE(encode_fixture_ids(m.model, ref, budget, &fp32));
    ASSERT_NO_FATAL_FAILURE(encode_fixture_ids(m.model, ref, budget, &bf16, DRE_PRECISION_BF16));
    double worst = 1.0, worst_fp32 = 1.0, worst_bf16 = 1.0;
    for (size_t i = 0; i < ref.size(); i++) {
        const double c = cosine(&out[i * ref.dim], &ref.emb[i * ref.dim], ref.dim);
        const double c32 = cosine(&out[i * ref.dim], &fp32[i * ref.dim], ref.dim);
        EXPECT_GE(c, bound) << name << " text " << i << ": " << ref.texts[i].substr(0, 60);
        EXPECT_GE(c32, bound) << name << " text " << i << " against dre fp32";
        worst = std::min(worst, c), worst_fp32 = std::min(worst_fp32, c32);
        worst_bf16 = std::min(worst_bf16, cosine(&out[i * ref.dim], &bf16[i * ref.dim], ref.dim));
    }
    std::printf("%s int8: worst cosine %.7f to sentence-transformers fp32, %.7f to dre fp32 "
                "over %zu texts\n",
                name.c_str(), worst, worst_fp32, ref.size());
    EXPECT_LT(worst, 1.0 - 1e-7) << "int8 gave fp32's embeddings: was it int8?";
    EXPECT_LT(worst_bf16, 1.0 - 1e-7) << "int8 gave bf16's embeddings: was it int8?";

    // one text at a time (a tile of rows at most: the codes widened in registers) and at
    // 1 thread: the same bits as the batches
    cpu_encoder *enc = nullptr;
    ASSERT_EQ(dre_cpu_encoder_create(m.model, budget, DRE_PRECISION_INT8, &enc), DRE_OK);
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    std::vector<float> one(ref.dim);
    for (size_t i = 0; i < ref.size(); i += 7) {
        const int32_t cu[2] = {0, (int32_t)ref.ids[i].size()};
        ASSERT_EQ(dre_cpu_encoder_encode(enc, ref.ids[i].data(), cu, 1, one.data()), DRE_OK);
        for (int d = 0; d < ref.dim; d++)
            ASSERT_EQ(one[d], out[i * ref.dim + d]) << "text " << i << " alone, 1 thread";
    }
    omp_set_num_threads(threads);
    dre_cpu_encoder_destroy(enc);
}

TEST(EncoderCpu, Int8WithinItsContractMiniLM) {
    expect_int8_contract(kMiniLM, "minilm", 4096, 0.999);
}
TEST(EncoderCpu, Int8WithinItsContractTinyF16Cls) {
    expect_int8_contract(kTiny, "tiny", 512, 0.998);
}

// The same contracts with every product and attention on AMX tiles: on the C model of the
// tiles everywhere (cpu/amx_emu.c: the AMX path's packing, padding and driver, whatever the
// CPU), and on the tiles themselves where the CPU has them. The int8 contract's texts alone
// at 1 thread must again give the batches' bits: on AMX every row count takes the tiles.
// MiniLM's on every fifth text: the model runs a few hundred times slower than the tiles.
void on_amx_tiles(const std::function<void()> &contract) {
    if (!dre_cpu_bf16_supported()) GTEST_SKIP() << "this CPU has no AVX-512 BF16";
    for (cpu_amx_mode mode : amx_modes()) {
        if (mode == CPU_AMX_OFF) continue; // the contracts above
        const amx_mode_scope scope(mode);
        SCOPED_TRACE(amx_mode_name(mode));
        std::printf("%s:\n", amx_mode_name(mode));
        contract();
    }
}

TEST(EncoderCpu, Bf16OnAmxTilesWithinItsContractMiniLM) {
    on_amx_tiles([] { expect_bf16_contract(kMiniLM, "minilm", 4096, 5); });
}
TEST(EncoderCpu, Bf16OnAmxTilesWithinItsContractTinyF16Cls) {
    on_amx_tiles([] { expect_bf16_contract(kTiny, "tiny", 512); });
}
TEST(EncoderCpu, Int8OnAmxTilesWithinItsContractMiniLM) {
    on_amx_tiles([] { expect_int8_contract(kMiniLM, "minilm", 4096, 0.999, 5); });
}
TEST(EncoderCpu, Int8OnAmxTilesWithinItsContractTinyF16Cls) {
    on_amx_tiles([] { expect_int8_contract(kTiny, "tiny", 512, 0.998); });
}

TEST(EncoderCpu, Int8OnTheGpuOrWithoutAvx512Bf16IsAClearError) {
    model_handle m;
    ASSERT_NO_FATAL_FAILURE(open_model(kTiny, &m));
    dre_encoder *enc = nullptr;
    EXPECT_EQ(DRE_ERR_INVALID_ARG,
              dre_encoder_open_with(m.model, DRE_DEVICE_GPU, 0, DRE_PRECISION_INT8, &enc));
    EXPECT_EQ(nullptr, enc);
    EXPECT_NE(std::string(dre_last_error()).find("--device cpu"), std::string::npos)
        << dre_last_error();
    dre_precision p;
    ASSERT_EQ(DRE_OK, dre_precision_parse("int8", &p));
    EXPECT_EQ(DRE_PRECISION_INT8, p);
    EXPECT_STREQ("int8", dre_precision_name(p));
    EXPECT_EQ(DRE_ERR_INVALID_ARG, dre_precision_parse("int4", &p));
    EXPECT_NE(std::string(dre_last_error()).find("fp32, bf16 or int8"), std::string::npos);
    if (!dre_cpu_int8_supported()) { // the CPU says why it cannot
        EXPECT_EQ(DRE_ERR_UNSUPPORTED,
                  dre_encoder_open_with(m.model, DRE_DEVICE_CPU, 0, DRE_PRECISION_INT8, &enc));
        EXPECT_NE(std::string(dre_last_error()).find("precision int8 needs"), std::string::npos);
        EXPECT_NE(std::string(dre_last_error()).find("AVX-512 BF16"), std::string::npos);
    } else {
        ASSERT_EQ(DRE_OK,
                  dre_encoder_open_with(m.model, DRE_DEVICE_CPU, 0, DRE_PRECISION_INT8, &enc));
        dre_encoder_close(enc);
    }
}

// A sequence's embedding must not depend on what else is in its batch.
TEST(EncoderCpu, PackingDoesNotChangeResults) {
    reference ref;
    ASSERT_NO_FATAL_FAILURE(load_reference("minilm", &ref));
    model_handle m;
    ASSERT_NO_FATAL_FAILURE(open_model(kMiniLM, &m));
    reference few;
    few.dim = ref.dim;
    for (size_t i : {size_t(0), size_t(85), size_t(170), size_t(185), size_t(190), size_t(191)}) {
        few.kinds.push_back(ref.kinds[i]);
        few.texts.push_back(ref.texts[i]);
        few.ids.push_back(ref.ids[i]);
    }
    std::vector<float> packed, alone;
    ASSERT_NO_FATAL_FAILURE(encode_fixture_ids(m.model, few, 4096, &packed));
    ASSERT_NO_FATAL_FAILURE(encode_fixture_ids(m.model, few, 256, &alone)); // one per batch
    // equal up to BLAS blocking order; attention leaking across sequences would be >> 1e-3
    float max_diff = 0;
    for (size_t j = 0; j < packed.size(); j++)
        max_diff = std::max(max_diff, std::fabs(packed[j] - alone[j]));
    printf("[ packing  ] max |packed - alone| = %.1e\n", max_diff);
    EXPECT_LT(max_diff, 1e-5f);
}

TEST(EncoderCpu, SubmitCollectEqualsEncode) {
    reference ref;
    ASSERT_NO_FATAL_FAILURE(load_reference("tiny", &ref));
    model_handle m;
    ASSERT_NO_FATAL_FAILURE(open_model(kTiny, &m));
    dre_encoder *enc = nullptr;
    ASSERT_EQ(DRE_OK, dre_encoder_open(m.model, DRE_DEVICE_CPU, 512, &enc)) << dre_last_error();
    expect_submit_collect_equals_encode(enc, ref.ids, dre_encoder_max_length(enc));
    dre_encoder_close(enc);
}

// Every batch is checked once, by the public encoder, before a backend sees it.
TEST(EncoderCpu, RejectsBadBatches) {
    model_handle m;
    ASSERT_NO_FATAL_FAILURE(open_model(kTiny, &m));
    dre_encoder *enc = nullptr;
    ASSERT_EQ(dre_encoder_open(m.model, DRE_DEVICE_CPU, 128, &enc), DRE_OK) << dre_last_error();
    ASSERT_EQ(dre_encoder_budget_tokens(enc), 128);
    std::vector<int32_t> ids(200, 101);
    std::vector<float> out(4 * 32);
    int32_t empty_seq[] = {0, 3, 3};
    EXPECT_EQ(dre_encoder_encode(enc, ids.data(), empty_seq, 2, out.data()), DRE_ERR_INVALID_ARG);
    int32_t over_budget[] = {0, 100, 170};
    EXPECT_EQ(dre_encoder_encode(enc, ids.data(), over_budget, 2, out.data()), DRE_ERR_INVALID_ARG);
    EXPECT_NE(std::string(dre_last_error()).find("budget of 128"), std::string::npos);
    int32_t not_from_zero[] = {1, 3};
    EXPECT_EQ(dre_encoder_submit(enc, ids.data(), not_from_zero, 1), DRE_ERR_INVALID_ARG);
    int32_t ok[] = {0, 3};
    ids[1] = 30522; // one past the vocabulary
    EXPECT_EQ(dre_encoder_encode(enc, ids.data(), ok, 1, out.data()), DRE_ERR_INVALID_ARG);
    EXPECT_NE(std::string(dre_last_error()).find("30522"), std::string::npos);
    ids[1] = 101;
    EXPECT_EQ(dre_encoder_encode(enc, ids.data(), ok, 1, out.data()), DRE_OK);
    // at most DRE_ENCODER_DEPTH batches queued; nothing to collect when none is
    for (int i = 0; i < DRE_ENCODER_DEPTH; i++)
        EXPECT_EQ(dre_encoder_submit(enc, ids.data(), ok, 1), DRE_OK) << dre_last_error();
    EXPECT_EQ(dre_encoder_submit(enc, ids.data(), ok, 1), DRE_ERR_INVALID_ARG);
    for (int i = 0; i < DRE_ENCODER_DEPTH; i++)
        EXPECT_EQ(dre_encoder_collect(enc, out.data(), nullptr), DRE_OK) << dre_last_error();
    EXPECT_EQ(dre_encoder_collect(enc, out.data(), nullptr), DRE_ERR_INVALID_ARG);
    // the GPU encoder's profiling hooks are not the CPU's
    double ms[DRE_OP_COUNT];
    EXPECT_EQ(dre_encoder_profile(enc, ids.data(), ok, 1, ms), DRE_ERR_UNSUPPORTED);
    EXPECT_EQ(dre_encoder_variant(enc, DRE_FAMILY_GELU), nullptr);
    dre_encoder_close(enc);

    // the public encoder: device, dim, budget, and max length from the model
    dre_encoder *pub = nullptr;
    ASSERT_EQ(dre_encoder_open(m.model, DRE_DEVICE_CPU, 0, &pub), DRE_OK) << dre_last_error();
    EXPECT_EQ(dre_encoder_device(pub), DRE_DEVICE_CPU);
    EXPECT_EQ(dre_encoder_dim(pub), 32);
    EXPECT_EQ(dre_encoder_budget_tokens(pub), 16384);
    int32_t too_long[] = {0, 129};
    EXPECT_EQ(dre_encoder_encode(pub, ids.data(), too_long, 1, out.data()), DRE_ERR_INVALID_ARG);
    dre_encoder_close(pub);
}

// A build without CUDA (cmake -DDRE_CUDA=OFF) has no GPU, and says why when asked for one.
TEST(EncoderCpu, GpuInABuildWithoutCudaSaysSo) {
#if DRE_WITH_CUDA
    GTEST_SKIP() << "built with CUDA: encoder_gpu_test covers --device gpu";
#else
    EXPECT_EQ(0, dre_gpu_count());
    model_handle m;
    ASSERT_NO_FATAL_FAILURE(open_model(kTiny, &m));
    dre_encoder *enc = nullptr;
    EXPECT_EQ(DRE_ERR_NO_GPU, dre_encoder_open(m.model, DRE_DEVICE_GPU, 0, &enc));
    EXPECT_EQ(nullptr, enc);
    EXPECT_NE(std::string(dre_last_error()).find("built without CUDA"), std::string::npos)
        << dre_last_error();
    const float v[4] = {1, 0, 0, 0};
    dre_gpu_search *gs = nullptr;
    EXPECT_EQ(DRE_ERR_NO_GPU, dre_gpu_search_open(v, 1, 4, &gs));
    EXPECT_NE(std::string(dre_last_error()).find("built without CUDA"), std::string::npos);
    ASSERT_EQ(DRE_OK, dre_encoder_open(m.model, DRE_DEVICE_AUTO, 0, &enc)) << dre_last_error();
    EXPECT_EQ(DRE_DEVICE_CPU, dre_encoder_device(enc));
    dre_encoder_close(enc);
#endif
}

// ---------------------------------------------------------------- end to end

// Our tokenizer's ids, then dre_encode_texts (threads, length sort, several batches,
// scatter back) against the reference embeddings.
void check_encode_texts(const std::string &dir, const std::string &name, int32_t budget) {
    reference ref;
    ASSERT_NO_FATAL_FAILURE(load_reference(name, &ref));
    model_handle m;
    ASSERT_NO_FATAL_FAILURE(open_model(dir, &m));
    dre_tokenizer *tok = nullptr;
    ASSERT_EQ(dre_tokenizer_open(dir.c_str(), &tok), DRE_OK) << dre_last_error();
    dre_encoder *enc = nullptr;
    ASSERT_EQ(dre_encoder_open(m.model, DRE_DEVICE_CPU, budget, &enc), DRE_OK) << dre_last_error();

    // a mix of kinds, not every abstract, to keep the test quick
    reference sub;
    sub.dim = ref.dim;
    std::vector<float> want;
    std::vector<int32_t> ids(dre_tokenizer_max_length(tok));
    int abstracts = 0, id_mismatches = 0;
    for (size_t i = 0; i < ref.size(); i++) {
        if (ref.kinds[i] == "abstract" && abstracts++ >= 12) continue;
        int32_t n_ids = 0;
        ASSERT_EQ(
            dre_tokenize(tok, ref.texts[i].c_str(), ref.texts[i].size(), 0, ids.data(), &n_ids),
            DRE_OK);
        if (std::vector<int32_t>(ids.begin(), ids.begin() + n_ids) != ref.ids[i]) id_mismatches++;
        sub.kinds.push_back(ref.kinds[i]);
        sub.texts.push_back(ref.texts[i]);
        sub.ids.push_back(ref.ids[i]);
        sub.emb.insert(sub.emb.end(), &ref.emb[i * ref.dim], &ref.emb[(i + 1) * ref.dim]);
    }
    EXPECT_EQ(id_mismatches, 0) << "dre_tokenize differs from the Hugging Face ids";

    std::vector<const char *> texts;
    for (const auto &t : sub.texts)
        texts.push_back(t.c_str());
    std::vector<float> out(sub.size() * sub.dim);
    ASSERT_EQ(dre_encode_texts(enc, tok, texts.data(), texts.size(), 2, out.data()), DRE_OK)
        << dre_last_error();
    expect_parity(name + " (dre_encode_texts)", sub, out);
    dre_encoder_close(enc);
    dre_tokenizer_close(tok);
}

TEST(EncodeTexts, MiniLMEndToEnd) { check_encode_texts(kMiniLM, "minilm", 1024); }
TEST(EncodeTexts, TinyEndToEnd) { check_encode_texts(kTiny, "tiny", 300); }

TEST(EncodeTexts, EmptyInputAndNulls) {
    model_handle m;
    ASSERT_NO_FATAL_FAILURE(open_model(kTiny, &m));
    dre_tokenizer *tok = nullptr;
    ASSERT_EQ(dre_tokenizer_open(kTiny.c_str(), &tok), DRE_OK) << dre_last_error();
    dre_encoder *enc = nullptr;
    ASSERT_EQ(dre_encoder_open(m.model, DRE_DEVICE_CPU, 0, &enc), DRE_OK);
    EXPECT_EQ(dre_encode_texts(enc, tok, nullptr, 0, 1, nullptr), DRE_OK);
    const char *texts[] = {"fine", nullptr};
    float out[64];
    EXPECT_EQ(dre_encode_texts(enc, tok, texts, 2, 1, out), DRE_ERR_INVALID_ARG);
    dre_encoder_close(enc);
    dre_tokenizer_close(tok);
}

} // namespace
