// The ABI version of everything xdplb pins and of the slot protocol
// (XDPLB_ABI_VERSION in bpf/include/xdplb/abi.h; a kernel test checks that
// the objects carry this number).
export const ABI_VERSION = 2;
