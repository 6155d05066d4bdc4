/*
 * Bare-metal start-up for Cortex-M (QEMU mps2-an386 / mps2-an500, or a board): vector table, reset
 * (FPU on, .data copied, .bss zeroed, stack painted), semihosting stdio and exit code, fault handlers
 * that report and exit non-zero, the stack's measured peak, and a SysTick-based instruction counter.
 */
#include <stdint.h>
#include <stdio.h>

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _sstack, _estack;
extern int main(void);
extern void initialise_monitor_handles(void);

void _init(void) {}
void _fini(void) {}

#define STACK_PAINT 0xDEADBEEFu
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define CPACR (*(volatile uint32_t *)0xE000ED88u)

static volatile uint32_t systick_wraps;

/* Semihosting SYS_EXIT_EXTENDED: QEMU exits with `code`. */
void tte_exit(int code) {
    uint32_t block[2] = {0x20026u, (uint32_t)code}; /* ADP_Stopped_ApplicationExit */
    register uint32_t r0 __asm__("r0") = 0x20u;
    register uint32_t *r1 __asm__("r1") = block;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    for (;;) {
    }
}

/* SysTick ticks since reset (24-bit counter plus wraps).  Under QEMU with -icount shift=3 one tick is
 * 5 guest instructions (tte run reports instructions that way). */
uint64_t tte_ticks(void) {
    uint32_t wraps, value;
    do {
        wraps = systick_wraps;
        value = SYST_CVR;
    } while (wraps != systick_wraps);
    return ((uint64_t)wraps << 24) + (0xFFFFFFu - value);
}

uint32_t tte_stack_peak(void) {
    const uint32_t *p = &_sstack;
    while (p < &_estack && *p == STACK_PAINT) p++;
    return (uint32_t)((uintptr_t)&_estack - (uintptr_t)p);
}

void SysTick_Handler(void) { systick_wraps++; }

static void fault(const char *what) {
    printf("fault: %s\n", what);
    tte_exit(3);
}
void NMI_Handler(void) { fault("NMI"); }
void HardFault_Handler(void) { fault("hard fault"); }
void MemManage_Handler(void) { fault("memory management"); }
void BusFault_Handler(void) { fault("bus fault"); }
void UsageFault_Handler(void) { fault("usage fault"); }
void Default_Handler(void) { fault("unexpected interrupt"); }

void Reset_Handler(void) {
    CPACR |= 0xFu << 20; /* CP10, CP11: the FPU */
    __asm__ volatile("dsb\n\tisb");
    for (uint32_t *s = &_sidata, *d = &_sdata; d < &_edata;) *d++ = *s++;
    for (uint32_t *d = &_sbss; d < &_ebss;) *d++ = 0;
    uint32_t *sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    for (uint32_t *p = &_sstack; p < sp - 16; p++) *p = STACK_PAINT;
    SYST_RVR = 0xFFFFFFu;
    SYST_CVR = 0;
    SYST_CSR = 7u; /* processor clock, interrupt, enable */
    initialise_monitor_handles();
    int rc = main();
    printf("stack peak %lu bytes\n", (unsigned long)tte_stack_peak());
    tte_exit(rc);
}

__attribute__((section(".isr_vector"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(&_estack), Reset_Handler, NMI_Handler, HardFault_Handler, MemManage_Handler,
    BusFault_Handler, UsageFault_Handler, 0, 0, 0, 0, Default_Handler, Default_Handler, 0, Default_Handler,
    SysTick_Handler,
};
