/* model/config.h — a model folder's description apart from its weights (model/config.c), and
 * the arena model/model.c lays the weights out in (shared with model/random.c). */
#ifndef DRE_MODEL_CONFIG_H
#define DRE_MODEL_CONFIG_H

#include <cjson/cJSON.h>

#include "dre.h"
#include "model/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Everything the folder says but the weights: config.json, the sentence-transformers files
 * (pooling, normalisation, max length, prompts) and the folder's name. Errors name the file. */
dre_status dre_model_info_read(const char *model_dir, dre_model_info *info);
/* config.json alone, at path: the shapes, LayerNorm eps; refuses other activations and
 * position embeddings. */
dre_status dre_model_config_read(const char *path, dre_model_info *info);
/* Reads and parses a JSON file; *root is NULL (and DRE_OK) if the file is absent and
 * optional. Errors name the file and the line. */
dre_status dre_model_read_json(const char *path, int optional, cJSON **root);

/* Allocates m's weights for m->info's shapes, one 64-byte-aligned arena, and points every
 * array of m into it (uninitialised); what names the model in the error. */
dre_status dre_model_alloc_weights(dre_model *m, const char *what);

#ifdef __cplusplus
}
#endif
#endif
