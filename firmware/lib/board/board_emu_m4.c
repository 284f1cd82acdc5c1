/* Board layer for the emulated Cortex-M4F: QEMU mps2-an386.
 * UART0 (CMSDK APB UART at 0x40004000) is QEMU's -serial (a TCP socket on 127.0.0.1).
 * TIMER0 (CMSDK timer, 25 MHz) times the measured regions; TIMER1 times link timeouts.
 * Under -icount shift=0 one instruction advances virtual time by 1 ns, so one 25 MHz tick is
 * 40 instructions: timings are reported in instructions, never as milliseconds.
 * Exit goes through Arm semihosting (SYS_EXIT_EXTENDED) so QEMU ends with the firmware's code. */
#ifdef KWS_BOARD_EMU_M4
#include "board.h"

#define REG(addr) (*(volatile uint32_t *)(addr))

#define UART0 0x40004000u
#define UART_DATA REG(UART0 + 0x00)
#define UART_STATE REG(UART0 + 0x04)
#define UART_CTRL REG(UART0 + 0x08)
#define UART_INTSTATUS REG(UART0 + 0x0C)
#define UART_BAUDDIV REG(UART0 + 0x10)
#define UART_TXFULL 0x1u
#define UART_RXFULL 0x2u

#define TIMER0 0x40000000u
#define TIMER1 0x40001000u
#define TIMER_CTRL(t) REG((t) + 0x00)
#define TIMER_VALUE(t) REG((t) + 0x04)
#define TIMER_RELOAD(t) REG((t) + 0x08)
#define TIMER_INTSTATUS(t) REG((t) + 0x0C)

/* NVIC lines of mps2-an385/an386: UART0 RX = 0, TIMER1 = 9. They only wake WFI: PRIMASK stays
 * set, so no handler ever runs and the core keeps polling. */
#define NVIC_ISER0 REG(0xE000E100u)
#define NVIC_ICPR0 REG(0xE000E280u)
#define IRQ_UART0_RX (1u << 0)
#define IRQ_TIMER1 (1u << 9)

#define SYSCLK_HZ 25000000u
#define INSNS_PER_TICK 40u /* 1e9 ns/s (icount shift=0) / 25 MHz */

extern uint32_t __stack_top__;

static int semihost(int op, void *arg) {
  register int r0 __asm__("r0") = op;
  register void *r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

#ifdef KWS_EMU_SEMIHOST_LINK
static int sh_in = -1, sh_out = -1;
static uint8_t sh_buf[1024];
static uint32_t sh_head, sh_len;
static int sh_open(const char *name, int mode) {
  uint32_t args[3] = {(uint32_t)(uintptr_t)name, (uint32_t)mode, 3};
  return semihost(0x01 /* SYS_OPEN */, args);
}
#endif



static void timer_restart(uint32_t t) {
  TIMER_CTRL(t) = 0;
  TIMER_RELOAD(t) = 0xFFFFFFFFu;
  TIMER_VALUE(t) = 0xFFFFFFFFu;
  TIMER_CTRL(t) = 1;
}

static uint32_t timer_ticks(uint32_t t) { return 0xFFFFFFFFu - TIMER_VALUE(t); }

void board_init(int argc, char **argv) {
  (void)argc;
  (void)argv;
#ifdef KWS_EMU_SEMIHOST_LINK
  sh_in = sh_open(":tt", 0);
  sh_out = sh_open(":tt", 4);
#endif
  UART_BAUDDIV = 16; /* QEMU rejects a divider < 16; the emulated line has no real baud rate */
  UART_CTRL = 0x3 | (1u << 3); /* TX, RX, RX interrupt (wakes WFI) */
  timer_restart(TIMER0);
  __asm__ volatile("cpsid i" ::: "memory");
  NVIC_ISER0 = IRQ_UART0_RX | IRQ_TIMER1;
}

/* Waiting sleeps in WFI until a byte or the timeout interrupt arrives. Busy polling would keep
 * QEMU's vCPU thread running, and the emulated UART then delivers a byte only when the vCPU
 * happens to yield (~100 us each); sleeping hands the CPU to QEMU's I/O loop at once. */
int board_uart_read(uint8_t *byte, uint32_t timeout_ms) {
#ifdef KWS_EMU_SEMIHOST_LINK
  (void)timeout_ms;
  if (sh_head == sh_len) {
    uint32_t args[3] = {(uint32_t)sh_in, (uint32_t)(uintptr_t)sh_buf, sizeof sh_buf};
    int left = semihost(0x06 /* SYS_READ */, args);
    if (left < 0 || left >= (int)sizeof sh_buf) return -1;
    sh_head = 0;
    sh_len = sizeof sh_buf - (uint32_t)left;
  }
  *byte = sh_buf[sh_head++];
  return 1;
#endif
  if (!(UART_STATE & UART_RXFULL)) {
    TIMER_CTRL(TIMER1) = 0;
    TIMER_INTSTATUS(TIMER1) = 1;
    if (timeout_ms) {
      TIMER_RELOAD(TIMER1) = timeout_ms * (SYSCLK_HZ / 1000u);
      TIMER_VALUE(TIMER1) = timeout_ms * (SYSCLK_HZ / 1000u);
      TIMER_CTRL(TIMER1) = 1u | (1u << 3); /* enable, interrupt at zero */
    }
    while (!(UART_STATE & UART_RXFULL)) {
      if (timeout_ms && (TIMER_INTSTATUS(TIMER1) & 1u)) {
        TIMER_CTRL(TIMER1) = 0;
        TIMER_INTSTATUS(TIMER1) = 1;
        NVIC_ICPR0 = IRQ_TIMER1;
        return 0;
      }
      __asm__ volatile("wfi" ::: "memory");
      UART_INTSTATUS = 2u; /* clear RX interrupt; re-raised while a byte waits */
      NVIC_ICPR0 = IRQ_UART0_RX;
    }
    TIMER_CTRL(TIMER1) = 0;
  }
  *byte = (uint8_t)UART_DATA;
  UART_INTSTATUS = 2u;
  NVIC_ICPR0 = IRQ_UART0_RX;
  return 1;
}

void board_uart_write(const uint8_t *data, size_t n) {
#ifdef KWS_EMU_SEMIHOST_LINK
  uint32_t args[3] = {(uint32_t)sh_out, (uint32_t)(uintptr_t)data, (uint32_t)n};
  semihost(0x05 /* SYS_WRITE */, args);
  return;
#endif
  for (size_t i = 0; i < n; i++) {
    while (UART_STATE & UART_TXFULL) {
    }
    UART_DATA = data[i];
  }
}

void board_timer_restart(void) { timer_restart(TIMER0); }

uint64_t board_timer_read(void) { return (uint64_t)timer_ticks(TIMER0) * INSNS_PER_TICK; }

uint32_t board_clock_hz(void) { return SYSCLK_HZ; }
const char *board_timer_unit(void) { return "instructions"; }
const char *board_timer_source(void) { return "qemu-icount-timer0"; }
const char *board_name(void) { return "emu_m4"; }
uint32_t board_ram_bytes(void) { return (uint32_t)((uintptr_t)&__stack_top__ - 0x20000000u); }


void board_exit(int code) {
  uint32_t block[2] = {0x20026u /* ADP_Stopped_ApplicationExit */, (uint32_t)code};
  semihost(0x20 /* SYS_EXIT_EXTENDED */, block);
  for (;;) {
  }
}
#endif
