/**
 * The built-in safe set: the imports a weights-only load needs, each allowed by its exact
 * "module.name" and listed with the reason it is safe. Nothing else is allowed by default.
 *
 * Why these cannot run code: each entry either builds plain data (containers, numbers, bytes),
 * or rebuilds a tensor/array from data and other entries of this set. Callables a pickle can
 * call are only ever imports (every import is checked) or the results of calling these, and
 * none of these returns a callable. Functions that take a class argument (copyreg._reconstructor,
 * torch._tensor._rebuild_from_type_v2, torch._utils._rebuild_wrapper_subclass) only instantiate
 * that class, and the class is itself an import the policy checks.
 *
 * Sources: PyTorch's weights_only unpickler (torch/_weights_only_unpickler.py,
 * `_get_allowed_globals`), what numpy's ndarray/dtype/scalar `__reduce__` write under every
 * protocol (numpy 1: numpy.core, numpy 2: numpy._core), joblib's NumpyPickler, and what CPython's
 * own pickler writes for plain data under protocols 0 to 2 (with `fix_imports`).
 */
export interface SafeEntry {
  global: string;
  reason: string;
}

const TORCH_REBUILD = [
  "_rebuild_tensor",
  "_rebuild_tensor_v2",
  "_rebuild_tensor_v3",
  "_rebuild_parameter",
  "_rebuild_parameter_with_state",
  "_rebuild_qtensor",
  "_rebuild_sparse_tensor",
  "_rebuild_sparse_csr_tensor",
  "_rebuild_meta_tensor_no_storage",
  "_rebuild_nested_tensor",
  "_rebuild_wrapper_subclass",
  "_rebuild_device_tensor_from_cpu_tensor",
  "_rebuild_device_tensor_from_numpy",
];

const TORCH_STORAGE_KINDS = [
  "Double",
  "Float",
  "Half",
  "BFloat16",
  "Long",
  "Int",
  "Short",
  "Char",
  "Byte",
  "Bool",
  "ComplexFloat",
  "ComplexDouble",
  "QUInt8",
  "QInt8",
  "QInt32",
  "QUInt4x2",
  "QUInt2x4",
];

