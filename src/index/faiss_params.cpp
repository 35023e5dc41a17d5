/* index/faiss_params.cpp — reads a FAISS search parameter's current value by its
 * faiss::ParameterSpace name, which FAISS's C API (1.7.3) cannot: dre_index_search_with sets
 * a request's parameters, searches, and puts the values it read here back. The walk mirrors
 * ParameterSpace::set_index_parameter, so a name is read where setting it would write. */
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/IndexIVFPQR.h>
#include <faiss/IndexPQ.h>
#include <faiss/IndexPreTransform.h>
#include <faiss/IndexRefine.h>
#include <faiss/impl/ThreadedIndex.h>

#include <cstring>
#include <string>

#include "index/index.h"

namespace {

using faiss::Index;

/* -1: the index has no such parameter, or its state is one a set cannot restore. */
int get_param(const Index *ix, const std::string &name, double *value) {
    if (auto *m = dynamic_cast<const faiss::IndexIDMap *>(ix))
        return get_param(m->index, name, value);
    if (auto *t = dynamic_cast<const faiss::IndexPreTransform *>(ix))
        return get_param(t->index, name, value);
    if (auto *th = dynamic_cast<const faiss::ThreadedIndex<Index> *>(ix))
        return th->count() > 0 ? get_param(th->at(0), name, value) : -1;
    if (auto *r = dynamic_cast<const faiss::IndexRefine *>(ix)) {
        if (name == "k_factor_rf") {
            *value = r->k_factor;
            return 0;
        }
        return get_param(r->base_index, name, value);
    }
    auto *ivf = dynamic_cast<const faiss::IndexIVF *>(ix);
    auto *hnsw = dynamic_cast<const faiss::IndexHNSW *>(ix);
    auto *ivf_hnsw = ivf ? dynamic_cast<const faiss::IndexHNSW *>(ivf->quantizer) : nullptr;
    if (name == "nprobe" && ivf) {
        *value = (double)ivf->nprobe;
        return 0;
    }
    if (name == "max_codes" && ivf) {
        *value = (double)ivf->max_codes;
        return 0;
    }
    if (name == "ht") {
        if (auto *pq = dynamic_cast<const faiss::IndexPQ *>(ix)) {
            if (pq->search_type == faiss::IndexPQ::ST_PQ) {
                *value = (double)(pq->pq.code_size * 8);
                return 0;
            }
            if (pq->search_type != faiss::IndexPQ::ST_polysemous) return -1;
            *value = pq->polysemous_ht;
            return 0;
        }
        if (auto *ivfpq = dynamic_cast<const faiss::IndexIVFPQ *>(ix)) {
            *value = ivfpq->polysemous_ht;
            return 0;
        }
    }
    if (name == "k_factor") {
        if (auto *pqr = dynamic_cast<const faiss::IndexIVFPQR *>(ix)) {
            *value = pqr->k_factor;
            return 0;
        }
    }
    if (name == "efSearch" || name == "efConstruction") {
        const faiss::IndexHNSW *h = hnsw ? hnsw : ivf_hnsw;
        if (!h) return -1;
        *value = name == "efSearch" ? h->hnsw.efSearch : h->hnsw.efConstruction;
        return 0;
    }
    if (name.compare(0, 10, "quantizer_") == 0 && ivf)
        return get_param(ivf->quantizer, name.substr(10), value);
    return -1;
}

} // namespace

extern "C" int dre_index_faiss_param_get(FaissIndex *index, const char *name, double *value) {
    try {
        return get_param(reinterpret_cast<const Index *>(index), name, value);
    } catch (...) {
        return -1;
    }
}
