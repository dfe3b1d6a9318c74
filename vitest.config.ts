import { defineConfig } from 'vitest/config';

// Four tiers: unit (no privileges), kernel (programs loaded into the running
// kernel, driven by BPF_PROG_TEST_RUN), net (namespaces, veth, real traffic),
// system (the Debian package on a booted systemd).
// Kernel and net tests change kernel state, so their files run one at a time.
export default defineConfig({
  test: {
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      { test: { name: 'kernel', include: ['test/kernel/**/*.test.ts'], fileParallelism: false, testTimeout: 30_000 } },
      { test: { name: 'net', include: ['test/net/**/*.test.ts'], fileParallelism: false, testTimeout: 60_000, hookTimeout: 60_000 } },
      // A booted Debian 13 with the built package: debootstrap and apt in its setup.
      { test: { name: 'system', include: ['test/system/**/*.test.ts'], fileParallelism: false, testTimeout: 120_000, hookTimeout: 900_000 } },
    ],
  },
});
