/* cublasLt.h for the CPU emulation of CUDA: everything is in cuda_emu.h. */
#include "cuda_emu.h"
