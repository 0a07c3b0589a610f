/**
 * Every ggml tensor type a GGUF file may name: id -> [name, elements per block, bytes per block].
 *
 * Source: llama.cpp gguf-py/gguf/constants.py `GGML_QUANT_SIZES` (the sizes of ggml's
 * `type_traits[]` in ggml/src/ggml.c, from the block structs of ggml/src/ggml-common.h) and the
 * `enum ggml_type` of ggml/include/ggml.h, GGML_TYPE_COUNT = 42 (llama.cpp master, 2026). Ids
 * 4, 5 (Q4_2, Q4_3), 31-33 (Q4_0_4_4/4_8/8_8) and 36-38 (IQ4_NL_4_4/4_8/8_8) were removed: their
 * block size is 0 in type_traits, so gguf_init_from_file refuses them ("not a multiple of block
 * size"), as modelgate does by leaving them out.
 *
 * Q8_1 is 36 bytes, ggml's `sizeof(block_q8_1)` (two ggml_half + 32 int8, static_assert in
 * ggml-common.h) that llama.cpp's loader uses; gguf-py's table says 4 + 4 + 32 = 40, a known slip
 * of the Python side that no writer relies on (Q8_1 is an activation type, never stored).
 */
export interface GgmlType {
  readonly name: string;
  readonly blockSize: number;
  readonly typeSize: number;
}

const QK_K = 256;

export const GGML_TYPES: ReadonlyMap<number, GgmlType> = new Map<number, GgmlType>(
  (
    [
      [0, "F32", 1, 4],
      [1, "F16", 1, 2],
      [2, "Q4_0", 32, 2 + 16],
      [3, "Q4_1", 32, 2 + 2 + 16],
      [6, "Q5_0", 32, 2 + 4 + 16],
      [7, "Q5_1", 32, 2 + 2 + 4 + 16],
      [8, "Q8_0", 32, 2 + 32],
      [9, "Q8_1", 32, 2 + 2 + 32],
      [10, "Q2_K", 256, 2 + 2 + QK_K / 16 + QK_K / 4],
      [11, "Q3_K", 256, 2 + QK_K / 4 + QK_K / 8 + 12],
      [12, "Q4_K", 256, 2 + 2 + QK_K / 2 + 12],
      [13, "Q5_K", 256, 2 + 2 + QK_K / 2 + QK_K / 8 + 12],
      [14, "Q6_K", 256, 2 + QK_K / 16 + (3 * QK_K) / 4],
      [15, "Q8_K", 256, 4 + QK_K + QK_K / 8],
      [16, "IQ2_XXS", 256, 2 + QK_K / 4],
      [17, "IQ2_XS", 256, 2 + QK_K / 4 + QK_K / 32],
      [18, "IQ3_XXS", 256, 2 + QK_K / 4 + QK_K / 8],
      [19, "IQ1_S", 256, 2 + QK_K / 8 + QK_K / 16],
      [20, "IQ4_NL", 32, 2 + 16],
      [21, "IQ3_S", 256, 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4],
      [22, "IQ2_S", 256, 2 + QK_K / 4 + QK_K / 16],
      [23, "IQ4_XS", 256, 2 + 2 + QK_K / 2 + QK_K / 64],
      [24, "I8", 1, 1],
      [25, "I16", 1, 2],
      [26, "I32", 1, 4],
      [27, "I64", 1, 8],
      [28, "F64", 1, 8],
      [29, "IQ1_M", 256, QK_K / 8 + QK_K / 16 + QK_K / 32],
      [30, "BF16", 1, 2],
      [34, "TQ1_0", 256, 2 + 4 * 13],
      [35, "TQ2_0", 256, 2 + 64],
      [39, "MXFP4", 32, 1 + 16],
      [40, "NVFP4", 64, 4 + 32],
      [41, "Q1_0", 128, 2 + 16],
    ] as const
  ).map(([id, name, blockSize, typeSize]) => [id, { name, blockSize, typeSize }]),
);

/** ggml's GGML_TYPE_COUNT: ids at or past it are refused by gguf_init_from_file ("invalid ggml type"). */
export const GGML_TYPE_COUNT = 42;
