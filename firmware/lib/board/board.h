/* Board layer: the only target-specific code. The firmware core (src/) talks to the serial link
 * and the timer through these calls, so the same core runs on the Nano 33 BLE, in QEMU and on the
 * host. Timer values are in the board's own unit (board_timer_unit()): "instructions" in QEMU
 * with -icount shift=0, "cycles" on the Nano (DWT CYCCNT), "ns" on the host. */
#ifndef KWS_BOARD_H
#define KWS_BOARD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

void board_init(int argc, char **argv);
/* 1 = a byte, 0 = timeout, negative = link closed. timeout_ms == 0 waits forever. */
int board_uart_read(uint8_t *byte, uint32_t timeout_ms);
void board_uart_write(const uint8_t *data, size_t n);
/* Open a timed region: restart the timer at zero (so counts are reproducible). A board whose
 * interrupts would land inside the region (USB, RTOS tick on the Nano) masks them here; each
 * restart is closed by exactly one board_timer_read(). */
void board_timer_restart(void);
/* Close the timed region: elapsed timer units since the restart; interrupts as before. */
uint64_t board_timer_read(void);
/* How interrupts are kept out of timed regions (HELLO "timing"): "irq-masked" (PRIMASK set
 * between restart and read), "no-irqs" (none enabled), "preemptible" (a host OS may interrupt). */
const char *board_timing_method(void);
uint32_t board_clock_hz(void);
const char *board_timer_unit(void);
const char *board_timer_source(void);
const char *board_name(void);
/* Static RAM in use (data + bss + stack reserve) where the board knows it, else 0. */
uint32_t board_ram_bytes(void);
void board_exit(int code);

#ifdef __cplusplus
}
#endif
#endif
