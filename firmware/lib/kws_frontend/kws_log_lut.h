/* Log2 correction table of the TF microfrontend's integer logarithm (log_lut.h).
 *
 * Copyright 2018 The TensorFlow Authors. All Rights Reserved.
 * Licensed under the Apache License, Version 2.0 (see NOTICE).
 */
#ifndef KWS_LOG_LUT_H_
#define KWS_LOG_LUT_H_

#include <stdint.h>

#define KWS_FE_LOG_SEGMENTS 128
#define KWS_FE_LOG_SEGMENTS_LOG2 7
#define KWS_FE_LOG_SCALE 65536
#define KWS_FE_LOG_SCALE_LOG2 16
#define KWS_FE_LOG_COEFF 45426 /* ln(2) in Q16 */

extern const uint16_t kws_fe_log_lut[KWS_FE_LOG_SEGMENTS + 2];

#endif /* KWS_LOG_LUT_H_ */
