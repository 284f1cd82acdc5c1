/* The tflm backend (env nano33ble, --backend tflm): the same kws_model_invoke() as the AOT
 * runtime, implemented with TensorFlow Lite Micro from the registry (the paper's setup). The
 * model comes as the .tflite flatbuffer (kws_model_tflite.c, written by harness/device/firmware.py). */
#ifdef KWS_BACKEND_TFLM
#include <TensorFlowLite.h>
#include <string.h>

#include "kws_model.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

extern "C" const unsigned char kws_model_tflite[];

namespace {
alignas(16) uint8_t tensor_arena[KWS_TFLM_ARENA_BYTES];
tflite::MicroInterpreter *interpreter = nullptr;

bool setup_interpreter() {
  static tflite::MicroMutableOpResolver<6> resolver;
  resolver.AddConv2D();
  resolver.AddDepthwiseConv2D();
  resolver.AddFullyConnected();
  resolver.AddReshape();
  resolver.AddSoftmax();
  static tflite::MicroInterpreter interp(tflite::GetModel(kws_model_tflite), resolver, tensor_arena,
                                         sizeof tensor_arena);
  if (interp.AllocateTensors() != kTfLiteOk) return false;
  interpreter = &interp;
  return true;
}
}  // namespace

extern "C" int kws_model_invoke(const int8_t *in, int8_t *out) {
  if (!interpreter && !setup_interpreter()) return -1;
  memcpy(interpreter->input(0)->data.int8, in, KWS_MODEL_INPUT_SIZE);
  if (interpreter->Invoke() != kTfLiteOk) return -2;
  memcpy(out, interpreter->output(0)->data.int8, KWS_MODEL_OUTPUT_SIZE);
  return 0;
}
#endif
