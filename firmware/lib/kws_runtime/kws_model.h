/* The generated model's C API (implemented by kws_model_data.c from harness/device/codegen.py).
 *
 * The firmware core includes only this header; the build puts the generated directory (with
 * kws_model_data.h: KWS_MODEL_INPUT_SIZE, KWS_MODEL_OUTPUT_SIZE, KWS_MODEL_ID, quantization
 * macros) on the include path, so one core builds against any variant.
 */
#ifndef KWS_MODEL_H
#define KWS_MODEL_H

#include <stdint.h>

#include "kws_model_data.h"

#ifdef __cplusplus
extern "C" {
#endif

extern const char kws_model_id[];
extern const uint32_t kws_model_input_size;   /* int8 values per input, = KWS_MODEL_INPUT_SIZE */
extern const uint32_t kws_model_output_size;  /* int8 scores per output, = KWS_MODEL_OUTPUT_SIZE */
extern const uint32_t kws_model_arena_bytes;  /* static activation arena (RAM) */
extern const uint32_t kws_model_weight_bytes; /* constant arrays (flash) */
extern const uint32_t kws_model_macs;         /* multiply-accumulates per inference */

/* One inference: input int8[KWS_MODEL_INPUT_SIZE] -> output int8[KWS_MODEL_OUTPUT_SIZE].
 * Returns 0. Not reentrant (one static arena). */
int kws_model_invoke(const int8_t *input, int8_t *output);

#ifdef __cplusplus
}
#endif

#endif /* KWS_MODEL_H */