const TORCH_TENSOR_KINDS = ["Double", "Float", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool"];

const TORCH_DTYPES = [
  "float16",
  "float32",
  "float64",
  "bfloat16",
  "complex32",
  "complex64",
  "complex128",
  "uint8",
  "uint16",
  "uint32",
  "uint64",
  "int8",
  "int16",
  "int32",
  "int64",
  "bool",
  "qint8",
  "quint8",
  "qint32",
  "quint4x2",
  "quint2x4",
  "float8_e4m3fn",
  "float8_e5m2",
  "float8_e4m3fnuz",
  "float8_e5m2fnuz",
];

const TORCH_LAYOUTS_QSCHEMES = [
  "strided",
  "sparse_coo",
  "sparse_csr",
  "sparse_csc",
  "sparse_bsr",
  "sparse_bsc",
  "_mkldnn",
  "per_tensor_affine",
  "per_channel_affine",
  "per_tensor_symmetric",
  "per_channel_symmetric",
  "per_channel_affine_float_qparams",
];

const BUILTIN_DATA = ["dict", "list", "tuple", "set", "frozenset", "bytes", "bytearray", "complex", "slice", "range", "int", "float", "str", "bool", "object"];

export const SAFE_SET: readonly SafeEntry[] = [
  // ---- PyTorch (the weights_only=True allowlist) ----
  ...TORCH_REBUILD.map((f) => ({ global: `torch._utils.${f}`, reason: "rebuilds a tensor/parameter from a storage and sizes (torch weights_only)" })),
  {
    global: "torch._tensor._rebuild_from_type_v2",
    reason: "rebuilds a tensor subclass; the function and class it applies are imports checked on their own (torch weights_only)",
  },
  { global: "torch.serialization._get_layout", reason: "maps a layout name to a torch.layout (torch weights_only)" },
  { global: "torch.Tensor", reason: "tensor class (torch weights_only)" },
  { global: "torch.nn.parameter.Parameter", reason: "parameter class (torch weights_only)" },
  { global: "torch.nn.parameter.Buffer", reason: "buffer class of torch 2.5+ (torch weights_only)" },
  { global: "torch.Size", reason: "shape tuple class (torch weights_only)" },
  { global: "torch.device", reason: "device descriptor (torch weights_only)" },
  { global: "torch.storage.TypedStorage", reason: "storage class named in persistent ids (torch weights_only)" },
  { global: "torch.storage.UntypedStorage", reason: "storage class named in persistent ids (torch weights_only)" },
  { global: "torch.UntypedStorage", reason: "storage class named in persistent ids (torch weights_only)" },
  ...TORCH_STORAGE_KINDS.flatMap((k) => [
    { global: `torch.${k}Storage`, reason: "typed storage class named in persistent ids (torch weights_only)" },
    { global: `torch.cuda.${k}Storage`, reason: "CUDA typed storage class named in persistent ids (torch weights_only)" },
  ]),
  ...TORCH_TENSOR_KINDS.flatMap((k) => [
    { global: `torch.${k}Tensor`, reason: "legacy tensor type (torch weights_only)" },
    { global: `torch.cuda.${k}Tensor`, reason: "legacy CUDA tensor type (torch weights_only)" },
  ]),
  ...TORCH_DTYPES.map((d) => ({ global: `torch.${d}`, reason: "dtype constant (torch weights_only)" })),
  ...TORCH_LAYOUTS_QSCHEMES.map((d) => ({ global: `torch.${d}`, reason: "layout / quantization scheme constant (torch weights_only)" })),
  // ---- numpy (numpy 1 writes numpy.core, numpy 2 writes numpy._core) ----
  ...["numpy.core", "numpy._core"].flatMap((core) => [
    { global: `${core}.multiarray._reconstruct`, reason: "ndarray.__reduce__: creates an empty array of a dtype, filled by BUILD with raw data" },
    { global: `${core}.multiarray.scalar`, reason: "numpy scalar from a dtype and its raw bytes" },
    { global: `${core}.numeric._frombuffer`, reason: "ndarray.__reduce_ex__ under protocol 5: array from a buffer" },
  ]),
  { global: "numpy.dtype", reason: "dtype from a type string; BUILD sets byte order and fields" },
  { global: "numpy.ndarray", reason: "array class passed to _reconstruct" },
  // ---- joblib ----
  { global: "joblib.numpy_pickle.NumpyArrayWrapper", reason: "joblib's array wrapper: the array bytes follow the pickle opcode, read as data" },
  { global: "sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper", reason: "the same wrapper as vendored by scikit-learn < 0.23" },
  // ---- CPython plain data ----
  ...BUILTIN_DATA.map((b) => ({ global: `builtins.${b}`, reason: "builtin data type" })),
  ...BUILTIN_DATA.map((b) => ({ global: `__builtin__.${b}`, reason: "Python 2 spelling of a builtin data type (fix_imports writes it for protocols 0-2)" })),
  { global: "__builtin__.unicode", reason: "Python 2 str, mapped to builtins.str" },
  { global: "__builtin__.long", reason: "Python 2 long, mapped to builtins.int" },
  { global: "__builtin__.xrange", reason: "Python 2 xrange, mapped to builtins.range" },
  { global: "collections.OrderedDict", reason: "ordered dict, the container of every state_dict (torch weights_only)" },
  { global: "collections.Counter", reason: "dict subclass of counts (torch weights_only)" },
  { global: "_codecs.encode", reason: "how protocols 0-2 write bytes: encode(latin1 text, 'latin1')" },
  { global: "copyreg._reconstructor", reason: "how protocols 0-1 write plain objects: object.__new__(cls); cls and base are imports checked on their own" },
  { global: "copy_reg._reconstructor", reason: "Python 2 spelling of copyreg._reconstructor" },
];

export const SAFE_GLOBALS: ReadonlySet<string> = new Set(SAFE_SET.map((e) => e.global));

export function safeReason(global: string): string | undefined {
  return SAFE_SET.find((e) => e.global === global)?.reason;
}
