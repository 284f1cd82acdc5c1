/* Board layer for the emulated Cortex-M4F: QEMU mps2-an386.
 *
 * The link: by default Arm semihosting on QEMU's stdin/stdout (SYS_READ/SYS_WRITE on ":tt"),
 * which harness/device/emulator.py relays to a TCP socket on 127.0.0.1. Why not UART0: the emulated
 * CMSDK UART holds one byte and QEMU hands the next one over once per main-loop turn (~45 us a
 * byte, so a 1960-byte feature frame took ~90 ms); a semihosting read moves up to 1 KB at once.
 * Build with -DKWS_EMU_LINK_UART for UART0 (CMSDK APB UART at 0x40004000, QEMU -serial tcp:...).
 * A semihosting read cannot time out: a frame cut short waits for more bytes (the next frame's,
 * whose CRC then fails; the host retries).
 *
 * Timing: TIMER0 (CMSDK timer, 25 MHz). Under -icount shift=0 one instruction advances virtual
 * time by 1 ns, so one tick is 40 instructions: timings are instructions (resolution 40), never
 * milliseconds. Exit goes through semihosting SYS_EXIT_EXTENDED so QEMU ends with our code. */
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

#define SYS_OPEN 0x01
#define SYS_WRITE 0x05
#define SYS_READ 0x06
#define SYS_EXIT_EXTENDED 0x20

extern uint32_t __stack_top__;

/* harness/device/emulator.py reads this symbol from the ELF to set QEMU's link up the same way. */
#ifdef KWS_EMU_LINK_UART
const char kws_emu_link[] = "uart";
#else
const char kws_emu_link[] = "semihost";
#endif

static int semihost(int op, void *arg) {
  register int r0 __asm__("r0") = op;
  register void *r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

static void timer_restart(uint32_t t) {
  TIMER_CTRL(t) = 0;
  TIMER_RELOAD(t) = 0xFFFFFFFFu;
  TIMER_VALUE(t) = 0xFFFFFFFFu;
  TIMER_CTRL(t) = 1;
}

static uint32_t timer_ticks(uint32_t t) { return 0xFFFFFFFFu - TIMER_VALUE(t); }

#ifndef KWS_EMU_LINK_UART /* ------------------------------------------------ semihosting link */
static int sh_in = -1, sh_out = -1;
static uint8_t sh_buf[1024];
static uint32_t sh_head, sh_len;

static int sh_open(const char *name, int mode) {
  uint32_t args[3] = {(uint32_t)(uintptr_t)name, (uint32_t)mode, 3};
  return semihost(SYS_OPEN, args);
}

static void link_init(void) {
  sh_in = sh_open(":tt", 0);  /* "r": QEMU's stdin */
  sh_out = sh_open(":tt", 4); /* "w": QEMU's stdout */
}

int board_uart_read(uint8_t *byte, uint32_t timeout_ms) {
  (void)timeout_ms;
  if (sh_head == sh_len) {
    uint32_t args[3] = {(uint32_t)sh_in, (uint32_t)(uintptr_t)sh_buf, sizeof sh_buf};
    int left = semihost(SYS_READ, args); /* bytes NOT read; all of them = end of file */
    if (left < 0 || left >= (int)sizeof sh_buf) return -1;
    sh_head = 0;
    sh_len = sizeof sh_buf - (uint32_t)left;
  }
  *byte = sh_buf[sh_head++];
  return 1;
}

void board_uart_write(const uint8_t *data, size_t n) {
  uint32_t args[3] = {(uint32_t)sh_out, (uint32_t)(uintptr_t)data, (uint32_t)n};
  semihost(SYS_WRITE, args);
}

#else /* ------------------------------------------------------------------------- UART0 link */
static void link_init(void) {
  UART_BAUDDIV = 16;           /* QEMU rejects a divider < 16; the emulated line has no baud rate */
  UART_CTRL = 0x3 | (1u << 3); /* TX, RX, RX interrupt (wakes WFI) */
  __asm__ volatile("cpsid i" ::: "memory");
  NVIC_ISER0 = IRQ_UART0_RX | IRQ_TIMER1;
}

/* Waiting sleeps in WFI until a byte or the timeout interrupt arrives: busy polling keeps QEMU's
 * vCPU thread running and the UART then gets a byte only when the vCPU happens to yield. */
int board_uart_read(uint8_t *byte, uint32_t timeout_ms) {
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
      UART_INTSTATUS = 2u; /* clear the RX interrupt; it is raised again while a byte waits */
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
  for (size_t i = 0; i < n; i++) {
    while (UART_STATE & UART_TXFULL) {
    }
    UART_DATA = data[i];
  }
}
#endif

void board_init(int argc, char **argv) {
  (void)argc;
  (void)argv;
  (void)*(volatile const char *)kws_emu_link; /* keep the marker through --gc-sections */
  link_init();
  timer_restart(TIMER0);
}

void board_timer_restart(void) { timer_restart(TIMER0); }
uint64_t board_timer_read(void) { return (uint64_t)timer_ticks(TIMER0) * INSNS_PER_TICK; }
uint32_t board_clock_hz(void) { return SYSCLK_HZ; }
const char *board_timing_method(void) { return "no-irqs"; } /* none enabled (UART link: only WFI wake-ups) */
const char *board_timer_unit(void) { return "instructions"; }
const char *board_timer_source(void) { return "qemu-icount-timer0"; }
const char *board_name(void) { return "emu_m4"; }
uint32_t board_ram_bytes(void) { return (uint32_t)((uintptr_t)&__stack_top__ - 0x20000000u); }

void board_exit(int code) {
  uint32_t block[2] = {0x20026u /* ADP_Stopped_ApplicationExit */, (uint32_t)code};
  semihost(SYS_EXIT_EXTENDED, block);
  for (;;) {
  }
}
#endif
