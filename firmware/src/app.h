/* The firmware core: one request in, one response out (docs/PROTOCOL.md). */
#ifndef KWS_APP_H
#define KWS_APP_H

#ifdef __cplusplus
extern "C" {
#endif

#define KWS_FIRMWARE_VERSION "0.2.0" /* 0.2: HELLO compiler, cflags, timing */

void kws_app_init(void);
/* Serve one frame; negative when the link is closed. */
int kws_app_step(void);

#ifdef __cplusplus
}
#endif
#endif
