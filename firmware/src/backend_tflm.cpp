/* The tflm backend (env nano33ble_tflm, --backend tflm): the same kws_model_invoke() as the AOT
 * runtime, implemented with TensorFlow Lite Micro for Arduino (the paper's setup). The model comes
 * as the .tflite flatbuffer (kws_model_tflite.c, written by harness/device/firmware.py).
 *
 * Two rules keep TFLM from disturbing the measurement and the link:
 * - Tensors are allocated once at start-up (kws_tflm_prepare(), from kws_app_init()), never inside
 *   a timed region: kws_model_invoke() only copies, invokes and copies.
 * - TFLM's DebugLog() prints to the USB serial port, which would put text in the middle of our
 *   binary frames. extra_script.py links this backend with -Wl,--wrap=DebugLog, so every call
 *   (MicroPrintf, error reporter) lands in __wrap_DebugLog() below, which drops it. The wrapper
 *   takes (const char *, ...) so it fits both DebugLog signatures TFLM has had (a string; a format
 *   and a va_list) without reading either. A failed AllocateTensors still shows: every inference
 *   answers a MODEL error. */
#ifdef KWS_BACKEND_TFLM
#include <TensorFlowLite.h>
#include <string.h>

#include "kws_model.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

extern "C" const unsigned char kws_model_tflite[];

extern "C" void __wrap_DebugLog(const char *text, ...) { (void)text; }

namespace {
alignas(16) uint8_t tensor_arena[KWS_TFLM_ARENA_BYTES];
tflite::MicroInterpreter *interpreter = nullptr;
}  // namespace

extern "C" int kws_tflm_prepare(void) {
  if (interpreter) return 0;
  static tflite::MicroMutableOpResolver<6> resolver;
  resolver.AddConv2D();
  resolver.AddDepthwiseConv2D();
  resolver.AddFullyConnected();
  resolver.AddReshape();
  resolver.AddSoftmax();
  static tflite::MicroInterpreter interp(tflite::GetModel(kws_model_tflite), resolver, tensor_arena,
                                         sizeof tensor_arena);
  if (interp.AllocateTensors() != kTfLiteOk) return -1;
  interpreter = &interp;
  return 0;
}

extern "C" int kws_model_invoke(const int8_t *in, int8_t *out) {
  if (!interpreter) return -1; /* AllocateTensors failed at start-up; never retried in a timed region */
  memcpy(interpreter->input(0)->data.int8, in, KWS_MODEL_INPUT_SIZE);
  if (interpreter->Invoke() != kTfLiteOk) return -2;
  memcpy(out, interpreter->output(0)->data.int8, KWS_MODEL_OUTPUT_SIZE);
  return 0;
}
#endif
