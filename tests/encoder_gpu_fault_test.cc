// encoder_gpu_fault_test.cc — a lost CUDA context (a sticky device error: an illegal address,
// a launch failure) is a clear error, not a crash: every later call on an encoder or a search
// handle returns DRE_ERR_CUDA saying the context is lost and what to do, and `dre embed`
// keeps its last checkpoint, so `--resume --device cpu` finishes the index. The fault is
// injected through the CUDA emulation (emu_fault_at_launch, DRE_EMU_FAULT_AT_LAUNCH); on a
// real GPU these tests skip, since a real lost context cannot be undone for the next test.
#include "gpu_test_util.h"

#include <sys/wait.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "dre.h"
#include "gpu/cuda_check.h"
#include "gpu/encoder.h"
#include "model/model.h"
#include "test_util.h"

namespace {

using namespace gpu_test;
using namespace test_util;

const std::string kSource = source_dir();
const std::string kTiny = kSource + "/tests/fixtures/tiny-bert-cls";

#ifdef DRE_CUDA_EMU
#define SKIP_WITHOUT_FAULT_INJECTION() SKIP_WITHOUT_GPU()
#else
#define SKIP_WITHOUT_FAULT_INJECTION()                                                             \
    GTEST_SKIP() << "injects a device fault through the CUDA emulation: see emu_" << __FILE__
#endif

// A lost-context message: says so, and says what to do.
void expect_lost_message(const char *what) {
    const std::string msg = dre_last_error();
    EXPECT_TRUE(has(msg, "CUDA context") && has(msg, "lost")) << what << ": " << msg;
    EXPECT_TRUE(has(msg, "Restart the process") && has(msg, "--resume") && has(msg, "--device cpu"))
        << what << ": " << msg;
}

TEST(EncoderGpuFault, LostContextIsAClearErrorOnEveryCall) {
    SKIP_WITHOUT_FAULT_INJECTION();
#ifdef DRE_CUDA_EMU
    dre_model *model = nullptr;
    ASSERT_EQ(DRE_OK, dre_model_open(kTiny.c_str(), &model)) << dre_last_error();
    gpu_encoder *enc = nullptr;
    ASSERT_EQ(DRE_OK, dre_gpu_encoder_create(model, 512, &enc)) << dre_last_error();
    const std::vector<float> vectors(100 * 8, 0.5f);
    dre_gpu_search *gs = nullptr;
    ASSERT_EQ(DRE_OK, dre_gpu_search_open(vectors.data(), 100, 8, &gs)) << dre_last_error();
    const std::vector<int32_t> ids = {101, 7592, 2088, 102, 101, 2088, 102};
    const int32_t cu[] = {0, 4, 7};
    std::vector<float> out(2 * 32), scores(5);
    std::vector<int64_t> rows(5);
    ASSERT_EQ(DRE_OK, dre_gpu_encoder_encode(enc, ids.data(), cu, 2, out.data()))
        << dre_last_error();

    emu_fault_at_launch(3); // in the middle of the next forward pass
    EXPECT_EQ(DRE_ERR_CUDA, dre_gpu_encoder_encode(enc, ids.data(), cu, 2, out.data()));
    expect_lost_message("the failing encode");
    EXPECT_TRUE(has(dre_last_error(), "illegal memory access")) << dre_last_error();

    // every later call: the same clear error, nothing run, nothing crashed
    EXPECT_EQ(DRE_ERR_CUDA, dre_gpu_encoder_encode(enc, ids.data(), cu, 2, out.data()));
    expect_lost_message("encode after the loss");
    EXPECT_TRUE(has(dre_last_error(), "lost earlier (")) << dre_last_error();
    EXPECT_EQ(DRE_ERR_CUDA, dre_gpu_encoder_submit(enc, ids.data(), cu, 2));
    expect_lost_message("submit");
    EXPECT_EQ(DRE_ERR_CUDA, dre_gpu_encoder_collect(enc, out.data(), nullptr));
    double ms[DRE_OP_COUNT];
    EXPECT_EQ(DRE_ERR_CUDA, dre_gpu_encoder_profile(enc, ids.data(), cu, 2, ms));
    expect_lost_message("profile");
    EXPECT_EQ(DRE_ERR_CUDA,
              dre_gpu_search_run(gs, vectors.data(), 1, 5, scores.data(), rows.data()));
    expect_lost_message("search");
    gpu_encoder *another = nullptr;
    EXPECT_EQ(DRE_ERR_CUDA, dre_gpu_encoder_create(model, 512, &another));
    EXPECT_EQ(nullptr, another);
    expect_lost_message("a new encoder");
    dre_gpu_search *another_gs = nullptr;
    EXPECT_EQ(DRE_ERR_CUDA, dre_gpu_search_open(vectors.data(), 100, 8, &another_gs));
    expect_lost_message("a new search");
    dre_gpu_encoder_destroy(enc); // closing still works
    dre_gpu_search_close(gs);

    // (the emulation, unlike a GPU, can forget the fault: the tests after this one run on)
    emu_recover();
    dre_gpu_context_forget_loss();
    ASSERT_EQ(DRE_OK, dre_gpu_encoder_create(model, 512, &enc)) << dre_last_error();
    EXPECT_EQ(DRE_OK, dre_gpu_encoder_encode(enc, ids.data(), cu, 2, out.data()))
        << dre_last_error();
    dre_gpu_encoder_destroy(enc);
    dre_model_close(model);
#endif
}

// Runs `dre-emu args` from the source folder with DRE_EMU_FAULT_AT_LAUNCH=fault_at (0: none);
// returns the exit code, stderr in *err.
int run_dre_emu(const std::string &args, unsigned fault_at, const std::string &err_path,
                std::string *err) {
    const std::string cmd = "cd '" + kSource +
                            "' && DRE_EMU_FAULT_AT_LAUNCH=" + std::to_string(fault_at) + " '" +
                            DRE_BINARY_DIR + "/dre-emu' " + args + " 2> '" + err_path + "'";
    const int status = std::system(cmd.c_str());
    *err = read_text(err_path);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::vector<float> index_vectors(const std::string &dir, std::vector<std::string> *ids) {
    dre_index *ix = nullptr;
    EXPECT_EQ(DRE_OK, dre_index_open(dir.c_str(), &ix)) << dre_last_error();
    if (!ix) return {};
    const dre_index_info *info = dre_index_get_info(ix);
    std::vector<float> v((size_t)info->count * info->dim);
    EXPECT_EQ(DRE_OK, dre_index_vectors(ix, 0, info->count, v.data())) << dre_last_error();
    for (int64_t row = 0; row < info->count; row++) {
        dre_doc doc;
        EXPECT_EQ(DRE_OK, dre_index_doc(ix, row, &doc)) << dre_last_error();
        ids->push_back(doc.id ? doc.id : "");
        dre_doc_clear(&doc);
    }
    dre_index_close(ix);
    return v;
}

TEST(EncoderGpuFault, EmbedKeepsItsCheckpointAndResumesOnTheCpu) {
    SKIP_WITHOUT_FAULT_INJECTION();
    char tmpl[] = DRE_BINARY_DIR "/gpu-fault-XXXXXX";
    ASSERT_NE(nullptr, mkdtemp(tmpl));
    const std::string dir = tmpl, err_path = dir + "/stderr";
    const std::string common = "embed -q --model tests/fixtures/tiny-bert-cls --corpus "
                               "tests/data/papers.jsonl --checkpoint-every 8 --batch-tokens 256 "
                               "--threads 1 --index ";
    std::string err;
    ASSERT_EQ(0, run_dre_emu(common + dir + "/whole --device cpu", 0, err_path, &err)) << err;

    // a device fault at the 150th kernel launch: about the third window of 8 documents
    const std::string ix = dir + "/ix";
    EXPECT_EQ(1, run_dre_emu(common + ix + " --device gpu", 150, err_path, &err)) << err;
    EXPECT_TRUE(has(err, "CUDA context is lost") && has(err, "--resume")) << err;
    const long long kept = checkpoint_count(ix);
    EXPECT_GT(kept, 0) << "no checkpoint kept";
    EXPECT_LT(kept, 80) << "the fault came after the last document";
    EXPECT_FALSE(exists(ix + "/index.faiss")) << "a half index";

    ASSERT_EQ(0, run_dre_emu(common + ix + " --resume --device cpu", 0, err_path, &err)) << err;
    std::vector<std::string> ids, want_ids;
    const std::vector<float> got = index_vectors(ix, &ids),
                             want = index_vectors(dir + "/whole", &want_ids);
    EXPECT_EQ(want_ids, ids);
    ASSERT_EQ(want.size(), got.size());
    const int dim = 32;
    for (size_t row = 0; row < ids.size(); row++) {
        if ((long long)row < kept) // the GPU's rows, kept across the fault
            EXPECT_GE(cosine(&got[row * dim], &want[row * dim], dim), 0.999) << "row " << row;
        else // the CPU's, packed as the uninterrupted run packed them
            EXPECT_EQ(0, std::memcmp(&got[row * dim], &want[row * dim], dim * sizeof(float)))
                << "row " << row;
    }
    std::filesystem::remove_all(dir);
}

} // namespace
