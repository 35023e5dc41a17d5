/* model/model.h — the loaded weights of a BERT-family model, as fp32 host arrays.
 * Linear weights keep PyTorch's layout: [out_features, in_features], row-major. */
#ifndef DRE_MODEL_H
#define DRE_MODEL_H

#include "dre.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct layer_weights {
    float *qkv_w, *qkv_b;           /* [3*hidden, hidden], [3*hidden]: rows q, then k, then v */
    float *attn_out_w, *attn_out_b; /* attention.output.dense [hidden, hidden] */
    float *ln1_g, *ln1_b;           /* attention.output.LayerNorm */
    float *ffn_in_w, *ffn_in_b;     /* intermediate.dense [intermediate, hidden] */
    float *ffn_out_w, *ffn_out_b;   /* output.dense [hidden, intermediate] */
    float *ln2_g, *ln2_b;           /* output.LayerNorm */
} layer_weights;

struct dre_model {
    dre_model_info info;
    float *word_emb; /* [vocab_size, hidden] */
    float *pos_emb;  /* [max_positions, hidden] */
    float *type_emb; /* [type_vocab_size, hidden] */
    float *emb_ln_g, *emb_ln_b;
    layer_weights *layers; /* n_layers */
    void *arena;           /* one allocation holding every array above */
};

#ifdef __cplusplus
}
#endif
#endif
