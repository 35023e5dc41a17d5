/* index/faiss_gaps.cpp — what FAISS's C API (1.7.3) lacks: binary indexes made from factory
 * strings ("BFlat", "BHNSW32", "BIVF1024"...), their search parameters and a BFlat's codes,
 * the trained ranges of an 8-bit scalar quantizer (the int8 rescoring vectors' decoder), and
 * a Flat index's own vectors (what the GPU searcher re-scores from, without a copy), room
 * reserved for the vectors still to come (so a 10 M Flat does not need its vectors twice
 * over while std::vector doubles: 15 GB became 46 in passing). Errors
 * come back as text: FAISS's C API keeps its own last error. */
#include <faiss/IndexBinaryFlat.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexFlatCodes.h>
#include <faiss/IndexBinaryHNSW.h>
#include <faiss/IndexBinaryIVF.h>
#include <faiss/IndexScalarQuantizer.h>
#include <faiss/index_factory.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "index/vindex.h"

namespace {

void set_message(char *err, size_t cap, const char *msg) {
    if (cap > 0) std::snprintf(err, cap, "%s", msg);
}

faiss::IndexBinary *binary(FaissIndexBinary *ix) {
    return reinterpret_cast<faiss::IndexBinary *>(ix);
}

} // namespace

extern "C" int dre_faiss_binary_create(const char *factory, int dim, FaissIndexBinary **out,
                                       char *err, size_t cap) {
    *out = nullptr;
    try {
        *out = reinterpret_cast<FaissIndexBinary *>(faiss::index_binary_factory(dim, factory));
        return 0;
    } catch (const std::exception &e) {
        set_message(err, cap, e.what());
    } catch (...) {
        set_message(err, cap, "unknown FAISS error");
    }
    return -1;
}

extern "C" size_t dre_faiss_binary_nlist(FaissIndexBinary *index) {
    auto *ivf = dynamic_cast<faiss::IndexBinaryIVF *>(binary(index));
    return ivf ? ivf->nlist : 0;
}

extern "C" int dre_faiss_binary_param(FaissIndexBinary *index, const char *name, double *get,
                                      double set) {
    faiss::IndexBinary *ix = binary(index);
    const std::string n = name;
    if (auto *ivf = dynamic_cast<faiss::IndexBinaryIVF *>(ix)) {
        if (n == "nprobe") {
            if (get) *get = (double)ivf->nprobe;
            else ivf->nprobe = (size_t)set;
            return 0;
        }
        if (n == "max_codes") {
            if (get) *get = (double)ivf->max_codes;
            else ivf->max_codes = (size_t)set;
            return 0;
        }
    }
    if (auto *h = dynamic_cast<faiss::IndexBinaryHNSW *>(ix)) {
        if (n == "efSearch") {
            if (get) *get = h->hnsw.efSearch;
            else h->hnsw.efSearch = (int)set;
            return 0;
        }
    }
    return -1;
}

extern "C" int dre_faiss_sq8_ranges(FaissIndex *index, float *vmin, float *vdiff) {
    auto *sq = dynamic_cast<faiss::IndexScalarQuantizer *>(reinterpret_cast<faiss::Index *>(index));
    if (!sq || sq->sq.qtype != faiss::ScalarQuantizer::QT_8bit || !sq->is_trained ||
        sq->sq.trained.size() != 2 * (size_t)sq->d)
        return -1;
    std::memcpy(vmin, sq->sq.trained.data(), sq->d * sizeof(float));
    std::memcpy(vdiff, sq->sq.trained.data() + sq->d, sq->d * sizeof(float));
    return 0;
}

extern "C" int dre_faiss_sq8_from_ranges(int dim, const float *vmin, const float *vdiff,
                                         FaissIndex **out) {
    *out = nullptr;
    try {
        auto *sq = new faiss::IndexScalarQuantizer(dim, faiss::ScalarQuantizer::QT_8bit,
                                                   faiss::METRIC_INNER_PRODUCT);
        sq->sq.trained.assign(vmin, vmin + dim);
        sq->sq.trained.insert(sq->sq.trained.end(), vdiff, vdiff + dim);
        sq->is_trained = true;
        *out = reinterpret_cast<FaissIndex *>(sq);
        return 0;
    } catch (...) {
        return -1;
    }
}

extern "C" const uint8_t *dre_faiss_binary_flat_codes(FaissIndexBinary *index) {
    auto *flat = dynamic_cast<faiss::IndexBinaryFlat *>(binary(index));
    return flat ? flat->xb.data() : nullptr;
}

extern "C" const float *dre_faiss_flat_data(FaissIndex *index) {
    auto *flat = dynamic_cast<faiss::IndexFlat *>(reinterpret_cast<faiss::Index *>(index));
    return flat ? flat->get_xb() : nullptr;
}

extern "C" int dre_faiss_reserve(FaissIndex *index, FaissIndexBinary *bin, int64_t more) {
    try {
        if (auto *codes = dynamic_cast<faiss::IndexFlatCodes *>(
                reinterpret_cast<faiss::Index *>(index))) {
            codes->codes.reserve((size_t)(codes->ntotal + more) * codes->code_size);
        } else if (auto *flat = dynamic_cast<faiss::IndexBinaryFlat *>(binary(bin))) {
            flat->xb.reserve((size_t)(flat->ntotal + more) * (size_t)flat->code_size);
        }
        return 0;
    } catch (...) { // std::bad_alloc: the adds will say so in their turn
        return -1;
    }
}
