/* Start-up for the emulated Cortex-M4F: vector table, FPU enable, .data/.bss init, then main().
 * A fault ends QEMU through semihosting with a distinct exit code instead of spinning forever. */
#ifdef KWS_BOARD_EMU_M4
#include <stdint.h>
#include <string.h>

#include "board.h"

extern uint32_t __etext, __data_start__, __data_end__, __bss_start__, __bss_end__, __stack_top__;
extern int main(int argc, char **argv);

void Reset_Handler(void);
static void Fault_Handler(void) { board_exit(70); }

__attribute__((section(".isr_vector"), used)) const void *const kws_vector_table[16] = {
    &__stack_top__, (void *)Reset_Handler, (void *)Fault_Handler, (void *)Fault_Handler,
    (void *)Fault_Handler, (void *)Fault_Handler, (void *)Fault_Handler, 0, 0, 0, 0,
    (void *)Fault_Handler, (void *)Fault_Handler, 0, (void *)Fault_Handler, (void *)Fault_Handler,
};

void Reset_Handler(void) {
  /* CPACR: full access to CP10/CP11 before any floating-point instruction runs. */
  *(volatile uint32_t *)0xE000ED88u |= (0xFu << 20);
  __asm__ volatile("dsb\n isb" ::: "memory");
  uint32_t *src = &__etext, *dst = &__data_start__;
  while (dst < &__data_end__) *dst++ = *src++;
  for (dst = &__bss_start__; dst < &__bss_end__;) *dst++ = 0;
  board_exit(main(0, 0));
}
#endif
