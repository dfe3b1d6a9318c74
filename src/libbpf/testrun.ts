// BPF_PROG_TEST_RUN: a program run on a packet we give it (kernel tests,
// benchmarks).
import { c, alloc, free, address, view } from './ffi.js';
import { check } from './errors.js';

export interface TestRun {
  retval: number;
  /** Average ns per repetition, as the kernel measured it. */
  duration: number;
  data: Buffer;
}

/** Run a program on one packet with BPF_PROG_TEST_RUN; `ingressIfindex`
 *  (a device of the caller's network namespace) is what the program sees as
 *  ctx->ingress_ifindex, loopback when 0. */
export function testRun(progFd: number, packet: Buffer, repeat = 1, ingressIfindex = 0): TestRun {
  const outSize = packet.length + 512;
  const dataIn = alloc(packet.length);
  const dataOut = alloc(outSize);
  const ctx = alloc(24); // struct xdp_md
  try {
    view(dataIn, packet.length).set(packet);
    const opts = Buffer.alloc(80); // struct bpf_test_run_opts
    opts.writeBigUInt64LE(80n, 0);
    opts.writeBigUInt64LE(address(dataIn), 8);
    opts.writeBigUInt64LE(address(dataOut), 16);
    opts.writeUInt32LE(packet.length, 24);
    opts.writeUInt32LE(outSize, 28);
    opts.writeInt32LE(repeat, 60);
    if (ingressIfindex) {
      const md = Buffer.alloc(24); // data 0, data_end, data_meta 0, ingress_ifindex, rx_queue 0, egress 0
      md.writeUInt32LE(packet.length, 4);
      md.writeUInt32LE(ingressIfindex, 12);
      view(ctx, 24).set(md);
      opts.writeBigUInt64LE(address(ctx), 32);
      opts.writeUInt32LE(24, 48);
    }
    check('bpf_prog_test_run_opts', c.bpf_prog_test_run_opts(progFd, opts), `cannot test-run program fd ${progFd}`);
    const outLen = opts.readUInt32LE(28);
    return { retval: opts.readUInt32LE(56), duration: opts.readUInt32LE(64), data: Buffer.from(view(dataOut, outLen)) };
  } finally {
    free(dataIn);
    free(dataOut);
    free(ctx);
  }
}
