/* Board layer for the Arduino Nano 33 BLE (Sense): nRF52840 at 64 MHz, USB CDC serial.
 * Timings come from the DWT cycle counter (CYCCNT), reported as cycles. The Arduino core calls
 * setup()/loop(); src/main.c exposes kws_main_setup()/kws_main_step() for that (see main.c). */
#ifdef KWS_BOARD_NANO33BLE
#include <Arduino.h>

#include "app.h"
#include "board.h"

#define DEMCR (*(volatile uint32_t *)0xE000EDFCu)
#define DWT_CTRL (*(volatile uint32_t *)0xE0001000u)
#define DWT_CYCCNT (*(volatile uint32_t *)0xE0001004u)

extern "C" {

void board_init(int argc, char **argv) {
  (void)argc;
  (void)argv;
  Serial.begin(115200); /* USB CDC: the baud rate is ignored */
  while (!Serial) {
  }
  DEMCR |= (1u << 24); /* TRCENA */
  DWT_CYCCNT = 0;
  DWT_CTRL |= 1u; /* CYCCNTENA */
}

int board_uart_read(uint8_t *byte, uint32_t timeout_ms) {
  uint32_t start = millis();
  while (Serial.available() <= 0) {
    if (timeout_ms && (uint32_t)(millis() - start) >= timeout_ms) return 0;
  }
  *byte = (uint8_t)Serial.read();
  return 1;
}

void board_uart_write(const uint8_t *data, size_t n) { Serial.write(data, n); }

void board_timer_restart(void) { DWT_CYCCNT = 0; }
uint64_t board_timer_read(void) { return DWT_CYCCNT; } /* wraps after 67 s at 64 MHz */
uint32_t board_clock_hz(void) { return SystemCoreClock; }
const char *board_timer_unit(void) { return "cycles"; }
const char *board_timer_source(void) { return "dwt-cyccnt"; }
const char *board_name(void) { return "nano33ble"; }
uint32_t board_ram_bytes(void) { return 0; }
void board_exit(int code) {
  (void)code;
  NVIC_SystemReset();
}
}

void setup() {
  board_init(0, nullptr);
  kws_app_init();
}

void loop() { kws_app_step(); }
#endif
