/* search/options.c — dre_search_options: the defaults, and the names of modes, fusions and
 * precisions as the CLI and the service take them. */
#include <string.h>

#include "common/common.h"

#define DEFAULT_K 10
#define DEFAULT_DEPTH 100
#define DEFAULT_RRF_K 60.0
#define DEFAULT_ALPHA 0.5

static const char *const mode_names[] = {"auto", "dense", "bm25", "hybrid"};
static const char *const precision_names[] = {"fp16", "fp32", "faiss"};
static const char *const fusion_names[] = {"convex", "rrf"};

dre_status dre_search_precision_parse(const char *name, dre_search_precision *out) {
    for (int i = 0; name && i < 3; i++)
        if (!strcmp(name, precision_names[i])) {
            *out = (dre_search_precision)i;
            return DRE_OK;
        }
    return dre_set_error(DRE_ERR_INVALID_ARG,
                         "search precision \"%s\" (fp16 or fp32 on the GPU, or faiss on the CPU)",
                         name ? name : "(null)");
}

const char *dre_search_precision_name(dre_search_precision precision) {
    return precision >= 0 && precision < 3 ? precision_names[precision] : "?";
}

dre_status dre_search_mode_parse(const char *name, dre_search_mode *out) {
    for (int i = 0; name && i < 4; i++)
        if (!strcmp(name, mode_names[i])) {
            *out = (dre_search_mode)i;
            return DRE_OK;
        }
    return dre_set_error(DRE_ERR_INVALID_ARG, "search mode \"%s\" (auto, dense, bm25 or hybrid)",
                         name ? name : "(null)");
}

const char *dre_search_mode_name(dre_search_mode mode) {
    return mode >= 0 && mode < 4 ? mode_names[mode] : "?";
}

dre_status dre_fusion_parse(const char *name, dre_fusion *out) {
    for (int i = 0; name && i < 2; i++)
        if (!strcmp(name, fusion_names[i])) {
            *out = (dre_fusion)i;
            return DRE_OK;
        }
    return dre_set_error(DRE_ERR_INVALID_ARG, "fusion \"%s\" (rrf or convex)",
                         name ? name : "(null)");
}

const char *dre_fusion_name(dre_fusion fusion) {
    return fusion >= 0 && fusion < 2 ? fusion_names[fusion] : "?";
}

void dre_search_options_init(dre_search_options *opts) {
    memset(opts, 0, sizeof *opts);
    opts->mode = DRE_SEARCH_AUTO;
    opts->fusion = DRE_FUSION_CONVEX;
    opts->k = DEFAULT_K;
    opts->depth = DEFAULT_DEPTH;
    opts->rrf_k = DEFAULT_RRF_K;
    opts->alpha = DEFAULT_ALPHA;
}
