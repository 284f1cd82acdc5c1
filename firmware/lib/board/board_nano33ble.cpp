/* Board layer for the Arduino Nano 33 BLE (Sense): nRF52840 at 64 MHz, USB CDC serial, under the
 * Arduino mbed core. It implements board.h and nothing else: the Arduino entry points setup() and
 * loop() live in src/main.c (C linkage, as the core's Arduino.h declares them), which calls
 * board_init(), kws_app_init() and kws_app_step(). No header of src/ is included here: PlatformIO
 * compiles lib/ without src/ on the include path (tests/test_board_nano33ble.py checks both).
 *
 * Timing: DWT CYCCNT (cycles). A timed region runs with PRIMASK set, so the USB stack and the
 * mbed OS tick cannot add their interrupts to a measurement; they are served right after
 * board_timer_read(). Every Arduino/CMSIS name used here is listed in
 * tests/fixtures/arduino_api_subset/Arduino.h, the declaration check of this file. */
#ifdef KWS_BOARD_NANO33BLE
#include <Arduino.h>

#include "board.h"

#define DEMCR (*(volatile uint32_t *)0xE000EDFCu)
#define DWT_CTRL (*(volatile uint32_t *)0xE0001000u)
#define DWT_CYCCNT (*(volatile uint32_t *)0xE0001004u)

static uint32_t timed_primask; /* PRIMASK before the timed region, restored when it closes */

static inline uint32_t primask_get(void) {
  uint32_t v;
  __asm__ volatile("mrs %0, primask" : "=r"(v));
  return v;
}

static inline void primask_set(uint32_t v) { __asm__ volatile("msr primask, %0" : : "r"(v) : "memory"); }

extern "C" {

void board_init(int argc, char **argv) {
  (void)argc;
  (void)argv;
  Serial.begin(115200); /* USB CDC: the baud rate is ignored */
  while (!Serial) {     /* until the host opens the port (DTR) */
  }
  DEMCR |= (1u << 24); /* TRCENA */
  DWT_CYCCNT = 0;
  DWT_CTRL |= 1u; /* CYCCNTENA */
}

int board_uart_read(uint8_t *byte, uint32_t timeout_ms) {
  uint32_t start = (uint32_t)millis();
  while (Serial.available() <= 0) {
    if (timeout_ms && (uint32_t)((uint32_t)millis() - start) >= timeout_ms) return 0;
  }
  int c = Serial.read();
  if (c < 0) return 0;
  *byte = (uint8_t)c;
  return 1;
}

void board_uart_write(const uint8_t *data, size_t n) { Serial.write(data, n); }

void board_timer_restart(void) {
  uint32_t pm = primask_get();
  __asm__ volatile("cpsid i" : : : "memory");
  timed_primask = pm;
  DWT_CYCCNT = 0;
}

uint64_t board_timer_read(void) { /* CYCCNT wraps after 67 s at 64 MHz */
  uint32_t cycles = DWT_CYCCNT;
  primask_set(timed_primask);
  return cycles;
}

const char *board_timing_method(void) { return "irq-masked"; }
uint32_t board_clock_hz(void) { return SystemCoreClock; }
const char *board_timer_unit(void) { return "cycles"; }
const char *board_timer_source(void) { return "dwt-cyccnt"; }
const char *board_name(void) { return "nano33ble"; }
uint32_t board_ram_bytes(void) { return 0; }

void board_exit(int code) {
  (void)code;
  NVIC_SystemReset();
}

}  // extern "C"
#endif
