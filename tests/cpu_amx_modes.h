// cpu_amx_modes.h — the ways this CPU can run bf16 and int8 products (cpu/amx.h), for tests
// that run each: AVX-512 BF16 alone (AMX off), the C model of the AMX tiles, and the tiles
// themselves where the CPU has them.
#ifndef DRE_TESTS_CPU_AMX_MODES_H
#define DRE_TESTS_CPU_AMX_MODES_H

#include <vector>

#include "cpu/amx.h"

inline bool amx_hardware_present() {
    const cpu_amx_mode was = dre_cpu_amx_mode(nullptr);
    const bool present = dre_cpu_amx_set_mode(CPU_AMX_HARDWARE) == CPU_AMX_HARDWARE;
    dre_cpu_amx_set_mode(was);
    return present;
}

inline std::vector<cpu_amx_mode> amx_modes() {
    std::vector<cpu_amx_mode> modes{CPU_AMX_OFF, CPU_AMX_EMULATED};
    if (amx_hardware_present()) modes.push_back(CPU_AMX_HARDWARE);
    return modes;
}

inline const char *amx_mode_name(cpu_amx_mode mode) {
    return mode == CPU_AMX_OFF        ? "AVX-512 BF16 (AMX off)"
           : mode == CPU_AMX_EMULATED ? "AMX tiles, C model"
                                      : "AMX tiles, hardware";
}

// the mode in force while in scope, the one before restored after
struct amx_mode_scope {
    cpu_amx_mode was;
    explicit amx_mode_scope(cpu_amx_mode mode) : was(dre_cpu_amx_mode(nullptr)) {
        dre_cpu_amx_set_mode(mode);
    }
    ~amx_mode_scope() { dre_cpu_amx_set_mode(was); }
    amx_mode_scope(const amx_mode_scope &) = delete;
    amx_mode_scope &operator=(const amx_mode_scope &) = delete;
};

#endif
