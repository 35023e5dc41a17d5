// encoder_gpu_test.cc — the whole fp16 GPU encoder against the fp32 CPU reference encoder:
// all-MiniLM-L6-v2 on the demo papers (titles and abstracts, tokenized by dre_tokenize),
// cosine >= 0.999 for every text (the worst is printed); the same against the
// sentence-transformers embeddings in tests/fixtures (MiniLM, and the tiny CLS model).
// Without a GPU: --device gpu must fail with DRE_ERR_NO_GPU (not skipped), and the host
// fp16 conversion is checked against CUDA's own.
#include "gpu_test_util.h"

#include <cjson/cJSON.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "dre.h"
#include "gpu/cuda_check.h"
#include "gpu/encoder.h"
#include "model/model.h"
#include "test_util.h"

namespace {

using namespace gpu_test;
using namespace test_util;

const std::string kSource = source_dir();
const std::string kMiniLM = kSource + "/models/all-MiniLM-L6-v2";
const std::string kTiny = kSource + "/tests/fixtures/tiny-bert-cls";

// ---------------------------------------------------------------- host fp16 conversion

uint16_t cuda_float_to_half(float f) {
    const __half h = __float2half_rn(f);
    uint16_t bits;
    std::memcpy(&bits, &h, sizeof bits);
    return bits;
}

float cuda_half_to_float(uint16_t bits) {
    __half h;
    std::memcpy(&h, &bits, sizeof bits);
    return __half2float(h);
}

float from_bits(uint32_t u) {
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

TEST(Fp16Host, HalfToFloatMatchesCudaForAllValues) {
    for (uint32_t h = 0; h < 65536; h++) {
        const float want = cuda_half_to_float((uint16_t)h), got = fp16_to_float((fp16_t)h);
        if (std::isnan(want))
            EXPECT_TRUE(std::isnan(got)) << std::hex << h;
        else
            ASSERT_EQ(0, std::memcmp(&want, &got, sizeof got)) << std::hex << "half 0x" << h;
    }
}

TEST(Fp16Host, FloatToHalfRoundsToNearestEvenLikeCuda) {
    // boundaries: overflow (65504, 65520), smallest normal and subnormal, ties around them
    const float edges[] = {
        0.0f,           -0.0f,          65504.0f,         65519.99f,          65520.0f,
        -65520.0f,      1e10f,          6.103515625e-05f, 6.0975552e-05f,     5.9604645e-08f,
        2.9802322e-08f, 2.9802326e-08f, 8.940697e-08f,    1.0f + 1.0f / 2048, 1.0f + 3.0f / 2048,
        INFINITY,       -INFINITY};
    for (float f : edges)
        EXPECT_EQ(cuda_float_to_half(f), float_to_fp16(f)) << f;
    EXPECT_EQ(0x7c00, float_to_fp16(NAN) & 0x7c00);
    EXPECT_NE(0, float_to_fp16(NAN) & 0x3ff) << "NaN must stay NaN";
    // a sweep over bit patterns: every exponent, many mantissas, both signs
    for (uint64_t u = 0; u <= 0xffffffffull; u += 65521) {
        const float f = from_bits((uint32_t)u);
        if (std::isnan(f)) continue;
        ASSERT_EQ(cuda_float_to_half(f), float_to_fp16(f)) << std::hex << "float bits 0x" << u;
    }
}

// ---------------------------------------------------------------- no GPU

struct model_handle {
    dre_model *model = nullptr;
    ~model_handle() { dre_model_close(model); }
};

void open_model(const std::string &dir, model_handle *h) {
    ASSERT_TRUE(std::filesystem::exists(dir + "/model.safetensors"))
        << dir << " is missing: run tools/setup.sh to install the default model";
    ASSERT_EQ(DRE_OK, dre_model_open(dir.c_str(), &h->model)) << dre_last_error();
}

TEST(EncoderGpu, DeviceGpuWithoutGpuSaysNoGpu) {
    if (gpu_available()) GTEST_SKIP() << "a GPU is present: the GPU tests below cover it";
    EXPECT_EQ(0, dre_gpu_device_count());
    EXPECT_EQ(0, dre_gpu_count());
    model_handle m;
    ASSERT_NO_FATAL_FAILURE(open_model(kMiniLM, &m));
    dre_encoder *enc = nullptr;
    EXPECT_EQ(DRE_ERR_NO_GPU, dre_encoder_open(m.model, DRE_DEVICE_GPU, 0, &enc));
    EXPECT_EQ(nullptr, enc);
    EXPECT_NE(std::string(dre_last_error()).find("no usable CUDA device"), std::string::npos)
        << dre_last_error();
    gpu_encoder *genc = nullptr;
    EXPECT_EQ(DRE_ERR_NO_GPU, dre_gpu_encoder_create(m.model, 16384, &genc));
    EXPECT_EQ(nullptr, genc);
    // auto falls back to the CPU
    ASSERT_EQ(DRE_OK, dre_encoder_open(m.model, DRE_DEVICE_AUTO, 0, &enc)) << dre_last_error();
    EXPECT_EQ(DRE_DEVICE_CPU, dre_encoder_device(enc));
    dre_encoder_close(enc);
}

// ---------------------------------------------------------------- GPU vs CPU

// Encodes token-id sequences in input order, packed into batches of at most budget tokens.
void encode_all(dre_encoder *enc, const std::vector<std::vector<int32_t>> &seqs, int32_t budget,
                int32_t dim, std::vector<float> *out) {
    out->assign(seqs.size() * dim, 0.0f);
    size_t next = 0;
    while (next < seqs.size()) {
        std::vector<int32_t> ids, cu{0};
        const size_t first = next;
        while (next < seqs.size() && (int32_t)(ids.size() + seqs[next].size()) <= budget) {
            ids.insert(ids.end(), seqs[next].begin(), seqs[next].end());
            cu.push_back((int32_t)ids.size());
            next++;
        }
        ASSERT_GT(next, first);
        ASSERT_EQ(DRE_OK, dre_encoder_encode(enc, ids.data(), cu.data(), (int32_t)(cu.size() - 1),
                                             &(*out)[first * dim]))
            << dre_last_error();
    }
}

// Every row's cosine >= min_cos; prints the worst.
void expect_cosines(const std::string &label, const std::vector<float> &got,
                    const std::vector<float> &want, int dim,
                    const std::vector<std::vector<int32_t>> &seqs, double min_cos) {
    ASSERT_EQ(got.size(), want.size());
    double worst = 1.0;
    size_t worst_i = 0;
    for (size_t i = 0; i < seqs.size(); i++) {
        const double c = cosine(&got[i * dim], &want[i * dim], dim);
        EXPECT_GE(c, min_cos) << label << ": text " << i << " (" << seqs[i].size() << " tokens)";
        // a cosine cannot see a scale: the norms agree too (the pooling kernel normalises in
        // fp32, so a normalised model's vectors have norm 1 to ~1e-7)
        double got_sq = 0, want_sq = 0;
        for (int j = 0; j < dim; j++)
            got_sq += (double)got[i * dim + j] * got[i * dim + j],
                want_sq += (double)want[i * dim + j] * want[i * dim + j];
        EXPECT_NEAR(std::sqrt(got_sq), std::sqrt(want_sq), 1e-4 * std::sqrt(want_sq))
            << label << ": the norm of text " << i;
        if (!(c >= worst)) {
            worst = c;
            worst_i = i;
        }
    }
    std::printf("[ cosine   ] %s: %zu texts, worst %.7f (1 - cos = %.1e, text %zu, %zu tokens)\n",
                label.c_str(), seqs.size(), worst, 1.0 - worst, worst_i, seqs[worst_i].size());
}

// Under the CUDA emulation (slow): every stride-th sequence (emulation_stride) and the
// longest one; the GPU machine runs them all. Keeps the rows of want (dim floats each) in
// step when given.
void thin_for_emulation(std::vector<std::vector<int32_t>> *seqs, std::vector<float> *want, int dim,
                        size_t base_stride) {
    if (!emulated()) return;
    const size_t stride = emulation_stride(base_stride);
    size_t longest = 0;
    for (size_t i = 0; i < seqs->size(); i++)
        if ((*seqs)[i].size() > (*seqs)[longest].size()) longest = i;
    std::vector<std::vector<int32_t>> kept;
    std::vector<float> kept_want;
    for (size_t i = 0; i < seqs->size(); i++) {
        if (i % stride != 0 && i != longest) continue;
        kept.push_back((*seqs)[i]);
        if (want)
            kept_want.insert(kept_want.end(), want->begin() + i * dim,
                             want->begin() + (i + 1) * dim);
    }
    std::printf("  emulated CUDA: %zu of %zu texts\n", kept.size(), seqs->size());
    *seqs = kept;
    if (want) *want = kept_want;
}

std::vector<std::string> demo_texts() {
    std::vector<std::string> texts;
    std::ifstream in(kSource + "/tests/data/papers.jsonl");
    std::string line;
    while (std::getline(in, line)) {
        cJSON *row = cJSON_Parse(line.c_str());
        if (!row) continue;
        const cJSON *title = cJSON_GetObjectItem(row, "title");
        const cJSON *text = cJSON_GetObjectItem(row, "text");
        if (cJSON_IsString(title)) texts.push_back(title->valuestring);
        if (cJSON_IsString(text)) texts.push_back(text->valuestring);
        if (cJSON_IsString(title) && cJSON_IsString(text))
            texts.push_back(std::string(title->valuestring) + " " + text->valuestring);
        cJSON_Delete(row);
    }
    return texts;
}

TEST(EncoderGpu, MatchesCpuEncoderOnDemoTexts) {
    SKIP_WITHOUT_GPU();
    model_handle m;
    ASSERT_NO_FATAL_FAILURE(open_model(kMiniLM, &m));
    const std::vector<std::string> texts = demo_texts();
    ASSERT_GE(texts.size(), 200u) << "tests/data/papers.jsonl: expected 80 papers";

    dre_tokenizer *tok = nullptr;
    ASSERT_EQ(DRE_OK, dre_tokenizer_open(kMiniLM.c_str(), &tok)) << dre_last_error();
    const int32_t max_len = dre_tokenizer_max_length(tok);
    std::vector<std::vector<int32_t>> seqs;
    for (const std::string &t : texts) {
        std::vector<int32_t> ids(max_len);
        int32_t n = 0;
        ASSERT_EQ(DRE_OK, dre_tokenize(tok, t.data(), t.size(), 0, ids.data(), &n));
        ids.resize(n);
        seqs.push_back(ids);
    }
    dre_tokenizer_close(tok);
    thin_for_emulation(&seqs, nullptr, 0, 12);

    const int32_t dim = m.model->info.hidden, budget = 16384;
    dre_encoder *cpu = nullptr, *gpu = nullptr;
    ASSERT_EQ(DRE_OK, dre_encoder_open(m.model, DRE_DEVICE_CPU, budget, &cpu)) << dre_last_error();
    ASSERT_EQ(DRE_OK, dre_encoder_open(m.model, DRE_DEVICE_GPU, budget, &gpu)) << dre_last_error();
    EXPECT_EQ(DRE_DEVICE_GPU, dre_encoder_device(gpu));
    std::vector<float> want, got;
    ASSERT_NO_FATAL_FAILURE(encode_all(cpu, seqs, budget, dim, &want));
    ASSERT_NO_FATAL_FAILURE(encode_all(gpu, seqs, budget, dim, &got));
    expect_cosines("all-MiniLM-L6-v2 GPU vs CPU, demo texts", got, want, dim, seqs, 0.999);

    // Batches of at most max_len tokens (mostly one text each) must give (nearly) the same
    // vectors: attention never looks across sequences; only cuBLAS's choice of kernel for
    // another token count may change the rounding.
    // (Under the emulation the first 6 texts: a dozen one-text batches is enough there.)
    const size_t n_small = emulated() ? std::min<size_t>(6, seqs.size()) : seqs.size();
    const std::vector<std::vector<int32_t>> few(seqs.begin(), seqs.begin() + n_small);
    const std::vector<float> few_got(got.begin(), got.begin() + n_small * dim);
    std::vector<float> small;
    ASSERT_NO_FATAL_FAILURE(encode_all(gpu, few, max_len, dim, &small));
    expect_cosines("GPU batches of 16384 vs 256 tokens", small, few_got, dim, few, 0.99999);
    dre_encoder_close(cpu);
    dre_encoder_close(gpu);
}

// Fixture ids and sentence-transformers embeddings (tools/fixtures/make_embedding_fixtures.py).
void load_fixture(const std::string &name, std::vector<std::vector<int32_t>> *seqs,
                  std::vector<float> *emb, int *dim) {
    const std::string base = kSource + "/tests/fixtures/embeddings_" + name;
    std::ifstream lines(base + ".jsonl");
    ASSERT_TRUE(lines) << base << ".jsonl missing: run tools/fixtures/make_embedding_fixtures.py";
    std::string line;
    while (std::getline(lines, line)) {
        cJSON *row = cJSON_Parse(line.c_str());
        ASSERT_NE(nullptr, row);
        std::vector<int32_t> ids;
        const cJSON *id;
        cJSON_ArrayForEach(id, cJSON_GetObjectItem(row, "ids")) ids.push_back(id->valueint);
        seqs->push_back(ids);
        cJSON_Delete(row);
    }
    std::ifstream meta_in(base + ".meta.json");
    std::stringstream ss;
    ss << meta_in.rdbuf();
    cJSON *meta = cJSON_Parse(ss.str().c_str());
    ASSERT_NE(nullptr, meta);
    *dim = cJSON_GetObjectItem(meta, "dim")->valueint;
    cJSON_Delete(meta);
    std::ifstream f32(base + ".f32", std::ios::binary);
    emb->resize(seqs->size() * *dim);
    f32.read(reinterpret_cast<char *>(emb->data()), (std::streamsize)(emb->size() * 4));
    ASSERT_EQ((std::streamsize)(emb->size() * 4), f32.gcount()) << base << ".f32 too short";
}

void run_fixture(const std::string &name, const std::string &model_dir) {
    std::vector<std::vector<int32_t>> seqs;
    std::vector<float> want, got;
    int dim = 0;
    ASSERT_NO_FATAL_FAILURE(load_fixture(name, &seqs, &want, &dim));
    thin_for_emulation(&seqs, &want, dim, 10);
    model_handle m;
    ASSERT_NO_FATAL_FAILURE(open_model(model_dir, &m));
    ASSERT_EQ(dim, m.model->info.hidden);
    dre_encoder *gpu = nullptr;
    ASSERT_EQ(DRE_OK, dre_encoder_open(m.model, DRE_DEVICE_GPU, 4096, &gpu)) << dre_last_error();
    ASSERT_NO_FATAL_FAILURE(encode_all(gpu, seqs, 4096, dim, &got));
    dre_encoder_close(gpu);
    expect_cosines(name + " GPU vs sentence-transformers", got, want, dim, seqs, 0.999);
}

TEST(EncoderGpu, MatchesSentenceTransformersMiniLM) {
    SKIP_WITHOUT_GPU();
    run_fixture("minilm", kMiniLM);
}

TEST(EncoderGpu, MatchesSentenceTransformersTinyCls) {
    SKIP_WITHOUT_GPU();
    run_fixture("tiny", kTiny); // head_dim 16, CLS pooling
}

TEST(EncoderGpu, SubmitCollectEqualsEncode) {
    SKIP_WITHOUT_GPU();
    std::vector<std::vector<int32_t>> seqs;
    std::vector<float> want;
    int dim = 0;
    ASSERT_NO_FATAL_FAILURE(load_fixture("tiny", &seqs, &want, &dim));
    model_handle m;
    ASSERT_NO_FATAL_FAILURE(open_model(kTiny, &m));
    dre_encoder *gpu = nullptr;
    ASSERT_EQ(DRE_OK, dre_encoder_open(m.model, DRE_DEVICE_GPU, 512, &gpu)) << dre_last_error();
    expect_submit_collect_equals_encode(gpu, seqs, dre_encoder_max_length(gpu));
    dre_encoder_close(gpu);
}

TEST(EncoderGpu, OutOfMemoryIsAClearError) {
    SKIP_WITHOUT_GPU();
    model_handle m;
    ASSERT_NO_FATAL_FAILURE(open_model(kMiniLM, &m));
    // 2^30 tokens of activations: terabytes, more than any GPU holds
    dre_encoder *enc = nullptr;
    EXPECT_EQ(DRE_ERR_CUDA, dre_encoder_open(m.model, DRE_DEVICE_GPU, 1 << 30, &enc));
    EXPECT_EQ(nullptr, enc);
    EXPECT_TRUE(has(dre_last_error(), "--batch-tokens")) << dre_last_error();
    // and nothing is left behind: a sensible budget works afterwards
    ASSERT_EQ(DRE_OK, dre_encoder_open(m.model, DRE_DEVICE_GPU, 1024, &enc)) << dre_last_error();
    std::vector<int32_t> ids = {101, 7592, 102};
    const int32_t cu[] = {0, 3};
    std::vector<float> out(dre_encoder_dim(enc));
    EXPECT_EQ(DRE_OK, dre_encoder_encode(enc, ids.data(), cu, 1, out.data())) << dre_last_error();
    dre_encoder_close(enc);
}

// The GPU encoder refuses a budget below the max length; bad batches are refused by the
// public encoder, once, before the GPU backend sees them (encode/encoder.c).
TEST(EncoderGpu, RejectsBadBatches) {
    SKIP_WITHOUT_GPU();
    model_handle m;
    ASSERT_NO_FATAL_FAILURE(open_model(kMiniLM, &m));
    gpu_encoder *gpu = nullptr;
    EXPECT_EQ(DRE_ERR_INVALID_ARG, dre_gpu_encoder_create(m.model, 10, &gpu)); // below max length
    dre_encoder *enc = nullptr;
    ASSERT_EQ(DRE_OK, dre_encoder_open(m.model, DRE_DEVICE_GPU, 1024, &enc)) << dre_last_error();
    std::vector<int32_t> ids(2000, 101);
    std::vector<float> out(8 * 384);
    int32_t ok[] = {0, 3};
    EXPECT_EQ(DRE_OK, dre_encoder_encode(enc, ids.data(), ok, 1, out.data())) << dre_last_error();
    int32_t empty_seq[] = {0, 3, 3};
    EXPECT_EQ(DRE_ERR_INVALID_ARG, dre_encoder_encode(enc, ids.data(), empty_seq, 2, out.data()));
    int32_t too_long[] = {0, 257};
    EXPECT_EQ(DRE_ERR_INVALID_ARG, dre_encoder_encode(enc, ids.data(), too_long, 1, out.data()));
    int32_t over_budget[] = {0, 256, 512, 768, 1024, 1025};
    EXPECT_EQ(DRE_ERR_INVALID_ARG, dre_encoder_encode(enc, ids.data(), over_budget, 5, out.data()));
    ids[1] = 30522; // one past the vocabulary
    EXPECT_EQ(DRE_ERR_INVALID_ARG, dre_encoder_encode(enc, ids.data(), ok, 1, out.data()));
    ids[1] = 101;
    EXPECT_EQ(DRE_OK, dre_encoder_encode(enc, ids.data(), ok, 1, out.data())) << dre_last_error();
    dre_encoder_close(enc);
}

TEST(EncoderGpu, ProfileAndGemmOnlyRun) {
    SKIP_WITHOUT_GPU();
    model_handle m;
    ASSERT_NO_FATAL_FAILURE(open_model(kMiniLM, &m));
    gpu_encoder *enc = nullptr;
    ASSERT_EQ(DRE_OK, dre_gpu_encoder_create(m.model, 4096, &enc)) << dre_last_error();
    const int32_t n_seqs = emulated() ? 2 : 16; // the emulation runs every pass slowly
    std::vector<int32_t> ids(n_seqs * 256, 2000);
    const std::vector<int32_t> cu = cu_seqlens_of(std::vector<int32_t>(n_seqs, 256));
    double ms[DRE_OP_COUNT];
    ASSERT_EQ(DRE_OK, dre_gpu_encoder_profile(enc, ids.data(), cu.data(), n_seqs, ms))
        << dre_last_error();
    for (int op = 0; op < DRE_OP_COUNT; op++)
        EXPECT_GT(ms[op], 0.0) << dre_op_name((dre_op)op);
    double gemm_ms = 0;
    ASSERT_EQ(DRE_OK, dre_gpu_encoder_gemm_only(enc, 4096, 3, &gemm_ms)) << dre_last_error();
    EXPECT_GT(gemm_ms, 0.0);
    dre_gpu_encoder_destroy(enc);
}

} // namespace
