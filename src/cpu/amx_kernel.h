/* cpu/amx_kernel.h — the AMX tile kernel's body, included once for the hardware
 * (cpu/amx.c: the _tile_* intrinsics) and once for the model (cpu/amx_emu.c), so both run
 * the same loads, products and stores in the same order. The includer defines
 * AMX_BLOCK (the function's name), AMX_TARGET (its attributes), AMX_ZERO(t),
 * AMX_LOAD(t, base, stride_bytes), AMX_DP(c, a, b) (TDPBF16PS) and AMX_STORE(t, base,
 * stride_bytes); tile numbers are constants, as the instructions need.
 * Tiles 0-3: sums (rows 0-15 x columns 0-15, 0-15 x 16-31, 16-31 x 0-15, 16-31 x 16-31);
 * 4, 5: A's rows 0-15 and 16-31; 6, 7: the panel's columns 0-15 and 16-31. */

static inline __attribute__((always_inline)) AMX_TARGET void
AMX_BLOCK_OF(const int two, int32_t a_words, const uint32_t *a, const uint32_t *panel,
             float *sums) {
    const size_t a_stride = (size_t)a_words * sizeof(uint32_t);
    const size_t b_stride = CPU_PANEL * sizeof(uint32_t);
    AMX_ZERO(0);
    AMX_ZERO(1);
    if (two) {
        AMX_ZERO(2);
        AMX_ZERO(3);
    }
    for (int32_t j = 0; j < a_words; j += 16) {
        AMX_LOAD(6, panel + (size_t)j * CPU_PANEL, b_stride);
        AMX_LOAD(7, panel + (size_t)j * CPU_PANEL + 16, b_stride);
        AMX_LOAD(4, a + j, a_stride);
        AMX_DP(0, 4, 6);
        AMX_DP(1, 4, 7);
        if (two) {
            AMX_LOAD(5, a + (size_t)16 * a_words + j, a_stride);
            AMX_DP(2, 5, 6);
            AMX_DP(3, 5, 7);
        }
    }
    AMX_STORE(0, sums, b_stride);
    AMX_STORE(1, sums + 16, b_stride);
    if (two) {
        AMX_STORE(2, sums + 16 * CPU_PANEL, b_stride);
        AMX_STORE(3, sums + 16 * CPU_PANEL + 16, b_stride);
    }
}

AMX_TARGET void AMX_BLOCK(int two, int32_t a_words, const uint32_t *a, const uint32_t *panel,
                          float *sums) {
    if (two)
        AMX_BLOCK_OF(1, a_words, a, panel, sums);
    else
        AMX_BLOCK_OF(0, a_words, a, panel, sums);
}
